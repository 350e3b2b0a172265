"""Finding backends: entry points, in-process registration, and selection by name.

Nothing here runs when ``nnfs`` is imported. The first call that needs the list of backends
(``nnfs.backend``, ``nnfs.backends``, ``nnfs backends``) imports the plugin modules named by the
entry points of group ``nnfs`` and calls their ``nnfs_backends`` hooks, one plugin at a time:
a plugin that fails to import, whose hook raises, has the wrong signature or is missing, that
claims a name another plugin claims, or that was written for another plugin API version is
recorded with its error and left out. Everything else keeps working, and the error is shown by
``nnfs backends`` and raised (as ``BackendUnavailable``) when somebody selects that backend.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from types import SimpleNamespace
from typing import Any

import pluggy

from . import hookspecs
from .errors import (
    BackendNotFound,
    BackendUnavailable,
    NnfsError,
    NnfsTypeError,
    PluginError,
    UnsupportedOperation,
)
from ._args import dtype_name
from .contract import Backend
from .factory import Factory
from .spec import (
    API_VERSION,
    MIGRATION_NOTE,
    MIN_API_VERSION,
    BackendSpec,
    BackendStatus,
    normalize_backend_name,
)

log = logging.getLogger("nnfs")

#: Environment variable naming the backend used when ``nnfs.backend()`` gets no name.
ENV_BACKEND = "NNFS_BACKEND"
#: Environment variable that, set to 1, stops nnfs from loading third-party plugins.
ENV_DISABLE_AUTOLOAD = "NNFS_DISABLE_PLUGIN_AUTOLOAD"
#: The backend used when neither a name nor NNFS_BACKEND is given.
DEFAULT_BACKEND = "cpu"
#: Backends maintained with nnfs, and the distribution that provides each.
BUNDLED = {"cpu": "nnfs-cpu", "cuda": "nnfs-cuda", "opencl": "nnfs-opencl"}
#: The entry-point group plugins declare.
ENTRY_POINT_GROUP = "nnfs"


@dataclass(frozen=True)
class BackendInfo:
    """One row of ``nnfs backends``: a backend (or a broken plugin) and what it can do here."""

    name: str
    distribution: str
    version: str
    available: bool
    reason: str = ""
    devices: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()
    description: str = ""


@dataclass
class _Plugin:
    """A plugin module or object and where it came from."""

    name: str
    distribution: str
    version: str
    error: BaseException | None = None
    error_text: str = ""

    @property
    def key(self) -> str:
        """The plugin's name with pluggy: two distributions may use the same entry-point name."""
        return f"{self.distribution}:{self.name}"


@dataclass
class _Entry:
    """What the registry knows about one backend name."""

    name: str
    plugin: _Plugin
    spec: BackendSpec | None = None
    error: BaseException | None = None
    error_text: str = ""


def _describe_error(error: BaseException) -> str:
    """``Type: message`` on one line (pluggy's validation errors span several)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {'; '.join(lines) or '(no message)'}"


def _autoload_disabled() -> bool:
    return os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip().lower() not in ("", "0", "false", "no")


class Registry:
    """The backends of this process. ``nnfs`` keeps one; tests may make their own."""

    def __init__(self) -> None:
        self._in_process: list[tuple[object, _Plugin]] = []
        self._plugins: list[_Plugin] | None = None
        self._entries: dict[str, _Entry] = {}
        self._manager: pluggy.PluginManager | None = None
        self._factories: dict[tuple, Factory] = {}
        self._trace: Callable[[str], Any] | None = None

    # --- loading ----------------------------------------------------------------------------

    def reload(self) -> None:
        """Forget what was discovered; the next call scans the entry points again."""
        self._plugins = None
        self._entries = {}
        self._manager = None
        self._factories = {}

    def _load(self) -> None:
        if self._plugins is not None:
            return
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        plugins: list[tuple[object | None, _Plugin]] = []
        for entry_point in self._entry_points():
            plugins.append(self._import(entry_point))
        plugins.extend(self._in_process)
        for module, plugin in plugins:
            if module is None:
                continue
            try:
                manager.register(module, name=plugin.key)
            except Exception as error:  # pluggy.PluginValidationError: a hook of wrong signature
                self._fail(plugin, error)
        self._manager = manager
        self._plugins = [plugin for _, plugin in plugins]
        self._entries = self._collect(manager, [p for _, p in plugins])

    def _entry_points(self) -> Iterable[metadata.EntryPoint]:
        found = metadata.entry_points(group=ENTRY_POINT_GROUP)
        # one entry point per (distribution, name), in a stable order
        unique = {(getattr(ep.dist, "name", ""), ep.name, ep.value): ep for ep in found}
        return [unique[key] for key in sorted(unique)]

    def _import(self, entry_point: metadata.EntryPoint) -> tuple[object | None, _Plugin]:
        dist = entry_point.dist
        plugin = _Plugin(
            name=entry_point.name,
            distribution=dist.name if dist is not None else "?",
            version=dist.version if dist is not None else "?",
        )
        if _autoload_disabled() and plugin.distribution not in BUNDLED.values():
            self._fail(plugin, PluginError(
                f"not loaded: {ENV_DISABLE_AUTOLOAD} is set, so only the backends bundled "
                "with nnfs load; register this one in process with nnfs.register_plugin()"))
            return None, plugin
        self._say(f"importing {entry_point.value} ({plugin.distribution} {plugin.version})")
        try:
            module = entry_point.load()
        except BaseException as error:  # a plugin must not take nnfs down, whatever it raises
            if isinstance(error, KeyboardInterrupt):
                raise
            self._fail(plugin, error, context=f"importing {entry_point.value}")
            return None, plugin
        return module, plugin

    def _fail(self, plugin: _Plugin, error: BaseException, context: str = "") -> None:
        self._say(f"{plugin.name} ({plugin.distribution}) refused: {context or ''} "
                  f"{_describe_error(error)}")
        plugin.error = error
        prefix = f"{context} failed: " if context else ""
        plugin.error_text = prefix + _describe_error(error)
        log.debug("nnfs plugin %s (%s) refused: %s", plugin.name, plugin.distribution,
                  plugin.error_text)

    def _collect(self, manager: pluggy.PluginManager, plugins: list[_Plugin]) -> dict[str, _Entry]:
        entries: dict[str, _Entry] = {}
        claims: dict[str, list[_Entry]] = {}
        for plugin in plugins:
            if plugin.error is not None:
                # the entry point's name stands for the backend(s) the plugin would have given
                name = self._safe_name(plugin.name)
                claims.setdefault(name, []).append(
                    _Entry(name, plugin, error=plugin.error, error_text=plugin.error_text))
                continue
            for spec_or_error in self._call_hook(manager, plugin):
                if isinstance(spec_or_error, _Entry):
                    claims.setdefault(spec_or_error.name, []).append(spec_or_error)
                else:
                    entry = _Entry(spec_or_error.name, plugin, spec=spec_or_error)
                    self._check_version(entry)
                    claims.setdefault(entry.name, []).append(entry)
        for name, claimants in claims.items():
            working = [c for c in claimants if c.error is None]
            if len(working) > 1:
                owners = " and ".join(
                    f"{c.plugin.distribution} {c.plugin.version} (plugin {c.plugin.name!r})"
                    for c in working
                )
                error = PluginError(f"the backend name {name!r} is claimed by {owners}; "
                                    "uninstall one of them")
                for c in working:
                    c.error, c.error_text = error, _describe_error(error)
                entries[name] = working[0]
            elif working:
                entries[name] = working[0]
            else:
                entries[name] = claimants[0]
        return entries

    def _call_hook(self, manager: pluggy.PluginManager, plugin: _Plugin) -> list:
        module = manager.get_plugin(plugin.key)
        implementations = [impl for impl in manager.hook.nnfs_backends.get_hookimpls()
                           if impl.plugin is module]
        if not implementations:
            error = PluginError(f"{getattr(module, '__name__', module)!s} has no nnfs_backends "
                                "function marked @nnfs.backend_api.hookimpl, so it declares no backend")
            self._fail(plugin, error)
            return [_Entry(self._safe_name(plugin.name), plugin, error=error,
                           error_text=plugin.error_text)]
        arguments: dict[str, object] = {}  # the hook's keyword arguments (none in API 1)
        try:
            specs = []
            for impl in implementations:  # one plugin at a time, so one failure stays its own
                self._say(f"calling nnfs_backends() of {plugin.name} ({plugin.distribution})")
                result = impl.function(**{name: arguments[name] for name in impl.argnames})
                specs.extend(result or ())
                self._say(f"{plugin.name} declared "
                          f"{[getattr(spec, 'name', spec) for spec in (result or ())]}")
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                raise
            self._fail(plugin, error, context="its nnfs_backends hook")
            return [_Entry(self._safe_name(plugin.name), plugin, error=error,
                           error_text=plugin.error_text)]
        good = []
        for spec in specs:
            if isinstance(spec, BackendSpec):
                good.append(spec)
            else:
                error = PluginError(f"its nnfs_backends hook returned {spec!r}, "
                                    "expected nnfs.backend_api.BackendSpec records")
                self._fail(plugin, error)
                good.append(_Entry(self._safe_name(plugin.name), plugin, error=error,
                                   error_text=plugin.error_text))
        return good

    def _check_version(self, entry: _Entry) -> None:
        version = entry.spec.api_version
        if MIN_API_VERSION <= version <= API_VERSION:
            return
        core = _core_version()
        if version > API_VERSION:
            advice = "upgrade nnfs-core (pip install -U nnfs-core)"
        else:
            advice = (f"upgrade {entry.plugin.distribution} (pip install -U "
                      f"{entry.plugin.distribution}); its author ports it with the migration "
                      f"note {MIGRATION_NOTE}")
        error = PluginError(
            f"{entry.plugin.distribution} {entry.plugin.version} was written for nnfs plugin API "
            f"{version}, but nnfs-core {core} speaks API {MIN_API_VERSION}"
            f"{'' if MIN_API_VERSION == API_VERSION else f'–{API_VERSION}'}: {advice}"
        )
        entry.error, entry.error_text = error, _describe_error(error)

    @staticmethod
    def _safe_name(name: str) -> str:
        try:
            return normalize_backend_name(name)
        except NnfsError:
            return name

    # --- in-process registration ------------------------------------------------------------

    def register_plugin(self, plugin: object, name: str | None = None) -> Callable[[], None]:
        """Register a plugin object or module holding ``nnfs_backends`` hookimpls.

        Returns a function that unregisters it again.
        """
        if plugin is None or isinstance(plugin, (str, bytes, int, float)):
            raise NnfsTypeError(
                "register_plugin: plugin must be a module or object with @nnfs.backend_api.hookimpl "
                f"functions, got {type(plugin).__name__}"
            )
        name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin):x}"
        for registered, info in self._in_process:
            if registered is plugin or info.name == name:
                raise PluginError(f"register_plugin: the plugin {name!r} is already registered")
        if not any(getattr(getattr(plugin, attr, None), "nnfs_impl", None) is not None
                   for attr in ("nnfs_backends",)):
            raise PluginError(
                f"register_plugin: {name!r} has no nnfs_backends function marked @nnfs.backend_api.hookimpl"
            )
        record = (plugin, _Plugin(name=name, distribution="(registered in process)", version=""))
        self._in_process.append(record)
        self.reload()

        def unregister() -> None:
            if record in self._in_process:
                self._in_process.remove(record)
                self.reload()

        return unregister

    def register_backend(self, spec: BackendSpec) -> Callable[[], None]:
        """Register one backend in process; returns a function that unregisters it."""
        if not isinstance(spec, BackendSpec):
            raise NnfsTypeError(
                f"register_backend: expected an nnfs.backend_api.BackendSpec, got {type(spec).__name__}"
            )

        @hookspecs.hookimpl
        def nnfs_backends() -> list[BackendSpec]:
            return [spec]

        plugin = SimpleNamespace(nnfs_backends=nnfs_backends)
        return self.register_plugin(plugin, name=f"backend:{spec.name}")

    def enable_tracing(self, write: Callable[[str], Any] | None = None) -> Callable[[], None]:
        """Report every plugin import and hook call, with what it returned or raised (to
        stderr, or to ``write``); returns a function that stops. The plugins are found again,
        so that their loading is traced too."""
        self._trace = write or (lambda text: sys.stderr.write(text))
        self.reload()

        def undo() -> None:
            self._trace = None

        return undo

    def _say(self, text: str) -> None:
        if self._trace is not None:
            self._trace(f"nnfs plugins: {text}\n")

    # --- queries ----------------------------------------------------------------------------

    def names(self) -> list[str]:
        self._load()
        return sorted(name for name, entry in self._entries.items() if entry.error is None)

    def infos(self) -> list[BackendInfo]:
        """Every backend and broken plugin found, with availability (runs each probe)."""
        self._load()
        rows = []
        for name in sorted(self._entries):
            entry = self._entries[name]
            plugin = entry.plugin
            if entry.error is not None:
                rows.append(BackendInfo(name, plugin.distribution, plugin.version, False,
                                        entry.error_text))
                continue
            status = self._probe(entry)
            rows.append(BackendInfo(
                name, plugin.distribution, plugin.version, status.available, status.reason,
                status.devices, status.dtypes or entry.spec.dtypes, entry.spec.description,
            ))
        return rows

    def _probe(self, entry: _Entry) -> BackendStatus:
        spec = entry.spec
        if spec.probe is None:
            return BackendStatus(True, dtypes=spec.dtypes)
        try:
            status = spec.probe()
        except Exception as error:
            return BackendStatus(False, f"its probe failed: {_describe_error(error)}")
        if not isinstance(status, BackendStatus):
            return BackendStatus(False, f"its probe returned {status!r}, not a BackendStatus")
        return status

    def backend(self, name: str | None = None, dtype: object = "float32", **options: Any) -> Factory:
        """See :func:`nnfs.backend`."""
        name, source = _requested_name(name)
        dtype = dtype_name(dtype)
        key = (name, dtype, tuple(sorted(options.items())))
        cached = self._factories.get(key)
        if cached is not None and not cached.released:
            return cached
        entry = self._find(name, source)
        spec = entry.spec
        if dtype not in spec.dtypes:
            raise UnsupportedOperation(
                f"the {name} backend does not support {dtype}; it supports {', '.join(spec.dtypes)}"
            )
        status = self._probe(entry)
        if not status.available:
            raise BackendUnavailable(f"the {name} backend is installed but cannot be used here: "
                                     f"{status.reason}")
        self._check_options(spec, name, dtype, options)
        try:
            backend = spec.factory(dtype=dtype, **options)
        except NnfsError:
            raise
        except Exception as error:
            raise BackendUnavailable(
                f"the {name} backend ({entry.plugin.distribution}) failed to start: "
                f"{_describe_error(error)}"
            ) from error
        if not isinstance(backend, Backend):
            raise PluginError(f"the {name} backend returned {backend!r}, not an "
                              "nnfs.contract.Backend")
        factory = Factory(backend)
        self._factories[key] = factory
        return factory

    def _find(self, name: str, source: str) -> _Entry:
        self._load()
        entry = self._entries.get(name)
        if entry is None:
            installed = ", ".join(self.names()) or "none"
            if name in BUNDLED:
                hint = f"install it with: pip install {BUNDLED[name]}"
            else:
                hint = ("the bundled backends are installed with: "
                        + ", ".join(f"pip install {dist}" for dist in BUNDLED.values()))
            raise BackendNotFound(
                f"{source} names no installed backend (installed: {installed}); {hint}"
            )
        if entry.error is not None:
            raise BackendUnavailable(
                f"the {name} backend ({entry.plugin.distribution} {entry.plugin.version}) was "
                f"refused: {entry.error_text}"
            ) from entry.error
        return entry

    @staticmethod
    def _check_options(spec: BackendSpec, name: str, dtype: str, options: dict) -> None:
        try:
            signature = inspect.signature(spec.factory)
        except (TypeError, ValueError):
            return
        try:
            signature.bind(dtype=dtype, **options)
        except TypeError:
            accepted = [p for p in signature.parameters if p not in ("self", "dtype")]
            raise NnfsTypeError(
                f"the {name} backend does not take the option(s) {', '.join(map(repr, options))}; "
                f"it takes: {', '.join(accepted) or 'no options'}"
            ) from None

    def conflicts(self) -> list[str]:
        """Warnings about installed distributions that clash with nnfs."""
        warnings = []
        try:
            other = metadata.distribution("nnfs")
        except metadata.PackageNotFoundError:
            other = None
        if other is not None:
            warnings.append(
                f"the unrelated distribution 'nnfs' {other.version} (a helper for the book "
                "'Neural Networks from Scratch') is installed; it also provides the import name "
                "'nnfs' and may overwrite nnfs-core's files: pip uninstall nnfs, then "
                "pip install --force-reinstall nnfs-core"
            )
        return warnings


def _requested_name(name: object) -> tuple[str, str]:
    """The backend name asked for and where it came from. The only reader of NNFS_BACKEND."""
    if name is not None:
        name = normalize_backend_name(name)
        return name, f"the backend name {name!r}"
    from_env = os.environ.get(ENV_BACKEND)
    if from_env is not None:
        name = normalize_backend_name(from_env, what=f"the environment variable {ENV_BACKEND}")
        return name, f"the environment variable {ENV_BACKEND}={from_env!r}"
    return DEFAULT_BACKEND, f"the default backend {DEFAULT_BACKEND!r}"


def _core_version() -> str:
    try:
        return metadata.version("nnfs-core")
    except metadata.PackageNotFoundError:
        return "(not installed)"


_default: Registry | None = None


def default() -> Registry:
    """The registry of this process, made the first time it is needed (so that importing nnfs
    loads no plugin)."""
    global _default
    if _default is None:
        _default = Registry()
    return _default
