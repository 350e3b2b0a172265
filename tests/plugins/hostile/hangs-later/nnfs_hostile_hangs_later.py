"""A plugin whose backend's probe never returns: ``hangs-later`` declares ``probe-hangs``."""

import time

from nnfs import backend_api as api
from nnfs_cpu import CpuBackend


def probe():
    time.sleep(3600)


@api.hookimpl
def nnfs_backends():
    return [api.BackendSpec(name="probe-hangs", factory=CpuBackend, api_version=2, probe=probe)]
