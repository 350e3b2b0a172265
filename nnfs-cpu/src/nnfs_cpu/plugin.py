"""The nnfs plugin of the CPU backend: declares the backend ``cpu`` to nnfs.

nnfs finds this module through the entry point ``cpu`` of group ``nnfs`` in nnfs-cpu's
``pyproject.toml``.
"""

from __future__ import annotations

import numpy as np

from nnfs import backend_api as api

from .backend import CpuBackend

#: The default backend's rank: below a GPU's (cuda 30, opencl on a GPU 20).
PRIORITY = 10

#: The options of ``nnfs.backend("cpu", ...)`` (or ``cpu:threads=2,blas=numpy``).
OPTIONS = (
    api.BackendOption("threads", int, "threads for elementwise work; default: the cores, at "
                      "most 8"),
    api.BackendOption("blas", str, "which BLAS multiplies; auto: MKL where it is installed, on "
                      "an Intel processor, else numpy's", ("auto", "mkl", "numpy")),
    api.BackendOption("direct_blas", bool, "gemm and gemv with alpha and beta in one BLAS call"),
    api.BackendOption("vml", bool, "activations in MKL's vector math when MKL multiplies"),
)


def probe() -> api.BackendStatus:
    """The CPU is always there; name the cores and the BLAS that will multiply (by default)."""
    import os

    from .blas import mkl_blas
    from .device import mkl_is_fast_here

    mkl = mkl_blas() if mkl_is_fast_here() else "not the faster BLAS on this processor"
    blas = "numpy's BLAS" if isinstance(mkl, str) else mkl.name
    return api.BackendStatus(
        available=True,
        devices=(f"{os.cpu_count() or '?'} CPU cores (numpy {np.__version__}, {blas})",),
        dtypes=CpuBackend.dtypes,
    )


@api.hookimpl
def nnfs_backends() -> list[api.BackendSpec]:
    return [
        api.BackendSpec(
            name="cpu",
            factory=CpuBackend,
            api_version=2,
            dtypes=CpuBackend.dtypes,
            probe=probe,
            description="numpy and its BLAS on the CPU",
            priority=PRIORITY,
            options=OPTIONS,
        )
    ]
