"""A working backend that prints to standard output at import, in its hook, its probe and
its factory, from Python and from the file descriptor (as a C library would)."""

import os

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend

print("noisy: imported")
os.write(1, b"noisy: imported, said on descriptor 1\n")


class NoisyBackend(CpuBackend):
    def __init__(self, dtype="float32"):
        print("noisy: making a factory")
        super().__init__(dtype)


def probe():
    print("noisy: probing")
    return api.BackendStatus(True, dtypes=("float32", "float64"))


@api.hookimpl
def nnfs_backends():
    print("noisy: declaring")
    return [api.BackendSpec(name="noisy", factory=NoisyBackend, api_version=2,
                             dtypes=("float32", "float64"), probe=probe,
                             description="prints everywhere")]
