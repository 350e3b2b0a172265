"""Every code example of the README and of the documentation runs, so none can drift from the
code (issue 20).

Each page's ``python`` blocks run in order, in one namespace, in a temporary directory. A block
that must not run here (it needs an MPI launch, a GPU, a data set) is marked in the Markdown by
the line before it, ``<!-- not run: REASON -->``, and is reported as a skip with that reason.
A shell block runs only when the line before it is ``<!-- run -->`` (the cheap ones:
``nnfs backends``, ``nnfs demo``), each line through bash with this environment's commands
first on the ``PATH``. The doctests of the docstrings the API reference shows run too, and the
last tests hold the README's "Where things live" table to the tree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import nnfs
from conftest import ROOT

PAGES = [ROOT / "README.md",
         *sorted(path for path in (ROOT / "docs").rglob("*.md") if "_build" not in path.parts)]

# a fence and the marker on the line before it; the info string is anything (```{eval-rst})
FENCE = re.compile(r"^(?:<!-- (?P<mark>not run|run)(?::(?P<reason>[^\n]*?))? -->\n)?"
                   r"```(?P<info>[^\n]*)\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARK = re.compile(r"^<!-- (?:not run|run)\b", re.MULTILINE)

# what an example may import that the test extras bring, but a bare install may not have
OPTIONAL = {"sklearn", "onnx", "onnxruntime", "safetensors", "pandas", "matplotlib", "mpi4py",
            "torch", "nnfs_reference"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the block's first line of code, from 1
    language: str
    code: str
    mark: str | None
    reason: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start("code")) + 1
        found.append(Block(page, line, match["info"].strip(), match["code"], match["mark"],
                           (match["reason"] or "").strip()))
    return found


def _id(item) -> str:
    return item.where if isinstance(item, Block) else str(item.relative_to(ROOT))


RUN_PAGES = [page for page in PAGES
             if any(b.language == "python" and b.mark is None for b in blocks(page))]
NOT_RUN = [b for page in PAGES for b in blocks(page) if b.mark == "not run"]
SHELL = [b for page in PAGES for b in blocks(page) if b.mark == "run"]


def test_the_pages_are_found():
    names = {str(page.relative_to(ROOT)) for page in RUN_PAGES}
    assert {"README.md", "docs/guide/api.md", "docs/guide/training.md",
            "docs/guide/formats.md", "docs/guide/sklearn.md"} <= names, names
    assert SHELL, "no shell example is marked <!-- run -->"


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_mark_names_a_block_and_a_reason(page):
    """A marker that is not right before a fence, or a "not run" without its reason, would
    silently run or skip the wrong thing."""
    text = page.read_text(encoding="utf-8")
    found = blocks(page)
    assert len(MARK.findall(text)) == sum(b.mark is not None for b in found), \
        f"{page.name}: a <!-- run --> or <!-- not run: ... --> that is not right before a ```"
    for block in found:
        if block.mark == "not run":
            assert block.reason, f"{block.where}: <!-- not run: REASON --> needs its reason"
        if block.mark == "run":
            assert block.language in ("sh", "bash", "console"), \
                f"{block.where}: only shell blocks are marked <!-- run -->"
        if block.language == "python" and block.mark == "run":
            pytest.fail(f"{block.where}: python blocks run unless marked not run")


@pytest.mark.parametrize("page", RUN_PAGES, ids=_id)
def test_the_python_examples_of_a_page_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples write model files and checkpoints
    namespace: dict = {"__name__": "__docs_example__"}
    for block in blocks(page):
        if block.language != "python" or block.mark is not None:
            continue
        # blank lines first, so that a traceback names the line of the Markdown file
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        try:
            exec(code, namespace)
        except ModuleNotFoundError as error:
            if (error.name or "").split(".")[0] not in OPTIONAL:
                raise
            pytest.skip(f"{block.where} needs {error.name}, which is not installed here")
    capsys.readouterr()


@pytest.mark.parametrize("block", NOT_RUN, ids=_id)
def test_an_example_not_run_says_why(block):
    assert block.language and block.code.strip()
    pytest.skip(f"{block.where} is not run: {block.reason}")


@pytest.mark.parametrize("block", SHELL, ids=_id)
def test_the_cheap_shell_examples_run(block, tmp_path):
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}"
                                        f"{os.environ.get('PATH', '')}")
    installed = {info.name for info in nnfs.backends() if info.available}
    for line in block.code.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        named = set(re.findall(r"(?:nnfs\.testing|--backend)\s+([\w-]+)", line))
        if named - installed:
            pytest.skip(f"{block.where}: {line.split('#')[0].strip()} needs the backend "
                        f"{', '.join(sorted(named - installed))}, which is not installed here")
        result = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=environment,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (block.where, line, result.stderr)
        assert "Traceback" not in result.stderr, (block.where, line, result.stderr)
        assert result.stdout.strip(), (block.where, line, "printed nothing")


# --- the API reference's docstrings ---------------------------------------------------------------

def documented_modules() -> list[str]:
    """The modules the reference pages document (``automodule``), and for ``nnfs``, whose
    imported members it shows, the modules those members come from."""
    names = set()
    for page in sorted((ROOT / "docs" / "reference").glob("*.md")):
        names.update(re.findall(r"^\.\. automodule:: ([\w.]+)", page.read_text(encoding="utf-8"),
                                re.MULTILINE))
    if "nnfs" in names:
        import nnfs

        names.update(getattr(getattr(nnfs, name), "__module__", None) or "nnfs"
                     for name in nnfs.__all__)
    return sorted(name for name in names if name.startswith("nnfs"))


def test_the_doctests_of_the_reference_pass():
    import doctest
    import importlib

    attempted = 0
    for name in documented_modules():
        result = doctest.testmod(importlib.import_module(name), verbose=False, report=True)
        assert result.failed == 0, f"{name}: {result.failed} doctest(s) failed (printed above)"
        attempted += result.attempted
    assert attempted >= 1, "the reference's docstrings hold no doctest any more: is this found?"


# --- the README's "Where things live" -------------------------------------------------------------

SOURCES = {"nnfs": ROOT / "nnfs-core" / "src" / "nnfs"}
for _source in sorted(ROOT.glob("*/src/nnfs_*/__init__.py")) + sorted(
        ROOT.glob("examples/*/src/nnfs_*/__init__.py")):
    SOURCES[_source.parent.name] = _source.parent
BUNDLED = ("nnfs_cpu", "nnfs_cuda", "nnfs_opencl")


def where_things_live() -> list[str]:
    """The paths in the first column of the README's table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Where things live" in text, "the README has no section 'Where things live'"
    section = text.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) > 20, section
    return [path for row in rows for path in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


def _resolve(path: str) -> list[Path]:
    """Where a path of the table is: a core or backend module (``nnfs_NAME/`` stands for each
    bundled backend), or a path from the repository's root (``nnfs-NAME/`` for each)."""
    package, _, rest = path.partition("/")
    if package == "nnfs_NAME":
        return [SOURCES[name] / rest for name in BUNDLED]
    if package in SOURCES:
        return [SOURCES[package] / rest]
    if package == "nnfs-NAME":
        return [ROOT / name.replace("_", "-") / rest for name in BUNDLED]
    return [ROOT / path]


def test_every_path_in_the_table_exists():
    missing = [path for path in where_things_live()
               if not all(each.exists() for each in _resolve(path))]
    assert not missing, f"the README's 'Where things live' names paths that are not there: " \
                        f"{missing}"


def test_every_module_is_in_the_table():
    """Every concept one hop away: each module of nnfs-core and of each backend is named by
    the table, by itself, by its folder, or as ``nnfs_NAME/`` for every backend."""
    listed = [each for path in where_things_live() for each in _resolve(path)]
    generic = {path.split("/", 1)[1] for path in where_things_live()
               if path.startswith("nnfs_NAME/")}
    unlisted = []
    for package, source in SOURCES.items():
        for file in sorted(source.rglob("*")):
            if file.suffix not in (".py", ".cu", ".cl") or "__pycache__" in file.parts:
                continue  # modules and kernels; not py.typed and the like
            relative = file.relative_to(source).as_posix()
            if package != "nnfs" and relative in generic:
                continue
            if any(file == each or each in file.parents for each in listed):
                continue
            unlisted.append(f"{package}/{relative}")
    assert not unlisted, f"the README's 'Where things live' does not name: {unlisted}"


def test_every_backend_folder_uses_the_same_module_names():
    for name in (*BUNDLED, "nnfs_reference"):
        for module in ("plugin.py", "backend.py"):
            assert (SOURCES[name] / module).is_file(), f"{name} has no {module}"
