"""The test suite without an optional backend: its tests collect, and skip with the reason.

Each test runs pytest in a subprocess with a package hidden — a directory put first on
``PYTHONPATH`` whose package of that name raises ``ModuleNotFoundError`` on import, as in an
environment where it was never installed — and requires no error, no failure, and a printed
reason for every skip.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT


def _pytest_without(package: str, tmp_path, *tests: str) -> subprocess.CompletedProcess:
    hidden = tmp_path / "hidden" / package
    hidden.mkdir(parents=True)
    message = f"No module named {package} (hidden by the test)"
    (hidden / "__init__.py").write_text(
        f"raise ModuleNotFoundError({message!r}, name={package!r})\n")
    path = os.pathsep.join(p for p in (str(hidden.parent), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "PYTHONPATH": path})


def _skipped_with_reasons(result: subprocess.CompletedProcess) -> list[str]:
    summary = result.stdout.strip().splitlines()[-1]
    # 5: nothing collected, as when every module of the run is skipped whole
    assert result.returncode in (0, 5), result.stdout[-3000:] + result.stderr[-2000:]
    assert "error" not in summary and "failed" not in summary and "passed" not in summary, summary
    reasons = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert reasons, result.stdout[-2000:]
    return reasons


def test_without_nnfs_cuda_the_cuda_tests_skip_with_a_reason(tmp_path):
    pytest.importorskip("nnfs_cuda", reason="nnfs-cuda is not installed: nothing to hide")
    result = _pytest_without("nnfs_cuda", tmp_path, "nnfs-cuda/tests/test_cuda_backend.py",
                             "nnfs-cuda/tests/test_cuda_ordering.py")
    for line in _skipped_with_reasons(result):
        assert "nnfs-cuda is not installed here: pip install ./nnfs-cuda" in line, line


def test_without_pyopencl_the_opencl_tests_skip_with_a_reason(tmp_path):
    pytest.importorskip("nnfs_opencl", reason="nnfs-opencl is not installed")
    result = _pytest_without("pyopencl", tmp_path, "nnfs-opencl/tests/test_opencl_backend.py")
    for line in _skipped_with_reasons(result):
        assert "pyopencl" in line, line
