"""nnfs-cuda: the CUDA backend of nnfs, on CuPy (cuBLAS and NVRTC-compiled kernels).

Select it with ``nnfs.backend("cuda")`` (``device=1`` for the second GPU); nnfs finds it
through its entry point. Importing this package imports no CuPy and touches no GPU.
"""

from nnfs._clash import require_nnfs_core

require_nnfs_core("nnfs-cuda")  # PyPI's unrelated 'nnfs' may have replaced it

from .backend import CudaBackend, SlowFloat64Warning  # noqa: E402

__all__ = ["CudaBackend", "SlowFloat64Warning"]
#: The version of this distribution, and the one place it is written: setuptools reads it
#: from here.
__version__ = "0.2.0"
