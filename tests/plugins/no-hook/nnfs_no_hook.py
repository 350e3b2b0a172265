"""A plugin whose author forgot @nnfs.hookimpl: pluggy sees no hook in it."""

import nnfs
from nnfs_cpu import CpuFactory


def nnfs_backends():
    return [nnfs.BackendSpec(name="no-hook", factory=CpuFactory, api_version=1)]
