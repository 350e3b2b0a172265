"""A working plugin that claims the backend name 'twin', as the other twin does."""

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


@api.hookimpl
def nnfs_backends():
    return [api.BackendSpec(name="twin", factory=CpuBackend, api_version=2,
                             description="twin a")]
