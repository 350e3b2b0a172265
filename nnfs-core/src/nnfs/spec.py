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
from typing import TYPE_CHECKING, cast

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
    #: The backend's rank for the default choice on this machine, when it differs from its
    #: spec's ``priority`` (an OpenCL backend whose only device is a CPU ranks below ``cpu``);
    #: None keeps the spec's.
    priority: int | None = None

    def __post_init__(self) -> None:
        if not self.available and not self.reason:
            raise NnfsValueError("BackendStatus: an unavailable backend must give a reason")
        if self.priority is not None and (isinstance(self.priority, bool)
                                          or not isinstance(self.priority, int)):
            raise NnfsTypeError(f"BackendStatus: priority must be an int or None, "
                                f"got {self.priority!r}")
        object.__setattr__(self, "devices", tuple(str(d) for d in self.devices))
        object.__setattr__(self, "dtypes", tuple(str(d) for d in self.dtypes))


#: The types an option given as text (``NAME:key=value``) can be read as.
OPTION_KINDS = (bool, int, float, str)

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class BackendOption:
    """One option of a backend, as ``nnfs.backend(NAME, key=value)`` or, as text, anywhere a
    backend is named (``NAME:key=value,...``: the command line's ``--backend``,
    ``NNFS_BACKEND``, ``python -m nnfs.testing``).

    Attributes:
        name: the keyword the backend's factory takes.
        kind: how a value given as text is read: ``bool``, ``int``, ``float`` or ``str``; a
            tuple of them is tried in order (``(int, str)``: a device number, or a name).
        help: one line for ``nnfs backends`` and for errors.
        choices: the values allowed, when there are few (checked for text and Python values).
    """

    name: str
    kind: type | tuple[type, ...] = str
    help: str = ""
    choices: tuple[object, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise NnfsValueError(f"BackendOption: name must be a keyword, got {self.name!r}")
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if not kinds or any(kind not in OPTION_KINDS for kind in kinds):
            raise NnfsTypeError(f"BackendOption {self.name!r}: kind must be one of bool, int, "
                                f"float, str or a tuple of them, got {self.kind!r}")
        object.__setattr__(self, "kind", kinds)
        object.__setattr__(self, "choices", tuple(self.choices))

    def parse(self, text: str, what: str) -> object:
        """The value of ``text`` (an option written as text), checked."""
        return self.check(self._convert(text, what), what)

    @property
    def _kinds(self) -> tuple[type, ...]:
        """``kind`` as a tuple, as ``__post_init__`` leaves it."""
        return cast("tuple[type, ...]", self.kind)

    def _convert(self, text: str, what: str) -> object:
        for kind in self._kinds:
            if kind is bool:
                lowered = text.strip().lower()
                if lowered in _TRUE or lowered in _FALSE:
                    return lowered in _TRUE
                continue
            if kind is str:
                return text
            try:
                return kind(text.strip())
            except ValueError:
                continue
        names = " or ".join(kind.__name__ for kind in self._kinds)
        raise NnfsValueError(f"{what}: {self.name}={text!r} is not a {names}"
                             f"{self._choices_text()}")

    def check(self, value: object, what: str) -> object:
        """Raise unless ``value`` is one of ``choices`` (when there are choices)."""
        if self.choices and value not in self.choices:
            raise NnfsValueError(f"{what}: {self.name}={value!r} is not allowed"
                                 f"{self._choices_text()}")
        return value

    def _choices_text(self) -> str:
        if not self.choices:
            return ""
        return "; expected one of " + ", ".join(repr(choice) for choice in self.choices)

    def __str__(self) -> str:
        kinds = "|".join(kind.__name__ for kind in self._kinds)
        choices = "/".join(str(choice) for choice in self.choices)
        return f"{self.name}={choices or kinds}" + (f" ({self.help})" if self.help else "")


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
        priority: the backend's rank when a program names none (``nnfs.backend()`` with no
            ``NNFS_BACKEND``): the available backend of the highest priority is the default
            (``cuda`` 30, ``opencl`` 20, ``cpu`` 10; 0 unless declared). The probe may lower
            it for a machine (``BackendStatus.priority``).
        options: the options the factory takes (:class:`BackendOption`), checked before it is
            called, and read from text where a backend is named ``NAME:key=value,...``. Empty:
            the factory's signature says which keywords it takes, and text is read as a bool,
            an int, a float or else a string.
        rank: optional, a cheaper question than ``probe`` for choosing the default: called
            without arguments, it returns the most this backend can rank on this machine (at
            most ``priority``), looking at no device if it can (installed driver files, say).
            A backend whose rank is below a backend already found available is not probed at
            all, so its probe's cost and side effects (starting a driver) are spared.

    .. versionchanged:: 0.2 ``priority``, ``options`` and ``rank``.
    """

    name: str
    factory: Callable[..., Backend]
    api_version: int
    dtypes: tuple[str, ...] = ("float32",)
    probe: Callable[[], BackendStatus] | None = None
    description: str = ""
    priority: int = 0
    options: tuple[BackendOption, ...] = ()
    rank: Callable[[], int] | None = None

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
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise NnfsTypeError(f"BackendSpec {self.name!r}: priority must be an int, "
                                f"got {self.priority!r}")
        options = tuple(self.options)
        if not all(isinstance(option, BackendOption) for option in options):
            raise NnfsTypeError(f"BackendSpec {self.name!r}: options must be BackendOption "
                                f"records, got {options!r}")
        names = [option.name for option in options]
        if len(set(names)) != len(names) or "dtype" in names:
            raise NnfsValueError(f"BackendSpec {self.name!r}: option names must be unique and "
                                 f"not 'dtype', got {names}")
        object.__setattr__(self, "options", options)
        if self.rank is not None and not callable(self.rank):
            raise NnfsTypeError(f"BackendSpec {self.name!r}: rank must be callable or None")

    def option(self, name: str) -> BackendOption | None:
        """The declared option ``name``, or None."""
        return next((option for option in self.options if option.name == name), None)


def parse_backend(text: str, what: str = "backend name") -> tuple[str, dict[str, str]]:
    """``NAME`` or ``NAME:key=value,key=value`` as the name and the options as text.

    >>> parse_backend("opencl:gemm=clblast,device=1")
    ('opencl', {'gemm': 'clblast', 'device': '1'})
    """
    if not isinstance(text, str):
        raise NnfsTypeError(
            f"{what} must be a string such as 'cpu', got {type(text).__name__} {text!r}")
    name, _, rest = text.partition(":")
    options: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, equals, value = item.partition("=")
            key = key.strip()
            if not equals or not key.isidentifier():
                raise NnfsValueError(
                    f"{what} {text!r}: options are written NAME:key=value,key=value "
                    f"(for example 'opencl:gemm=clblast'); {item!r} is not key=value")
            if key in options:
                raise NnfsValueError(f"{what} {text!r}: the option {key!r} is given twice")
            options[key] = value.strip()
    elif rest or text.endswith(":"):
        raise NnfsValueError(f"{what} {text!r}: nothing follows ':'; write NAME or "
                             "NAME:key=value,...")
    return normalize_backend_name(name, what=what), options
