"""The nnfs plugin of the reference backend: tells nnfs that the backend ``reference`` exists.

nnfs imports this module through the entry point ``reference`` of group ``nnfs`` (see
``pyproject.toml``) the first time a program asks for a backend, and calls ``nnfs_backends``.
Keep this module cheap to import and touch no device here: nnfs lists backends on machines that
do not have their device.
"""

from __future__ import annotations

import numpy as np

from nnfs import backend_api as api

from .backend import ReferenceBackend


def probe() -> api.BackendStatus:
    """Is the device there? Called by ``nnfs backends`` and before a factory is created.

    A GPU backend looks for its driver and devices here and, when there are none, returns
    ``BackendStatus(False, reason)`` with a reason the user can act on. It never raises.
    numpy is always there.
    """
    return api.BackendStatus(
        available=True,
        devices=(f"host memory (numpy {np.__version__})",),
        dtypes=ReferenceBackend.dtypes,
    )


@api.hookimpl
def nnfs_backends() -> list[api.BackendSpec]:
    return [
        api.BackendSpec(
            name="reference",
            factory=ReferenceBackend,
            # The plugin API this backend was written for, as a literal: a future nnfs-core
            # that speaks another API then refuses it with a clear message instead of
            # running it against a contract it does not know.
            api_version=2,
            dtypes=ReferenceBackend.dtypes,
            probe=probe,
            description="the reference backend: plain numpy, a template to copy",
        )
    ]
