"""A plugin that imports, but whose nnfs_backends hook raises."""

import nnfs


@nnfs.hookimpl
def nnfs_backends():
    raise RuntimeError("hook-raises could not read its device list")
