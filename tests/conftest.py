"""Shared fixtures: the backends installed here, each with the dtypes it declares."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import nnfs

ROOT = Path(__file__).resolve().parent.parent


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


def run_nnfs(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``nnfs`` command of this environment (as ``python -m nnfs``)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "nnfs", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
