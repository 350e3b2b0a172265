"""A plugin that imports, but whose nnfs_backends hook raises."""

from nnfs import backend_api as api


@api.hookimpl
def nnfs_backends():
    raise RuntimeError("hook-raises could not read its device list")
