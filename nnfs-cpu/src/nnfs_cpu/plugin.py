"""The nnfs plugin of the CPU backend: declares the backend ``cpu`` to nnfs.

nnfs finds this module through the entry point ``cpu`` of group ``nnfs`` in nnfs-cpu's
``pyproject.toml``.
"""

from __future__ import annotations

import numpy as np

import nnfs

from .factory import CpuFactory


def probe() -> nnfs.BackendStatus:
    """The CPU is always there; name what numpy's BLAS will run on."""
    import os

    return nnfs.BackendStatus(
        available=True,
        devices=(f"{os.cpu_count() or '?'} CPU cores (numpy {np.__version__})",),
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
