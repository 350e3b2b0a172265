"""A working plugin that claims the backend name 'twin', as the other twin does."""

import nnfs
from nnfs_cpu import CpuFactory


@nnfs.hookimpl
def nnfs_backends():
    return [nnfs.BackendSpec(name="twin", factory=CpuFactory, api_version=1,
                             description="twin a")]
