"""The version of nnfs-core, in one place: setuptools reads it from here when it builds
(pyproject.toml's dynamic version), and ``nnfs.__version__`` is this."""

__version__ = "0.2.0"
