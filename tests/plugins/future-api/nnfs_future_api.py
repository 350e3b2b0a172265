"""A plugin written for a plugin API that this nnfs-core does not speak yet."""

import nnfs
from nnfs_cpu import CpuFactory


@nnfs.hookimpl
def nnfs_backends():
    return [nnfs.BackendSpec(name="future-api", factory=CpuFactory,
                             api_version=nnfs.API_VERSION + 1)]
