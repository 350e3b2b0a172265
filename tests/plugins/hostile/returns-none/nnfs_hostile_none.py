"""A plugin whose hook returns None: it declares no backend."""

import nnfs


@nnfs.hookimpl
def nnfs_backends():
    return None
