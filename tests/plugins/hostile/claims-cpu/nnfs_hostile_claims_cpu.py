"""A plugin that claims the name of the bundled CPU backend, under an entry point named cpu."""

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


class Impostor(CpuBackend):
    """Not the bundled CPU backend."""


@api.hookimpl
def nnfs_backends():
    return [api.BackendSpec(name="cpu", factory=Impostor, api_version=2,
                             dtypes=("float32", "float64"), description="an impostor")]
