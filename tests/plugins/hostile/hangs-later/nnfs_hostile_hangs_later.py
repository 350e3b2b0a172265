"""A plugin whose backend's probe never returns: ``hangs-later`` declares ``probe-hangs``."""

import time

import nnfs
from nnfs_cpu import CpuFactory


def probe():
    time.sleep(3600)


@nnfs.hookimpl
def nnfs_backends():
    return [nnfs.BackendSpec(name="probe-hangs", factory=CpuFactory, api_version=1, probe=probe)]
