"""Check that the distributions of one release agree, and what an index would show of them.

    python .ci/check_release.py DIST      # the sdists and wheels that .ci/release built
    python .ci/check_release.py --installed   # in an environment that holds some of them

On DIST, for each distribution of the repository: one wheel and one sdist, whose version is the
package's ``__version__`` (the one place it is written) and the same for all of them; each
backend's requirement on nnfs-core admits this release and has a lowest version, printed; the
MIT text of the repository's LICENSE in the wheel and in the sdist; classifiers that exist,
naming exactly the Python versions of ``PYTHONS``, the lowest of which is Requires-Python's;
no placeholder URL; and a README that stands alone on an index's page (an install from the
index, no "see the repository's README", no link relative to the repository).

``--installed``: every nnfs distribution installed here, imported, says its own version.

Needs ``packaging`` and ``trove-classifiers`` (and ``tomli`` before Python 3.11).
"""

from __future__ import annotations

import ast
import re
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from lowest_constraints import DISTRIBUTIONS, ROOT, lowest, tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

#: The Python versions a release supports: declared in every pyproject.toml, tested by CI
#: (.ci/release runs the fast tests on the lowest and the highest).
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
#: What a README that sends its readers elsewhere says.
CHECKOUT_ONLY = re.compile(r"repository's README|see the repository", re.I)
#: A markdown link or image whose target is a path in the repository, broken on an index page.
RELATIVE_LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)]+)\)")

problems: list[str] = []


def problem(text: str) -> None:
    problems.append(text)
    print(f"  PROBLEM: {text}")


def source_version(folder: Path, project: dict, pyproject: dict) -> str:
    """The version written in the package, where setuptools reads it (a literal string)."""
    if "version" in project or "version" not in project.get("dynamic", []):
        problem(f"{folder.name}: the version must be dynamic, read from the package")
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    module, _, name = attr.rpartition(".")
    path = folder / "src" / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{path} does not assign {name}")


def wheel_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as wheel:
        return {name: wheel.read(name) for name in wheel.namelist()
                if ".dist-info/" in name}


def sdist_member(path: Path, suffix: str) -> bytes | None:
    with tarfile.open(path) as sdist:
        for member in sdist.getmembers():
            if member.name.count("/") == 1 and member.name.endswith("/" + suffix):
                return sdist.extractfile(member).read()
    return None


def check_dist(dist: Path) -> None:
    from trove_classifiers import classifiers as known

    license_text = (ROOT / "LICENSE").read_bytes()
    versions = {}
    core_requirements = {}
    for relative in DISTRIBUTIONS:
        folder = ROOT / relative
        with open(folder / "pyproject.toml", "rb") as file:
            pyproject = tomllib.load(file)
        project = pyproject["project"]
        name = project["name"]
        stem = canonicalize_name(name).replace("-", "_")
        print(f"{name}:")
        version = source_version(folder, project, pyproject)
        wheels = sorted(dist.glob(f"{stem}-*.whl"))
        sdists = sorted(dist.glob(f"{stem}-*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            problem(f"{name}: {len(wheels)} wheels, {len(sdists)} sdists in {dist}, not one each")
            continue
        files = wheel_files(wheels[0])
        metadata_name = next(n for n in files if n.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(files[metadata_name].decode("utf-8"))
        pkg_info = HeaderParser().parsestr(sdist_member(sdists[0], "PKG-INFO").decode("utf-8"))
        versions[name] = version
        for what, found in (("the wheel", metadata["Version"]), ("the sdist", pkg_info["Version"])):
            if found != version:
                problem(f"{name}: {what} is version {found}, the package's __version__ {version}")
        print(f"  version {version} (wheel, sdist and __version__)")
        # the license, whole, in both
        licenses = [n for n in files if n.endswith(".dist-info/licenses/LICENSE")]
        if not licenses or files[licenses[0]] != license_text:
            problem(f"{name}: the wheel lacks the repository's LICENSE (dist-info/licenses/)")
        if sdist_member(sdists[0], "LICENSE") != license_text:
            problem(f"{name}: the sdist lacks the repository's LICENSE at its top")
        if (folder / "LICENSE").read_bytes() != license_text:
            problem(f"{relative}/LICENSE differs from the repository's LICENSE")
        if metadata["License-Expression"] != "MIT":
            problem(f"{name}: License-Expression is {metadata['License-Expression']!r}, not MIT")
        # classifiers and Python versions
        classifiers = metadata.get_all("Classifier") or []
        for classifier in classifiers:
            if classifier not in known:
                problem(f"{name}: {classifier!r} is no classifier an index accepts")
        declared = tuple(c.rsplit(" :: ", 1)[1] for c in classifiers
                         if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
        if declared != PYTHONS:
            problem(f"{name}: classifiers declare Python {declared}, CI tests {PYTHONS}")
        if metadata["Requires-Python"] != f">={PYTHONS[0]}":
            problem(f"{name}: Requires-Python is {metadata['Requires-Python']}, not >={PYTHONS[0]}")
        print(f"  {len(classifiers)} classifiers, Python {', '.join(declared)}")
        # what the page shows
        text = files[metadata_name].decode("utf-8")
        if "example.invalid" in text or "example.com" in text:
            problem(f"{name}: the metadata names a placeholder URL")
        readme = metadata.get_payload()
        if "pip install nnfs-" not in readme and 'pip install "nnfs-' not in readme \
                and "pip install 'nnfs-" not in readme:
            problem(f"{name}: the README gives no install from the index (pip install nnfs-...)")
        if CHECKOUT_ONLY.search(readme):
            problem(f"{name}: the README sends readers to the repository: "
                    f"{CHECKOUT_ONLY.search(readme).group(0)!r}")
        for target in RELATIVE_LINK.findall(readme):
            problem(f"{name}: the README links to {target!r}, which is not on an index's page")
        # the nnfs-core each backend needs
        for requirement in map(Requirement, metadata.get_all("Requires-Dist") or []):
            if canonicalize_name(requirement.name) == "nnfs-core":
                core_requirements[name] = requirement
    release = set(versions.values())
    if len(release) != 1:
        problem(f"the distributions of one release have different versions: {versions}")
        return
    core = Version(versions["nnfs-core"])
    print(f"release {core}; the nnfs-core each backend requires:")
    for name in versions:
        if name == "nnfs-core":
            continue
        requirement = core_requirements.get(name)
        if requirement is None:
            problem(f"{name} does not require nnfs-core")
            continue
        floor = lowest(requirement)
        print(f"  {name}: {requirement} (lowest {floor})")
        if not requirement.specifier.contains(core, prereleases=True):
            problem(f"{name} requires {requirement}, which this release's nnfs-core {core} is not")
        if floor > core:
            problem(f"{name} requires nnfs-core {floor} or newer, newer than this release")


def check_installed() -> None:
    import importlib
    from importlib import metadata

    for relative in DISTRIBUTIONS:
        with open(ROOT / relative / "pyproject.toml", "rb") as file:
            pyproject = tomllib.load(file)
        name = pyproject["project"]["name"]
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
        module, _, variable = attr.rpartition(".")
        found = getattr(importlib.import_module(module), variable)
        where = importlib.import_module(module).__file__
        if found != installed:
            problem(f"{name} {installed} is installed, but {attr} says {found!r} ({where})")
        if Path(where).is_relative_to(ROOT / relative / "src"):
            problem(f"{module} is imported from the checkout ({where}), not from the environment")
        print(f"{name} {installed}: {attr} = {found!r}")


def main(argv: list[str]) -> int:
    if argv == ["--installed"]:
        check_installed()
    elif len(argv) == 1:
        check_dist(Path(argv[0]))
    else:
        print(__doc__.strip().splitlines()[2:4], file=sys.stderr)
        return 2
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
