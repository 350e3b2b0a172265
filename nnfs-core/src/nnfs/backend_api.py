"""What a backend author needs, in one namespace: the contract, the records a plugin returns,
the hook marker, the kinds, and registering backends in process.

A backend distribution declares an entry point in the group ``nnfs`` whose module holds a hook
(see :mod:`nnfs.hookspecs`)::

    from nnfs import backend_api as api

    class MyBackend(api.Backend):          # the contract: see nnfs.contract
        name = "mybackend"
        dtypes = ("float32",)
        ...

    @api.hookimpl
    def nnfs_backends():
        return [api.BackendSpec(name="mybackend", factory=MyBackend,
                                api_version=api.API_VERSION)]

``python -m nnfs.testing mybackend`` then runs the conformance kit on it. Users never need
this module: :mod:`nnfs` is theirs.
"""

from __future__ import annotations

from collections.abc import Callable

from ._args import DTYPES
from .contract import Backend, Capabilities, MemoryLedger, MemoryLimits, Plan, Step, run, steps
from .hookspecs import hookimpl
from .kinds import (
    HYPER_SIZE,
    ActivationKind,
    CostKind,
    DeltaKind,
    Hyper,
    Operation,
    OptimizerKind,
)
from .registry import BackendInfo, Registry
from .spec import (
    API_VERSION,
    MIN_API_VERSION,
    BackendOption,
    BackendSpec,
    BackendStatus,
    parse_backend,
)


def register_plugin(plugin: object, name: str | None = None) -> Callable[[], None]:
    """Register, in this process, a plugin module or object with ``nnfs_backends`` hookimpls.

    Returns a function that unregisters it."""
    from . import registry

    return registry.default().register_plugin(plugin, name)


def register_backend(spec: BackendSpec) -> Callable[[], None]:
    """Register one backend in this process; returns a function that unregisters it."""
    from . import registry

    return registry.default().register_backend(spec)


__all__ = [
    "API_VERSION",
    "DTYPES",
    "HYPER_SIZE",
    "MIN_API_VERSION",
    "ActivationKind",
    "Backend",
    "BackendInfo",
    "BackendOption",
    "BackendSpec",
    "BackendStatus",
    "Capabilities",
    "CostKind",
    "DeltaKind",
    "Hyper",
    "MemoryLedger",
    "MemoryLimits",
    "Operation",
    "OptimizerKind",
    "Plan",
    "Registry",
    "Step",
    "hookimpl",
    "parse_backend",
    "register_backend",
    "register_plugin",
    "run",
    "steps",
]
