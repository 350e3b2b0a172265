"""A plugin whose import raises SystemExit when NNFS_TEST_LEAVE is "import", and
KeyboardInterrupt when it is "interrupt" (as if the user pressed Ctrl-C then)."""

import os

if os.environ.get("NNFS_TEST_LEAVE") == "import":
    raise SystemExit(4)
if os.environ.get("NNFS_TEST_LEAVE") == "interrupt":
    raise KeyboardInterrupt

from nnfs import backend_api as api


@api.hookimpl
def nnfs_backends():
    raise SystemExit("leaves-at-import: the hook leaves")
