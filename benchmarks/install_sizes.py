"""What each nnfs distribution and extra installs, measured in fresh virtual environments.

    python benchmarks/install_sizes.py [--wheels DIR] [--python PYTHON] [ROUTE ...]

Each route (by default all of ROUTES) is installed with pip into a fresh virtual environment:
nnfs's own distributions from the wheels in DIR (``.ci/release`` leaves them in
build/release/dist; built here from the checkout when DIR is not given), everything else from
the index. The size of a route is what its installation adds to the environment (every file,
byte counts as ``du --apparent-size`` adds them, compiled ``.pyc`` files included), in MB of
10⁶ bytes; an extra's cost is its route's size less the route without it. The largest
distributions of each route come from their RECORD files. pip's cache makes repeated runs
quick; the first downloads about 4 GB, mostly NVIDIA's CUDA libraries.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("nnfs-core", "nnfs-cpu", "nnfs-cuda", "nnfs-opencl")
#: route: (the requirements, the route it adds an extra to)
ROUTES = {
    "nnfs-core": (["nnfs-core"], None),
    "nnfs-core[train]": (["nnfs-core[train]"], "nnfs-core"),
    "nnfs-core[progress]": (["nnfs-core[progress]"], "nnfs-core"),
    "nnfs-core[plot]": (["nnfs-core[plot]"], "nnfs-core"),
    "nnfs-core[mpi]": (["nnfs-core[mpi]"], "nnfs-core"),
    "nnfs-core[sklearn]": (["nnfs-core[sklearn]"], "nnfs-core"),
    "nnfs-core[onnx]": (["nnfs-core[onnx]"], "nnfs-core"),
    "nnfs-core[test]": (["nnfs-core[test]"], "nnfs-core"),
    "nnfs-cpu": (["nnfs-core", "nnfs-cpu"], "nnfs-core"),
    "nnfs-cpu[mkl]": (["nnfs-core", "nnfs-cpu[mkl]"], "nnfs-cpu"),
    "nnfs-opencl": (["nnfs-core", "nnfs-opencl"], "nnfs-core"),
    "nnfs-opencl[pocl]": (["nnfs-core", "nnfs-opencl[pocl]"], "nnfs-opencl"),
    "nnfs-cuda": (["nnfs-core", "nnfs-cuda"], "nnfs-core"),
    "nnfs-cuda[cuda12]": (["nnfs-core", "nnfs-cuda[cuda12]"], "nnfs-cuda"),
    "nnfs-cuda[cuda13]": (["nnfs-core", "nnfs-cuda[cuda13]"], "nnfs-cuda"),
}


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB" if abs(size) < 10e6 else f"{size / 1e6:,.0f} MB"


def tree_bytes(folder: Path) -> int:
    total = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def distributions(environment: Path) -> dict[str, int]:
    """Bytes of each installed distribution, from its RECORD."""
    sizes = {}
    for record in environment.glob("lib/python*/site-packages/*.dist-info/RECORD"):
        site = record.parent.parent
        total = 0
        with open(record, newline="", encoding="utf-8") as file:
            for row in csv.reader(file):
                path = (site / row[0]).resolve()
                if path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
        name, _, version = record.parent.name.removesuffix(".dist-info").partition("-")
        sizes[f"{name.replace('_', '-')} {version}"] = total
    return sizes


def measure(python: str, wheels: Path, route: str, folder: Path) -> tuple[int, dict[str, int]]:
    environment = folder / route.replace("[", "-").replace("]", "")
    subprocess.run([python, "-m", "venv", str(environment)], check=True)
    empty = tree_bytes(environment)
    empty_distributions = distributions(environment)
    requirements, _ = ROUTES[route]
    subprocess.run([str(environment / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "--find-links", str(wheels), *requirements],
                   check=True)
    added = {name: size for name, size in distributions(environment).items()
             if name not in empty_distributions}
    return tree_bytes(environment) - empty, added


def build_wheels(folder: Path) -> Path:
    wheels = folder / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(wheels), *(str(ROOT / name) for name in FOLDERS)],
                   check=True)
    return wheels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("routes", nargs="*", choices=[[], *ROUTES], metavar="ROUTE",
                        help=f"what to measure (default: all of {', '.join(ROUTES)})")
    parser.add_argument("--wheels", type=Path, help="a folder holding nnfs's wheels")
    parser.add_argument("--python", default=sys.executable, help="the interpreter of the "
                        "environments (default: this one)")
    args = parser.parse_args()
    args.routes = args.routes or list(ROUTES)
    version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"Python {version} on {platform.system()} {platform.machine()}; MB = 10^6 bytes")
    print("| route | installs | adds | largest distributions |")
    print("| --- | ---: | ---: | --- |")
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        wheels = args.wheels or build_wheels(folder)
        for route in args.routes:
            total, added = measure(args.python, wheels, route, folder)
            sizes[route] = total
            base = ROUTES[route][1]
            extra = f"{megabytes(total - sizes[base])} over `{base}`" if base in sizes else ""
            largest = sorted(added.items(), key=lambda item: -item[1])[:4]
            named = ", ".join(f"{name} ({megabytes(size)})" for name, size in largest)
            print(f"| `{route}` | {megabytes(total)} | {extra} | {named} |", flush=True)
            shutil.rmtree(folder / route.replace("[", "-").replace("]", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
