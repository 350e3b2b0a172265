"""Two backends whose code leaves the process: a probe that calls sys.exit(3), a factory that
raises SystemExit."""

import sys

import nnfs
from nnfs_cpu import CpuFactory


def probe():
    sys.exit(3)


def leaving_factory(dtype="float32"):
    raise SystemExit("factory-exits: no device, goodbye")


@nnfs.hookimpl
def nnfs_backends():
    return [nnfs.BackendSpec(name="probe-exits", factory=CpuFactory, api_version=1,
                             probe=probe, description="its probe exits"),
            nnfs.BackendSpec(name="factory-exits", factory=leaving_factory, api_version=1,
                             description="its factory exits")]
