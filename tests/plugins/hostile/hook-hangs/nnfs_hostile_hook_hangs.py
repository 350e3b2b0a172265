"""A plugin whose nnfs_backends hook never returns."""

import time

import nnfs


@nnfs.hookimpl
def nnfs_backends():
    time.sleep(3600)
