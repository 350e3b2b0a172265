"""Two backends whose code leaves the process: a probe that calls sys.exit(3), a factory that
raises SystemExit."""

import sys

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


def probe():
    sys.exit(3)


def leaving_factory(dtype="float32"):
    raise SystemExit("factory-exits: no device, goodbye")


@api.hookimpl
def nnfs_backends():
    return [api.BackendSpec(name="probe-exits", factory=CpuBackend, api_version=2,
                             probe=probe, description="its probe exits"),
            api.BackendSpec(name="factory-exits", factory=leaving_factory, api_version=2,
                             description="its factory exits")]
