"""Each CUDA route of nnfs-cuda resolves to one CuPy and leaves ``pip check`` clean.

    python .ci/check_cuda_routes.py DIST [CONSTRAINTS_FOLDER]

For each route — ``nnfs-cuda[cuda12]``, ``nnfs-cuda[cuda13]``, and ``nnfs-cuda`` alone — pip
resolves ``nnfs-core`` and the route from the wheels in DIST and the index without installing
anything (``pip install --dry-run --report``: of CuPy's and NVIDIA's large wheels, only their
metadata is read). The resolved distributions are then written into a fresh
virtual environment as installed metadata only (a dist-info folder each, as ``--no-deps``
would leave them, without their files), and ``pip check`` runs there: it reads every
requirement of every distribution, extras included, as it would after a real installation.
Each route must hold exactly the CuPy of its CUDA version (none for nnfs-cuda alone) and
NVIDIA's libraries of that version only. With CONSTRAINTS_FOLDER, the route is resolved once
more with ``ROUTE.txt`` from it as pip constraints (the lowest versions nnfs declares).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROUTES = {"cuda12": "cupy-cuda12x", "cuda13": "cupy-cuda13x", "none": None}


def resolve(dist: Path, route: str, constraints: Path | None, report: Path) -> list[dict]:
    target = "nnfs-cuda" if route == "none" else f"nnfs-cuda[{route}]"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--dry-run", "--ignore-installed", "--report", str(report),
               "--find-links", str(dist), "nnfs-core", target]
    if constraints is not None:
        command += ["--constraint", str(constraints)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"pip cannot resolve {target}:\n{result.stdout}{result.stderr}")
    return json.loads(report.read_text())["install"]


def metadata_text(meta: dict) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {meta['name']}", f"Version: {meta['version']}"]
    lines += [f"Requires-Dist: {r}" for r in meta.get("requires_dist", [])]
    lines += [f"Provides-Extra: {e}" for e in meta.get("provides_extra", [])]
    if "requires_python" in meta:
        lines.append(f"Requires-Python: {meta['requires_python']}")
    return "\n".join(lines) + "\n"


def pip_check(items: list[dict], folder: Path) -> subprocess.CompletedProcess:
    """``pip check`` in a fresh environment holding the metadata of ``items`` only."""
    environment = folder / "env"
    venv.EnvBuilder(with_pip=False).create(environment)
    python = environment / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    for item in items:
        meta = item["metadata"]
        info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(metadata_text(meta), encoding="utf-8")
        (info / "INSTALLER").write_text("check_cuda_routes\n")
        (info / "RECORD").write_text("")
    # this interpreter's pip, run on that environment
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(python),
                           "--disable-pip-version-check", "check"],
                          capture_output=True, text=True, timeout=300)


def check(dist: Path, route: str, constraints: Path | None) -> list[str]:
    problems = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        items = resolve(dist, route, constraints, folder / "report.json")
        names = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in items}
        cupy = sorted(name for name in names if name.startswith("cupy"))
        expected = [ROUTES[route]] if ROUTES[route] else []
        if cupy != expected:
            problems.append(f"{route}: resolves to CuPy {cupy or 'none'}, not {expected or 'none'}")
        major = {"cuda12": "12", "cuda13": "13"}.get(route)
        libraries = {name: version for name, version in names.items()
                     if name.startswith(("nvidia-cublas", "nvidia-cuda-", "cuda-toolkit"))}
        others = sorted(f"{name} {version}" for name, version in libraries.items()
                        if version.split(".")[0] != major)
        if major and others:
            problems.append(f"{route}: CUDA libraries of another CUDA version: {others}")
        if not major and libraries:
            problems.append(f"{route}: CUDA libraries without CuPy: {sorted(libraries)}")
        result = pip_check(items, folder)
        if result.returncode != 0:
            problems.append(f"{route}: pip check: {result.stdout.strip()} {result.stderr.strip()}")
        shown = ", ".join(f"{n} {names[n]}" for n in sorted(names)
                          if n.startswith(("cupy", "cuda-toolkit", "nnfs")))
        which = "lowest" if constraints else "newest"
        print(f"{route:6} ({which}): {shown}; {len(items)} distributions; "
              f"pip check: {result.stdout.strip() or result.returncode}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    dist = Path(argv[0])
    lowest = Path(argv[1]) if len(argv) == 2 else None
    problems = []
    for route in ROUTES:
        problems += check(dist, route, None)
        if lowest is not None and (lowest / f"{route}.txt").is_file():
            problems += check(dist, route, lowest / f"{route}.txt")
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
