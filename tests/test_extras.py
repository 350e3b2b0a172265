"""Each optional dependency that is installed does what nnfs installs it for.

nnfs uses most of its optional dependencies only when they work, and goes on without them
otherwise: no progress bar without ``tqdm.auto``, numpy's own functions when threadpoolctl
cannot find numpy's BLAS, the OpenCL tests skipped when pyopencl finds no device. That is
right for a user, but it would let a too-old version pass the test suite by skipping what it
breaks. So here, where a dependency is installed, what it is there for must happen: this is
what makes the run at the lowest declared versions (``.ci/release``) prove those versions.
Each test skips, with the reason, where its dependency is not installed.
"""

from __future__ import annotations

import fcntl
import os
import platform
import struct
import subprocess
import sys
import termios
from importlib import metadata
from pathlib import Path

import pytest

import nnfs


def _installed(distribution: str) -> str:
    """The installed version of ``distribution``, or skip the test saying it is absent."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed")


def test_tqdm_draws_the_progress_bar_on_a_terminal():
    version = _installed("tqdm")
    _installed("nnfs-cpu")
    code = ("import numpy as np, nnfs\n"
            "X = np.random.default_rng(0).normal(size=(40, 4))\n"
            "y = np.arange(40) % 2\n"
            "net = nnfs.inference_network(nnfs.backend('cpu'), 4, [nnfs.fully_connected(2, "
            "'softmax')], seed=0)\n"
            "nnfs.fit(net, X, y, epochs=3, batch_size=10)\n")
    primary, secondary = os.openpty()  # fit's stderr is a terminal, 80 columns wide
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        result = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=secondary, timeout=120)
    finally:
        os.close(secondary)
    drawn = b""
    try:
        while chunk := os.read(primary, 65536):
            drawn += chunk
    except OSError:  # EIO: the terminal's other end is closed and everything has been read
        pass
    os.close(primary)
    assert result.returncode == 0, drawn.decode(errors="replace")
    assert b"/3 [" in drawn and b"epoch/s" in drawn, f"tqdm {version} drew: {drawn!r}"


def test_threadpoolctl_finds_the_blas_of_numpys_wheel():
    version = _installed("threadpoolctl")
    pytest.importorskip("nnfs_cpu", reason="nnfs-cpu is not installed")
    import numpy as np

    from nnfs_cpu.blas import numpy_blas

    libraries = Path(np.__file__).parent.parent / "numpy.libs"
    if not any("openblas" in path.name for path in libraries.glob("*")):
        pytest.skip(f"this numpy ({np.__version__}) does not ship OpenBLAS in numpy.libs")
    assert numpy_blas() is not None, (
        f"threadpoolctl {version} does not find the OpenBLAS of numpy {np.__version__}")


def test_mkl_multiplies_and_runs_the_vector_math():
    version = _installed("mkl")
    pytest.importorskip("nnfs_cpu", reason="nnfs-cpu is not installed")
    from nnfs_cpu.blas import mkl_blas
    from nnfs_cpu.vml import mkl_vml

    blas, vml = mkl_blas(), mkl_vml()
    assert not isinstance(blas, str), f"mkl {version}: {blas}"
    assert not isinstance(vml, str), f"mkl {version}: {vml}"


def test_pocl_gives_pyopencl_a_device():
    pocl = _installed("pocl-binary-distribution")
    pyopencl = _installed("pyopencl")
    info = next((i for i in nnfs.backends() if i.name == "opencl"), None)
    if info is None:
        pytest.skip("nnfs-opencl is not installed")
    assert info.available, f"pyopencl {pyopencl} with PoCL {pocl}: {info.reason}"
    assert any("Portable Computing Language" in device or "pthread" in device.lower()
               or "cpu" in device.lower() for device in info.devices), info.devices


def test_the_cuda_wheels_bring_nvrtc():
    version = _installed("nnfs-cuda")
    cupy = [d.metadata["Name"] for d in metadata.distributions()
            if (d.metadata["Name"] or "").lower().startswith("cupy-cuda")]
    if not cupy:
        pytest.skip("no CuPy is installed (the extras cuda12 and cuda13 of nnfs-cuda bring one)")
    if platform.machine() not in ("x86_64", "AMD64", "aarch64"):
        pytest.skip(f"NVIDIA's wheels are not made for {platform.machine()}")
    from cupy_backends.cuda.libs import nvrtc

    assert nvrtc.getVersion() >= (12, 0), f"nnfs-cuda {version} with {cupy}"


def test_pyopencl_sees_the_systems_pocl_beside_the_wheels():
    """.ci/run installs Debian's PoCL because the wheel's cannot compile for every processor
    (it does not know AMD's Zen 5), and nnfs-opencl takes the first device that builds a
    program: pyopencl must see both (pyopencl 2022.2.3 and older see the system's drivers only,
    so the pocl extra gives them nothing)."""
    pocl = _installed("pocl-binary-distribution")
    pyopencl = _installed("pyopencl")
    if not Path("/etc/OpenCL/vendors/pocl.icd").is_file():
        pytest.skip("the system has no PoCL of its own (Debian's pocl-opencl-icd)")
    import pyopencl as cl

    platforms = [p for p in cl.get_platforms() if p.name == "Portable Computing Language"]
    assert len(platforms) >= 2, (
        f"pyopencl {pyopencl} sees {len(platforms)} PoCL platform(s), not the wheel's "
        f"({pocl}) and the system's")
