"""nnfs-reference-backend: the smallest complete nnfs backend, written to be copied.

Select it with ``nnfs.backend("reference")`` once it is installed.
"""

from .factory import ReferenceFactory

__all__ = ["ReferenceFactory"]
__version__ = "0.1.0"
