"""A plugin whose author forgot @api.hookimpl: pluggy sees no hook in it."""

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


def nnfs_backends():
    return [api.BackendSpec(name="no-hook", factory=CpuBackend, api_version=2)]
