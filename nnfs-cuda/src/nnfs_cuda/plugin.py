"""The nnfs plugin of the CUDA backend: declares the backend ``cuda`` to nnfs.

nnfs finds this module through the entry point ``cuda`` of group ``nnfs`` in nnfs-cuda's
``pyproject.toml``. Importing it imports no CuPy and touches no device; the probe does, when
``nnfs backends`` or ``nnfs.backend("cuda")`` asks, and on a machine without an NVIDIA GPU it
says why the backend cannot run instead of failing.
"""

from __future__ import annotations

from nnfs import backend_api as api

from .backend import CudaBackend
from .device import DeviceUnavailable, find_devices

#: The default backend's rank: an NVIDIA GPU is preferred to everything else.
PRIORITY = 30

#: The options of ``nnfs.backend("cuda", ...)`` (or ``cuda:device=1``).
OPTIONS = (api.BackendOption("device", int, "the CUDA device index; default: 0"),)


def probe() -> api.BackendStatus:
    """The CUDA devices here, or why there are none (no CuPy, no driver, no GPU)."""
    try:
        devices = find_devices()
    except DeviceUnavailable as reason:
        return api.BackendStatus(available=False, reason=str(reason))
    return api.BackendStatus(available=True, devices=tuple(str(d) for d in devices),
                              dtypes=CudaBackend.dtypes)


@api.hookimpl
def nnfs_backends() -> list[api.BackendSpec]:
    return [
        api.BackendSpec(
            name="cuda",
            factory=CudaBackend,
            api_version=2,
            dtypes=CudaBackend.dtypes,
            probe=probe,
            description="NVIDIA GPUs: cuBLAS and CUDA kernels on one stream, through CuPy",
            priority=PRIORITY,
            options=OPTIONS,
        )
    ]
