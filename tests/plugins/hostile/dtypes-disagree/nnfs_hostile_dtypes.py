"""Backends whose BackendSpec, probe and factory disagree on dtypes:

* ``mixed-dtypes``: the spec declares float32 and float64, the factory class float32 only;
* ``device-float64``: the spec declares both, the probe finds a device of float64 only;
* ``probe-says-more``: the spec declares float32, the probe reports float64 as well."""

import nnfs
from nnfs_cpu import CpuFactory


class SingleFactory(CpuFactory):
    dtypes = ("float32",)


@nnfs.hookimpl
def nnfs_backends():
    return [
        nnfs.BackendSpec(name="mixed-dtypes", factory=SingleFactory, api_version=1,
                         dtypes=("float32", "float64")),
        nnfs.BackendSpec(name="device-float64", factory=CpuFactory, api_version=1,
                         dtypes=("float32", "float64"),
                         probe=lambda: nnfs.BackendStatus(True, dtypes=("float64",))),
        nnfs.BackendSpec(name="probe-says-more", factory=CpuFactory, api_version=1,
                         dtypes=("float32",),
                         probe=lambda: nnfs.BackendStatus(True, dtypes=("float32", "float64"))),
    ]
