"""A plugin whose hook returns None: it declares no backend."""

from nnfs import backend_api as api


@api.hookimpl
def nnfs_backends():
    return None
