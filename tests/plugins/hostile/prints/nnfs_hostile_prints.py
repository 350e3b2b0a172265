"""A working backend that prints to standard output at import, in its hook, its probe and
its factory, from Python and from the file descriptor (as a C library would)."""

import os

import nnfs
from nnfs_cpu import CpuFactory

print("noisy: imported")
os.write(1, b"noisy: imported, said on descriptor 1\n")


class NoisyFactory(CpuFactory):
    def __init__(self, dtype="float32"):
        print("noisy: making a factory")
        super().__init__(dtype)


def probe():
    print("noisy: probing")
    return nnfs.BackendStatus(True, dtypes=("float32", "float64"))


@nnfs.hookimpl
def nnfs_backends():
    print("noisy: declaring")
    return [nnfs.BackendSpec(name="noisy", factory=NoisyFactory, api_version=1,
                             dtypes=("float32", "float64"), probe=probe,
                             description="prints everywhere")]
