"""The small frozen records that plugins hand to nnfs.

A backend plugin returns :class:`BackendSpec` records from its ``nnfs_backends`` hook. nnfs
checks each record when it is created (the name is normalised and validated there), so a plugin
with a malformed record fails in its own hook call, where nnfs can report it, and never later in
the middle of a user's program.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._args import DTYPES
from .errors import NnfsTypeError, NnfsValueError

if TYPE_CHECKING:
    from .contract import Backend

#: The version of the plugin contract this nnfs-core speaks. It changes only when a change to
#: the hook specifications or to :class:`nnfs.contract.Backend` would break existing plugins.
API_VERSION = 2

#: The oldest plugin contract version this nnfs-core still accepts.
MIN_API_VERSION = 2

#: Where a plugin author reads how to move a backend from API 1 to API 2.
MIGRATION_NOTE = "docs/backend-api-2.md in the nnfs repository (nnfs.contract's docstring)"


_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def normalize_backend_name(name: object, *, what: str = "backend name") -> str:
    """Return ``name`` lower-cased and stripped, or raise if it cannot name a backend.

    A backend name starts with a letter and holds at most 32 letters, digits, ``_`` and ``-``.
    """
    if not isinstance(name, str):
        raise NnfsTypeError(
            f"{what} must be a string such as 'cpu', got {type(name).__name__} {name!r}")
    normal = name.strip().lower()
    if not _NAME.fullmatch(normal):
        raise NnfsValueError(
            f"{what} {name!r} is not a valid backend name: expected a letter followed by at most "
            "31 letters, digits, '_' or '-' (for example 'cpu', 'opencl', 'my-gpu')"
        )
    return normal


@dataclass(frozen=True)
class BackendStatus:
    """What a backend's probe found on this machine.

    ``available`` says whether :func:`nnfs.backend` can create a factory; when it cannot,
    ``reason`` says why in words a user can act on ("no NVIDIA driver: libcuda.so.1 not found").
    ``devices`` names the devices the backend would use and ``dtypes`` the dtypes they support.
    """

    available: bool
    reason: str = ""
    devices: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.available and not self.reason:
            raise NnfsValueError("BackendStatus: an unavailable backend must give a reason")
        object.__setattr__(self, "devices", tuple(str(d) for d in self.devices))
        object.__setattr__(self, "dtypes", tuple(str(d) for d in self.dtypes))


@dataclass(frozen=True)
class BackendSpec:
    """A backend, as a plugin declares it from its ``nnfs_backends`` hook.

    Attributes:
        name: what users pass to :func:`nnfs.backend`; normalised to lower case.
        factory: called as ``factory(dtype=..., **options)`` to create the backend, an
            :class:`nnfs.contract.Backend`; nnfs wraps it in the :class:`nnfs.Factory` users
            get. Usually the Backend subclass itself.
        api_version: the nnfs plugin API the plugin was written for; give
            ``nnfs.backend_api.API_VERSION`` as it was when you wrote the plugin.
        dtypes: the dtypes the backend can support on some device (capability constant).
        probe: optional, called without arguments by ``nnfs backends`` and before creating a
            factory; returns a :class:`BackendStatus`. It must be cheap and must not raise for
            a missing device: return ``BackendStatus(False, reason)`` instead.
        description: one line for ``nnfs backends``.
    """

    name: str
    factory: Callable[..., Backend]
    api_version: int
    dtypes: tuple[str, ...] = ("float32",)
    probe: Callable[[], BackendStatus] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_backend_name(self.name))
        if not callable(self.factory):
            raise NnfsTypeError(f"BackendSpec {self.name!r}: factory must be callable")
        if isinstance(self.api_version, bool) or not isinstance(self.api_version, int):
            raise NnfsTypeError(
                f"BackendSpec {self.name!r}: api_version must be an int such as "
                f"nnfs.API_VERSION ({API_VERSION}), got {self.api_version!r}"
            )
        dtypes = tuple(self.dtypes)
        unknown = [d for d in dtypes if d not in DTYPES]
        if not dtypes or unknown:
            raise NnfsValueError(
                f"BackendSpec {self.name!r}: dtypes must be a non-empty subset of "
                f"{DTYPES}, got {dtypes!r}"
            )
        object.__setattr__(self, "dtypes", dtypes)
        if self.probe is not None and not callable(self.probe):
            raise NnfsTypeError(f"BackendSpec {self.name!r}: probe must be callable or None")
