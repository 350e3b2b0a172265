"""``python -m nnfs`` runs the ``nnfs`` command."""

import sys

from ._clash import exit_if_replaced

exit_if_replaced("python -m nnfs")  # before anything reads nnfs/__init__.py, which may not be ours

from .cli import main  # noqa: E402

sys.exit(main())
