"""A plugin written for a plugin API that this nnfs-core no longer speaks."""

import nnfs
from nnfs_cpu import CpuFactory


@nnfs.hookimpl
def nnfs_backends():
    return [nnfs.BackendSpec(name="old-api", factory=CpuFactory, api_version=0)]
