"""nnfs-opencl: the OpenCL backend of nnfs, on pyopencl.

Select it with ``nnfs.backend("opencl")``; nnfs finds it through its entry point. Importing this
package does not import pyopencl or touch a device: that happens when a factory is created.
"""

from .programs import SmallerWorkGroupWarning

__version__ = "0.2.0"

__all__ = ["SmallerWorkGroupWarning", "__version__"]
