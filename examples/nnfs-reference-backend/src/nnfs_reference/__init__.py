"""nnfs-reference-backend: the smallest complete nnfs backend, written to be copied.

Select it with ``nnfs.backend("reference")`` once it is installed.
"""

from .backend import ReferenceBackend

__all__ = ["ReferenceBackend"]
#: The version of this distribution, and the one place it is written: setuptools reads it
#: from here.
__version__ = "0.2.0"
