"""nnfs-cpu: the CPU backend of nnfs, on numpy.

Select it with ``nnfs.backend("cpu")``; nnfs finds it through its entry point.
"""

from .backend import CpuBackend

__all__ = ["CpuBackend"]
__version__ = "0.2.0"
