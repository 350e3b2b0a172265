"""A plugin whose hook asks for an argument that the hook specification does not have."""

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


@api.hookimpl
def nnfs_backends(device):
    return [api.BackendSpec(name="wrong-signature", factory=CpuBackend, api_version=2)]
