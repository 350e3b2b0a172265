"""A plugin that declares one backend name twice."""

import nnfs
from nnfs_cpu import CpuFactory


@nnfs.hookimpl
def nnfs_backends():
    return [nnfs.BackendSpec(name="double", factory=CpuFactory, api_version=1),
            nnfs.BackendSpec(name="double", factory=CpuFactory, api_version=1,
                             dtypes=("float64",))]
