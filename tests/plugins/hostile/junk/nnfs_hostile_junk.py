"""A plugin whose hook returns a single BackendSpec where a list of them is expected."""

import nnfs
from nnfs_cpu import CpuFactory


@nnfs.hookimpl
def nnfs_backends():
    return nnfs.BackendSpec(name="junk", factory=CpuFactory, api_version=1)
