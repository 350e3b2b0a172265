"""A plugin written for plugin API 1, which this nnfs-core no longer speaks (it speaks 2)."""

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


@api.hookimpl
def nnfs_backends():
    return [api.BackendSpec(name="old-api", factory=CpuBackend, api_version=1)]
