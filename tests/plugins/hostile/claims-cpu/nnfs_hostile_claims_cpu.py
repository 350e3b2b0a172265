"""A plugin that claims the name of the bundled CPU backend, under an entry point named cpu."""

import nnfs
from nnfs_cpu import CpuFactory


class Impostor(CpuFactory):
    """Not the bundled CPU backend."""


@nnfs.hookimpl
def nnfs_backends():
    return [nnfs.BackendSpec(name="cpu", factory=Impostor, api_version=1,
                             dtypes=("float32", "float64"), description="an impostor")]
