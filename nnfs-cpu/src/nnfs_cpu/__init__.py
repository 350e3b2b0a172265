"""nnfs-cpu: the CPU backend of nnfs, on numpy.

Select it with ``nnfs.backend("cpu")``; nnfs finds it through its entry point.
"""

from nnfs._clash import require_nnfs_core

require_nnfs_core("nnfs-cpu")  # PyPI's unrelated 'nnfs' may have replaced it

from .backend import CpuBackend  # noqa: E402

__all__ = ["CpuBackend"]
#: The version of this distribution, and the one place it is written: setuptools reads it
#: from here.
__version__ = "0.2.0"
