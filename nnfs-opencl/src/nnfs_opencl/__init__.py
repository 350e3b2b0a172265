"""nnfs-opencl: the OpenCL backend of nnfs, on pyopencl.

Select it with ``nnfs.backend("opencl")``; nnfs finds it through its entry point. Importing this
package does not import pyopencl or touch a device: that happens when a factory is created.
"""

from nnfs._clash import require_nnfs_core

require_nnfs_core("nnfs-opencl")  # PyPI's unrelated 'nnfs' may have replaced it

from .programs import SmallerWorkGroupWarning  # noqa: E402

#: The version of this distribution, and the one place it is written: setuptools reads it
#: from here.
__version__ = "0.2.0"

__all__ = ["SmallerWorkGroupWarning", "__version__"]
