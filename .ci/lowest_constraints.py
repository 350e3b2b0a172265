"""Print a pip constraints file that pins every dependency to the lowest version nnfs declares.

    python .ci/lowest_constraints.py "nnfs-core[test,train]" "nnfs-cpu[mkl]" ... > lowest.txt
    pip install -c lowest.txt --find-links dist "nnfs-core[test,train]" "nnfs-cpu[mkl]" ...
    python .ci/lowest_constraints.py --only cupy-cuda12x,cuda-toolkit "nnfs-cuda[cuda12]"

The arguments name the distributions of this repository, with extras, that the environment will
hold; the constraints cover every requirement they declare (their base requirements and those
of the extras named), each pinned to its lower bound: ``numpy>=1.24`` gives ``numpy==1.24``,
``cuda-toolkit[...]==12.*`` gives ``cuda-toolkit==12.0``. A requirement without a lower bound
is an error: every dependency must say which is the oldest version that works. Two
distributions that declare different lower bounds for one dependency give the higher one.
Environment markers are kept, so that pip leaves out what does not apply to the platform.
``--only`` keeps the pins of the dependencies it names and leaves the others free (CuPy 14
needs numpy 2, so nnfs-cuda's extras are tested at their lowest with a newer numpy than the
lowest that the rest of nnfs is tested with).

Reads the pyproject.toml files; needs ``packaging`` (and ``tomli`` before Python 3.11).
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
#: The folders of the distributions of one release.
DISTRIBUTIONS = ("nnfs-core", "nnfs-cpu", "nnfs-cuda", "nnfs-opencl",
                 "examples/nnfs-reference-backend")


def projects() -> dict[str, dict]:
    """Each distribution's [project] table, by canonical name."""
    tables = {}
    for folder in DISTRIBUTIONS:
        with open(ROOT / folder / "pyproject.toml", "rb") as file:
            project = tomllib.load(file)["project"]
        tables[canonicalize_name(project["name"])] = project
    return tables


def lowest(requirement: Requirement) -> Version:
    """The lowest version ``requirement`` admits, from its ``>=``, ``==`` or ``~=`` clause."""
    bounds = []
    for clause in requirement.specifier:
        if clause.operator in (">=", "~=", "==", "==="):
            bounds.append(Version(clause.version.replace(".*", ".0")))
    if not bounds:
        raise SystemExit(f"{requirement} declares no lowest version: give it one (>=X)")
    return max(bounds)


def requirements(asked: list[str]) -> list[Requirement]:
    """The requirements of the distributions and extras in ``asked``, following extras of our
    own distributions (``nnfs-cuda[cuda12]`` needs ``nnfs-core``, whose base is included)."""
    tables = projects()
    found: list[Requirement] = []
    pending = [Requirement(text) for text in asked]
    seen: set[tuple[str, str]] = set()
    while pending:
        wanted = pending.pop()
        name = canonicalize_name(wanted.name)
        if name not in tables:
            raise SystemExit(f"{wanted.name} is not a distribution of this repository")
        project = tables[name]
        for extra in ["", *sorted(wanted.extras)]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            if extra and extra not in project.get("optional-dependencies", {}):
                raise SystemExit(f"{wanted.name} has no extra {extra!r}")
            texts = project["optional-dependencies"][extra] if extra else project["dependencies"]
            for requirement in map(Requirement, texts):
                found.append(requirement)
                if canonicalize_name(requirement.name) in tables:
                    pending.append(requirement)
    return found


def constraints(asked: list[str]) -> list[str]:
    pins: dict[str, tuple[Version, str, str]] = {}
    for requirement in requirements(asked):
        name = canonicalize_name(requirement.name)
        version = lowest(requirement)
        marker = f"; {requirement.marker}" if requirement.marker else ""
        if name not in pins or version > pins[name][0]:
            pins[name] = (version, requirement.name, marker)
    return [f"{spelled}=={version}{marker}" for version, spelled, marker in
            (pins[name] for name in sorted(pins))]


def main(argv: list[str]) -> int:
    only = None
    if argv[:1] == ["--only"] and len(argv) > 1:
        only = {canonicalize_name(name) for name in argv[1].split(",")}
        argv = argv[2:]
    if not argv:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    pins = [pin for pin in constraints(argv)
            if only is None or canonicalize_name(pin.split("==")[0]) in only]
    if only is not None and len(pins) != len(only):
        raise SystemExit(f"--only names dependencies that {' '.join(argv)} do not declare")
    print("# the lowest version of every dependency of: " + " ".join(argv))
    print("\n".join(pins))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
