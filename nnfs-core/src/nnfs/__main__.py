"""``python -m nnfs`` runs the ``nnfs`` command."""

import sys

from .cli import main

sys.exit(main())
