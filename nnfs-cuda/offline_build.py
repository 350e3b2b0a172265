"""A PEP 517 build backend for nnfs's pure-Python distributions, for a machine without a
network whose setuptools is missing or older than the 77 their pyproject.toml asks for.

``gpu-check.sh`` uses it only there: it copies a distribution's folder, points the copy's
``[build-system]`` at this file (``backend-path``), and runs the same ``pip install --no-deps
--no-build-isolation`` as with setuptools. It builds one ``py3-none-any`` wheel from
``[project]`` (name, version, description, requires-python, dependencies, optional
dependencies, entry points) and every file of the packages under ``src/``, nothing more.
It needs only the standard library, and ``tomllib`` or the ``tomli`` that pip carries.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import re
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip carries tomli
    from pip._vendor import tomli as tomllib

_SKIPPED = ("__pycache__", ".egg-info", ".pyc")


def _project() -> dict:
    with open("pyproject.toml", "rb") as file:
        pyproject = tomllib.load(file)
    project = dict(pyproject["project"])
    if "version" not in project:  # dynamic: the literal __version__ setuptools would read
        attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
        module, _, name = attr.rpartition(".")
        path = Path("src", *module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = [getattr(target, "id", "") for target in getattr(node, "targets", ())]
            if isinstance(node, ast.Assign) and targets == [name]:
                project["version"] = ast.literal_eval(node.value)
    return project


def _names(project: dict) -> tuple[str, str]:
    """The distribution's name and version as a wheel's file names spell them."""
    return re.sub(r"[-_.]+", "_", project["name"]).lower(), project["version"]


def _metadata(project: dict) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}",
             f"Version: {project['version']}"]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {requirement}" for requirement in project.get("dependencies", [])]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for requirement in requirements:
            requirement, _, marker = requirement.partition(";")
            condition = f'({marker.strip()}) and extra == "{extra}"' if marker else \
                f'extra == "{extra}"'
            lines.append(f"Requires-Dist: {requirement.strip()}; {condition}")
    return "\n".join(lines) + "\n"


def _entry_points(project: dict) -> str:
    text = []
    groups = dict(project.get("entry-points", {}))
    if project.get("scripts"):
        groups["console_scripts"] = project["scripts"]
    for group, entries in groups.items():
        text.append(f"[{group}]")
        text += [f"{name} = {target}" for name, target in entries.items()]
        text.append("")
    return "\n".join(text)


def _dist_info(project: dict) -> dict[str, bytes]:
    name, version = _names(project)
    folder = f"{name}-{version}.dist-info"
    return {f"{folder}/METADATA": _metadata(project).encode(),
            f"{folder}/WHEEL": (b"Wheel-Version: 1.0\nGenerator: nnfs offline_build\n"
                                b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
            f"{folder}/entry_points.txt": _entry_points(project).encode()}


def _package_files() -> dict[str, bytes]:
    files = {}
    for path in sorted(Path("src").rglob("*")):
        if path.is_file() and not any(part in str(path) for part in _SKIPPED):
            files[path.relative_to("src").as_posix()] = path.read_bytes()
    return files


def _record(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


# --- the PEP 517 hooks ----------------------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None) -> str:
    project = _project()
    for name, data in _dist_info(project).items():
        path = Path(metadata_directory, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    name, version = _names(project)
    return f"{name}-{version}.dist-info"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None) -> str:
    project = _project()
    name, version = _names(project)
    wheel = f"{name}-{version}-py3-none-any.whl"
    contents = {**_package_files(), **_dist_info(project)}
    record = f"{name}-{version}.dist-info/RECORD"
    lines = [_record(path, data) for path, data in contents.items()] + [f"{record},,"]
    with zipfile.ZipFile(Path(wheel_directory, wheel), "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in contents.items():
            archive.writestr(path, data)
        archive.writestr(record, "\n".join(lines) + "\n")
    return wheel


def build_sdist(sdist_directory, config_settings=None) -> str:
    raise NotImplementedError("offline_build builds wheels only (for gpu-check.sh); build an "
                              "sdist with setuptools: python -m build --sdist")
