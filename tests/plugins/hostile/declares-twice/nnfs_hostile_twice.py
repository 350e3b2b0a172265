"""A plugin that declares one backend name twice."""

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


@api.hookimpl
def nnfs_backends():
    return [api.BackendSpec(name="double", factory=CpuBackend, api_version=2),
            api.BackendSpec(name="double", factory=CpuBackend, api_version=2,
                             dtypes=("float64",))]
