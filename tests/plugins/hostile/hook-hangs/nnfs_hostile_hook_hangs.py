"""A plugin whose nnfs_backends hook never returns."""

import time

from nnfs import backend_api as api


@api.hookimpl
def nnfs_backends():
    time.sleep(3600)
