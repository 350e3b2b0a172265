"""A plugin whose hook returns a single BackendSpec where a list of them is expected."""

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


@api.hookimpl
def nnfs_backends():
    return api.BackendSpec(name="junk", factory=CpuBackend, api_version=2)
