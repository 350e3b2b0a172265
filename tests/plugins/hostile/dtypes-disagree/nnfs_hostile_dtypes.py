"""Backends whose BackendSpec, probe and factory disagree on dtypes:

* ``mixed-dtypes``: the spec declares float32 and float64, the factory class float32 only;
* ``device-float64``: the spec declares both, the probe finds a device of float64 only;
* ``probe-says-more``: the spec declares float32, the probe reports float64 as well."""

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


class SingleBackend(CpuBackend):
    dtypes = ("float32",)


@api.hookimpl
def nnfs_backends():
    return [
        api.BackendSpec(name="mixed-dtypes", factory=SingleBackend, api_version=2,
                         dtypes=("float32", "float64")),
        api.BackendSpec(name="device-float64", factory=CpuBackend, api_version=2,
                         dtypes=("float32", "float64"),
                         probe=lambda: api.BackendStatus(True, dtypes=("float64",))),
        api.BackendSpec(name="probe-says-more", factory=CpuBackend, api_version=2,
                         dtypes=("float32",),
                         probe=lambda: api.BackendStatus(True, dtypes=("float32", "float64"))),
    ]
