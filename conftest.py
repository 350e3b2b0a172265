"""What every test of the repository shares (tests/ for what spans packages, and each
backend's own tests/ folder): the backends installed here, each with the dtypes it declares,
the ``factory`` fixture over all of them, helpers that run nnfs in a subprocess, and the test
plugins of tests/plugins/ installed where only subprocesses see them.

A test that takes ``factory`` runs once per installed backend and declared dtype, and skips with
the backend's reason where one is unavailable; a test that parametrizes ``factory`` itself
(``backend_params(names=...)``) chooses its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nnfs

ROOT = Path(__file__).resolve().parent
#: Small distributions that break the plugin contract in one way each (see their docstrings).
TEST_PLUGINS = ROOT / "tests" / "plugins"
#: The reference backend, which the flawed test backends build on.
REFERENCE_BACKEND = ROOT / "examples" / "nnfs-reference-backend"


def _installed() -> list:
    return nnfs.backends()


def backend_params(*, names: tuple[str, ...] | None = None) -> list:
    """pytest params of (backend name, dtype) for every installed backend and declared dtype.

    A backend that is installed but unavailable (cuda without a GPU) gives one param that skips
    with the backend's own reason, so the skip is visible and explained.
    """
    params = []
    for info in _installed():
        if names is not None and info.name not in names:
            continue
        if not info.available:
            params.append(pytest.param(
                (info.name, "float32"), id=f"{info.name}",
                marks=pytest.mark.skip(reason=f"{info.name} is unavailable here: {info.reason}")))
            continue
        for dtype in info.dtypes:
            marks = [pytest.mark.opencl] if info.name == "opencl" else []
            params.append(pytest.param((info.name, dtype), id=f"{info.name}-{dtype}", marks=marks))
    return params


def _parametrizes(metafunc, name: str) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [part.strip() for part in names.split(",")]
        if name in names:
            return True
    return False


def pytest_generate_tests(metafunc):
    """``factory``, unless the test chooses its own params: every installed backend and
    declared dtype (see :func:`backend_params`)."""
    if "factory" in metafunc.fixturenames and not _parametrizes(metafunc, "factory"):
        metafunc.parametrize("factory", backend_params(), indirect=True)


@pytest.fixture
def factory(request):
    """The factory of the (name, dtype) param of the test."""
    name, dtype = request.param
    return nnfs.backend(name, dtype)


@pytest.fixture
def cpu():
    return nnfs.backend("cpu")


@pytest.fixture
def cpu64():
    return nnfs.backend("cpu", "float64")


def run_nnfs(*args: str, env: dict | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``nnfs`` command of this environment (as ``python -m nnfs``)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "nnfs", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory) -> Path:
    """A directory holding the test plugins of tests/plugins/, and the reference backend they
    build on, installed as real distributions (dist-info, entry points) by one pip call.

    Only subprocesses run with ``PYTHONPATH`` set to it see them (``run_python(plugins=...)``):
    the environment of the test session itself stays as it was.
    """
    root = tmp_path_factory.mktemp("plugins")
    sources = root / "src"
    skip = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    for source in [*sorted(TEST_PLUGINS.iterdir()), REFERENCE_BACKEND]:
        if (source / "pyproject.toml").is_file():
            shutil.copytree(source, sources / source.name, ignore=skip)  # pip builds in place
    site = root / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-index", "--no-build-isolation", "--no-deps", "--target", str(site),
         *sorted(str(path) for path in sources.iterdir())],
        capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"pip could not install the test plugins:\n{result.stdout}{result.stderr}")
    return site


def run_python(*args: str, plugins: Path | None = None, env: dict | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """Run this environment's Python with ``args``, and the distributions installed in
    ``plugins`` on its path. NNFS_* variables of the calling environment are left out."""
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("NNFS_")}
    if plugins is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(
            path for path in (str(plugins), os.environ.get("PYTHONPATH", "")) if path)
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout)


def diverging(factory):
    """Input, target, network and training network on ``factory`` whose cost overflows within
    a few epochs at eta 1.0: a linear network on large inputs."""
    import numpy as np

    rng = np.random.default_rng(5)
    x = factory.matrix(3, 8, rng.normal(size=(3, 8)) * 30)
    y = factory.matrix(2, 8, rng.normal(size=(2, 8)))
    network = nnfs.inference_network(factory, 3, [nnfs.fully_connected(4, "linear"),
                                                  nnfs.fully_connected(2, "linear")], seed=0)
    return x, y, network, nnfs.training_network(network, x)


def run_kit_check(check, factory) -> None:
    """One check of the conformance kit on ``factory``, which it then releases; a check the
    kit skips is skipped here with the kit's reason."""
    from nnfs.testing import CheckSkipped

    try:
        check.function(factory)
    except CheckSkipped as reason:
        pytest.skip(str(reason))
    finally:
        factory.release()


def resident_bytes() -> int:
    """This process's resident memory, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("/proc/self/status has no VmRSS line")


def cpu_factory(*args, **options) -> nnfs.Factory:
    """A CPU factory of its own, made directly (not the registry's shared one), with the
    backend's options: ``cpu_factory("float64", blas="numpy")``."""
    from nnfs_cpu import CpuBackend

    return nnfs.Factory(CpuBackend(*args, **options))


def queued(backend_class, *args, **options) -> nnfs.Factory:
    """A factory of ``backend_class`` that declares itself asynchronous, with no queue to
    drain: sgd then reads costs only at the end, as on CUDA."""
    import dataclasses

    backend = backend_class(*args, **options)
    backend.capabilities = dataclasses.replace(backend.capabilities, asynchronous=True,
                                               sync_every=0)
    return nnfs.Factory(backend)
