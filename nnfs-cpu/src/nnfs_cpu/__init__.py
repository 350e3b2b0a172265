"""nnfs-cpu: the CPU backend of nnfs, on numpy.

Select it with ``nnfs.backend("cpu")``; nnfs finds it through its entry point.
"""

from .factory import CpuFactory

__all__ = ["CpuFactory"]
__version__ = "0.1.0"
