"""A plugin whose module fails to import: it needs a package that is not installed."""

import nnfs_missing_dependency  # noqa: F401  (no such module: the import fails)
