"""The structure the code promises: nnfs-core imports in one direction, the user's namespace
holds the user's API, the author's namespace the author's, and every backend folder uses the
same module names for the same roles."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import nnfs
from conftest import ROOT

CORE = ROOT / "nnfs-core" / "src" / "nnfs"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The nnfs modules ``path`` imports when it runs: at module level or inside functions,
    leaving out ``if TYPE_CHECKING:`` blocks, which only type checkers read."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for statement in block.body for node in ast.walk(statement)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module in modules and module != name}


def test_nnfs_core_has_no_import_cycle():
    """No module of nnfs-core needs, at import or inside a function, a module that needs it
    back (the package ``nnfs`` itself counts: a module that imports ``nnfs`` depends on all
    that ``nnfs/__init__.py`` imports)."""
    paths = sorted(CORE.rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    graph = {_module_name(path): _runtime_imports(path, modules) for path in paths}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def test_the_users_namespace_holds_the_users_api_and_the_authors_theirs():
    from nnfs import backend_api

    users = set(nnfs.__all__)
    for name in ("Backend", "BackendSpec", "BackendStatus", "Capabilities", "hookimpl",
                 "API_VERSION", "Registry", "register_plugin", "register_backend",
                 "PlannedFactory", "MemoryLimits"):
        assert name not in users, f"nnfs.__all__ offers the backend author's {name}"
        assert not hasattr(nnfs, name), f"nnfs.{name} still exists beside nnfs.backend_api"
    for name in ("Backend", "BackendSpec", "BackendStatus", "Capabilities", "hookimpl",
                 "API_VERSION", "register_plugin", "ActivationKind", "Operation"):
        assert name in backend_api.__all__ and hasattr(backend_api, name), name
    for name in nnfs.__all__:
        assert hasattr(nnfs, name), f"nnfs.__all__ names {name}, which nnfs lacks"


def test_the_registry_module_is_not_hidden_by_an_instance():
    import nnfs.registry

    assert nnfs.registry.__name__ == "nnfs.registry"
    assert isinstance(nnfs.registry.default(), nnfs.registry.Registry)


@pytest.mark.parametrize("package", ["nnfs_cpu", "nnfs_opencl", "nnfs_cuda", "nnfs_reference"])
def test_every_backend_has_a_plugin_and_a_backend_module(package):
    """Each backend package declares itself in plugin.py and implements the contract in
    backend.py, so that a diff between two backends shows only what differs."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        pytest.skip(f"{package} is not installed")
    folder = Path(spec.origin).parent
    assert (folder / "plugin.py").is_file() and (folder / "backend.py").is_file(), folder
    backend = (folder / "backend.py").read_text(encoding="utf-8")
    assert "(api.Backend):" in backend, f"{package}.backend defines no api.Backend subclass"


#: Names that say the same role in other words: a backend's module for each role has the one
#: name its siblings use (bench.py for a benchmark, device.py for its device).
OTHER_NAMES = {"benchmark.py": "bench.py", "benchmarks.py": "bench.py", "factory.py": "backend.py",
               "devices.py": "device.py", "hooks.py": "plugin.py"}


def test_backend_modules_of_one_role_have_one_name():
    sources = ROOT.glob("nnfs-*/src/nnfs_*/*.py")
    renamed = [f"{path.relative_to(ROOT)} (its siblings call it {OTHER_NAMES[path.name]})"
               for path in sources if path.name in OTHER_NAMES]
    assert not renamed, renamed


def test_ring_allreduce_on_paper():
    """The cost model lives with the benchmarks, not in nnfs: 2·(N−1)/N of the bytes over each
    link: 400 MB on 2 ranks over 100 Gb/s is 32 ms, and the share moved tends to 2× as N
    grows."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from cost_models import on_paper, ring_allreduce_seconds
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    seconds = ring_allreduce_seconds(400_000_000, 2, 100e9, latency_seconds=0.0)
    assert seconds == pytest.approx(0.032)
    assert ring_allreduce_seconds(10**9, 1, 100e9) == 0.0
    wide = ring_allreduce_seconds(10**9, 1024, 100e9, latency_seconds=0.0)
    assert wide == pytest.approx(2 * 8 * 10**9 / 100e9, rel=1e-3)
    assert on_paper(1000)[0].startswith("   8 ranks: each sends and receives 7.00 kB")
    from nnfs import bench

    article = on_paper(bench.parameter_count(bench.PRESETS["article"]))
    assert article[1].startswith("  64 ranks: each sends and receives 433.25 MB per step")
    import nnfs.mpi

    assert not hasattr(nnfs.mpi, "ring_allreduce_seconds")
    assert not hasattr(nnfs.mpi.World, "broadcast_weights"), "dead code"
