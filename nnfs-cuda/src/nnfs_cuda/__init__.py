"""nnfs-cuda: the CUDA backend of nnfs, on CuPy (cuBLAS and NVRTC-compiled kernels).

Select it with ``nnfs.backend("cuda")`` (``device=1`` for the second GPU); nnfs finds it
through its entry point. Importing this package imports no CuPy and touches no GPU.
"""

from .backend import CudaBackend, SlowFloat64Warning

__all__ = ["CudaBackend", "SlowFloat64Warning"]
__version__ = "0.2.0"
