"""The version of nnfs-core, in one place."""

__version__ = "0.2.0"
