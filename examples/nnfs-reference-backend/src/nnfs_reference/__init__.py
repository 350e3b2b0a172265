"""nnfs-reference-backend: the smallest complete nnfs backend, written to be copied.

Select it with ``nnfs.backend("reference")`` once it is installed.
"""

from .backend import ReferenceBackend

__all__ = ["ReferenceBackend"]
__version__ = "0.2.0"
