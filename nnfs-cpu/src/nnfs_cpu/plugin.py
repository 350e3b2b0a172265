"""The nnfs plugin of the CPU backend: declares the backend ``cpu`` to nnfs.

nnfs finds this module through the entry point ``cpu`` of group ``nnfs`` in nnfs-cpu's
``pyproject.toml``.
"""

from __future__ import annotations

import numpy as np

import nnfs

from .factory import CpuFactory


def probe() -> nnfs.BackendStatus:
    """The CPU is always there; name the cores and the BLAS that will multiply (by default)."""
    import os

    from .blas import mkl_blas

    mkl = mkl_blas()
    blas = "numpy's BLAS" if isinstance(mkl, str) else mkl.name
    return nnfs.BackendStatus(
        available=True,
        devices=(f"{os.cpu_count() or '?'} CPU cores (numpy {np.__version__}, {blas})",),
        dtypes=CpuFactory.dtypes,
    )


@nnfs.hookimpl
def nnfs_backends() -> list[nnfs.BackendSpec]:
    return [
        nnfs.BackendSpec(
            name="cpu",
            factory=CpuFactory,
            api_version=1,
            dtypes=CpuFactory.dtypes,
            probe=probe,
            description="numpy and its BLAS on the CPU",
        )
    ]
