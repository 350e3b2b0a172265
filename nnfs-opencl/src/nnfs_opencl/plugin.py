"""The nnfs plugin of the OpenCL backend: declares the backend ``opencl`` to nnfs.

nnfs finds this module through the entry point ``opencl`` of group ``nnfs`` in nnfs-opencl's
``pyproject.toml``. Importing it imports neither pyopencl nor touches a device: the probe and
the factory do that when they are called.
"""

from __future__ import annotations

import nnfs
from nnfs import backend_api as api

#: What the backend can do on some device; the probe says what the selected device does.
DTYPES = ("float32", "float64")

#: The default backend's rank with a GPU; with a CPU device only (PoCL), it ranks below the
#: cpu backend, which is faster there.
PRIORITY, CPU_ONLY_PRIORITY = 20, 5

#: The options of ``nnfs.backend("opencl", ...)`` (or ``opencl:device=1,gemm=clblast``).
OPTIONS = (
    api.BackendOption("device", (int, str), "a number, 'platform:device' or part of a name; "
                      "default: NNFS_OPENCL_DEVICE, else the first GPU, else the first device"),
    api.BackendOption("gemm", str, "the matrix product", ("auto", "blocked", "tiled", "clblast")),
)


def make_factory(dtype: object = "float32", device: object = None, gemm: str = "auto"):
    """Create an :class:`nnfs_opencl.backend.OpenclBackend` (see it for the options)."""
    from .backend import OpenclBackend

    return OpenclBackend(dtype=dtype, device=device, gemm=gemm)


def probe() -> api.BackendStatus:
    """List the OpenCL devices and mark the one a factory would use; never raises."""
    try:
        import pyopencl  # noqa: F401
    except ImportError as error:
        return api.BackendStatus(False, f"pyopencl cannot be imported: {error}")
    from .device import all_devices, select_device

    try:
        devices = all_devices()
        chosen = select_device()
    except nnfs.NnfsError as error:
        return api.BackendStatus(False, str(error))
    names = [device.describe() + (" (selected)" if device.number == chosen.number else "")
             for device in devices]
    return api.BackendStatus(True, devices=names, dtypes=chosen.dtypes,
                             priority=PRIORITY if chosen.is_gpu else CPU_ONLY_PRIORITY)


@api.hookimpl
def nnfs_backends() -> list[api.BackendSpec]:
    return [
        api.BackendSpec(
            name="opencl",
            factory=make_factory,
            api_version=2,
            dtypes=DTYPES,
            probe=probe,
            description="OpenCL kernels through pyopencl (GPUs, or the CPU with PoCL)",
            priority=PRIORITY,
            options=OPTIONS,
        )
    ]
