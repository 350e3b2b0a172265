"""A plugin written for a plugin API that this nnfs-core does not speak yet."""

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


@api.hookimpl
def nnfs_backends():
    return [api.BackendSpec(name="future-api", factory=CpuBackend,
                             api_version=api.API_VERSION + 1)]
