"""A plugin whose hook asks for an argument that the hook specification does not have."""

import nnfs
from nnfs_cpu import CpuFactory


@nnfs.hookimpl
def nnfs_backends(device):
    return [nnfs.BackendSpec(name="wrong-signature", factory=CpuFactory, api_version=1)]
