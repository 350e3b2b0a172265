"""Finding backends: entry points, in-process registration, and selection by name.

Nothing here runs when ``nnfs`` is imported. Plugins are imported when a backend is asked for,
and only those needed: ``nnfs.backend(NAME)`` imports the plugins whose entry point is named
``NAME`` (a backend distribution names its entry point after its backend, as the bundled ones
do), and every plugin only if none of those declares it; ``nnfs.backends()`` and ``nnfs
backends`` import them all.

Plugin code never takes nnfs down: each import, hook call and probe runs with a time bound
(:data:`ENV_TIMEOUT`, :data:`DEFAULT_TIMEOUT` seconds), with what it prints sent to stderr
(so that ``nnfs predict``'s CSV and ``nnfs backends --json`` stay clean), and whatever it
raises, ``SystemExit`` included, is caught (``KeyboardInterrupt`` goes through to the user).
A plugin that fails to import, whose hook raises, hangs or returns junk, has the wrong
signature or is missing, that was written for another plugin API version, or that claims a
name it may not (one of the bundled backends' names, a name another plugin claims as well, a
name it declares twice) is recorded with its error and left out. Everything else keeps
working, and the error is shown by ``nnfs backends`` and raised (as ``BackendUnavailable``)
when somebody selects that backend.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from types import SimpleNamespace
from typing import Any

import pluggy

from . import _clash, hookspecs
from ._args import dtype_name
from .contract import Backend
from .errors import (
    BackendNotFound,
    BackendUnavailable,
    NnfsError,
    NnfsTypeError,
    NnfsValueError,
    PluginError,
    UnsupportedOperation,
)
from .factory import Factory
from .spec import (
    API_VERSION,
    MIGRATION_NOTE,
    MIN_API_VERSION,
    BackendSpec,
    BackendStatus,
    normalize_backend_name,
    parse_backend,
)

log = logging.getLogger("nnfs")

#: Environment variable naming the backend used when ``nnfs.backend()`` gets no name.
ENV_BACKEND = "NNFS_BACKEND"
#: Environment variable that, set to 1, stops nnfs from loading third-party plugins.
ENV_DISABLE_AUTOLOAD = "NNFS_DISABLE_PLUGIN_AUTOLOAD"
#: Environment variable: seconds a plugin's import, hook call or probe may take.
ENV_TIMEOUT = "NNFS_PLUGIN_TIMEOUT"
#: Seconds a plugin's import, hook call or probe may take when ENV_TIMEOUT is not set.
DEFAULT_TIMEOUT = 30.0
#: The backend preferred among those of equal priority when neither a name nor NNFS_BACKEND
#: is given (the default is otherwise the available backend of the highest priority).
DEFAULT_BACKEND = "cpu"
#: Backends maintained with nnfs, and the distribution that provides each: their names are
#: theirs alone.
BUNDLED = {"cpu": "nnfs-cpu", "cuda": "nnfs-cuda", "opencl": "nnfs-opencl"}
#: The entry-point group plugins declare.
ENTRY_POINT_GROUP = "nnfs"


@dataclass(frozen=True)
class BackendInfo:
    """One row of ``nnfs backends``: a backend (or a broken plugin) and what it can do here.

    ``refused`` is True for a plugin nnfs left out because it breaks the contract (it failed
    to import, its hook failed, it claims a name it may not...); ``notes`` lists what the
    plugin declares inconsistently without being refused (dtypes its spec, probe and factory
    do not agree on)."""

    name: str
    distribution: str
    version: str
    available: bool
    reason: str = ""
    devices: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()
    description: str = ""
    refused: bool = False
    notes: tuple[str, ...] = ()
    #: The backend's priority on this machine (its spec's, or its probe's).
    priority: int = 0
    #: True for the backend ``nnfs.backend()`` uses when given no name.
    default: bool = False
    #: The options it takes, as ``name=kinds (help)``.
    options: tuple[str, ...] = ()


@dataclass
class _Plugin:
    """A plugin module or object, where it came from, and what importing it gave."""

    name: str
    distribution: str
    version: str
    module: object | None = None
    error: BaseException | None = None
    error_text: str = ""
    refused: bool = True  # False for a plugin that was not loaded on purpose (autoload off)
    declared: list[_Entry] | None = None  # what its hook declared: specs and _Entry errors

    @property
    def key(self) -> str:
        """The plugin's name with pluggy: two distributions may use the same entry-point name."""
        return f"{self.distribution}:{self.name}"


@dataclass
class _Entry:
    """What the registry knows about one backend name, as one plugin declared it."""

    name: str
    plugin: _Plugin
    spec: BackendSpec | None = None
    error: BaseException | None = None
    error_text: str = ""
    refused: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def declared_spec(self) -> BackendSpec:
        """The spec of an entry the registry uses: every one without an error has its spec."""
        assert self.spec is not None, f"the backend {self.name!r} was not declared"
        return self.spec


def _describe_error(error: BaseException) -> str:
    """``Type: message`` on one line (pluggy's validation errors span several)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {'; '.join(lines) or '(no message)'}"


def _autoload_disabled() -> bool:
    return os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip().lower() not in ("", "0", "false", "no")


def _timeout() -> float:
    """Seconds a plugin's import, hook call or probe may take: NNFS_PLUGIN_TIMEOUT, else the
    default. The only reader of that variable."""
    text = os.environ.get(ENV_TIMEOUT, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise NnfsValueError(f"the environment variable {ENV_TIMEOUT}={text!r} must be a "
                             "positive number of seconds")
    return seconds


# --- running plugin code ------------------------------------------------------------------------

class PluginTimeout(PluginError):
    """A plugin's import, hook or probe did not return within the time bound."""


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what plugin code prints to stderr, at the level of Python and of the file
    descriptor (C libraries): standard output belongs to the command's results."""
    with contextlib.suppress(Exception):
        if sys.stdout is not None:
            sys.stdout.flush()
    saved = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        if saved is not None:
            os.close(saved)
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr if sys.stderr is not None else io.StringIO()):
            yield
    finally:
        _flush_c_stdio()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _flush_c_stdio() -> None:
    """Flush the C library's stdout buffer, into the descriptor it was meant for now."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:
        pass


def run_plugin_code(what: str, function: Callable[[], Any], timeout: float) -> Any:
    """``function()``, the code of a plugin, bounded and quiet: it runs in a thread of its own,
    for at most ``timeout`` seconds (then :class:`PluginTimeout`), with what it prints sent to
    stderr. Whatever it raises is raised here, ``SystemExit`` included, for the caller to
    record; ``KeyboardInterrupt`` (from the user, while we wait) goes through."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:
            outcome["error"] = error

    with _stdout_to_stderr():
        thread = threading.Thread(target=target, name=f"nnfs plugin: {what}", daemon=True)
        thread.start()
        thread.join(timeout)
    if thread.is_alive():
        raise PluginTimeout(f"{what} did not finish within {timeout:g} s (it hangs?); "
                            f"{ENV_TIMEOUT} sets the bound")
    if "error" in outcome:
        error = outcome["error"]
        raise error
    return outcome.get("value")


def _plugin_failure(error: BaseException) -> bool:
    """Whether ``error``, raised by plugin code, is the plugin's failure to record (anything
    but the user's Ctrl-C)."""
    return not isinstance(error, KeyboardInterrupt)


# --- the registry -------------------------------------------------------------------------------

class Registry:
    """The backends of this process. ``nnfs`` keeps one; tests may make their own."""

    def __init__(self) -> None:
        self._in_process: list[_Plugin] = []
        self._entry_point_plugins: dict[tuple[str, str, str], _Plugin] = {}
        self._all_imported = False
        self._manager: pluggy.PluginManager | None = None
        self._entries: dict[str, _Entry] | None = None
        self._others: list[_Entry] = []  # claims refused in favour of another, for the rows
        self._factories: dict[tuple[Any, ...], tuple[BackendSpec, Factory]] = {}
        self._trace: Callable[[str], Any] | None = None

    # --- loading ----------------------------------------------------------------------------

    def reload(self) -> None:
        """Forget what was discovered; the next call scans the entry points again. Factories
        already made stay the ones ``backend()`` returns while their backend is declared the
        same way, so matrices made on them keep working."""
        self._entry_point_plugins = {}
        self._all_imported = False
        self._manager = None
        self._entries = None
        for plugin in self._in_process:
            plugin.declared = None

    def _pluggy(self) -> pluggy.PluginManager:
        if self._manager is None:
            self._manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
            self._manager.add_hookspecs(hookspecs)
            for plugin in self._in_process:  # registered in process: they outlive a reload
                plugin.error = None
                self._register_with_pluggy(plugin)
        return self._manager

    def _entry_points(self) -> list[metadata.EntryPoint]:
        found = metadata.entry_points(group=ENTRY_POINT_GROUP)
        # one entry point per (distribution, name), in a stable order
        unique = {(getattr(ep.dist, "name", ""), ep.name, ep.value): ep for ep in found}
        return [unique[key] for key in sorted(unique)]

    def _import_entry_points(self, name: str | None) -> None:
        """Import the entry points named ``name`` (all of them for None) not imported yet."""
        if self._all_imported:
            return
        for entry_point in self._entry_points():
            key = (getattr(entry_point.dist, "name", ""), entry_point.name, entry_point.value)
            if key in self._entry_point_plugins:
                continue
            if name is not None and self._safe_name(entry_point.name) != name:
                continue
            self._entry_point_plugins[key] = self._import(entry_point)
            self._entries = None
        if name is None:
            self._all_imported = True

    def _import(self, entry_point: metadata.EntryPoint) -> _Plugin:
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
            plugin.refused = False
            return plugin
        timeout = _timeout()
        self._say(f"importing {entry_point.value} ({plugin.distribution} {plugin.version})")
        try:
            plugin.module = run_plugin_code(f"importing {entry_point.value}", entry_point.load,
                                            timeout)
        except BaseException as error:  # a plugin must not take nnfs down, whatever it raises
            if not _plugin_failure(error):
                raise
            context = "" if isinstance(error, PluginTimeout) else f"importing {entry_point.value}"
            self._fail(plugin, error, context=context)
            return plugin
        self._register_with_pluggy(plugin)
        return plugin

    def _register_with_pluggy(self, plugin: _Plugin) -> None:
        try:
            self._pluggy().register(plugin.module, name=plugin.key)
        except Exception as error:  # pluggy.PluginValidationError: a hook of wrong signature
            self._fail(plugin, error)

    def _fail(self, plugin: _Plugin, error: BaseException, context: str = "") -> None:
        self._say(f"{plugin.name} ({plugin.distribution}) refused: {context or ''} "
                  f"{_describe_error(error)}")
        plugin.error = error
        prefix = f"{context} failed: " if context else ""
        plugin.error_text = prefix + _describe_error(error)
        log.debug("nnfs plugin %s (%s) refused: %s", plugin.name, plugin.distribution,
                  plugin.error_text)

    def _plugins(self) -> list[_Plugin]:
        return [*self._entry_point_plugins.values(), *self._in_process]

    def _load(self, name: str | None = None) -> dict[str, _Entry]:
        """The entries, with the plugins ``name`` needs imported (every plugin for None)."""
        self._import_entry_points(name)
        if self._entries is None:
            for plugin in self._plugins():
                if plugin.declared is None:
                    plugin.declared = self._declare(plugin)
            self._entries, self._others = self._resolve(self._plugins())
        return self._entries

    def _declare(self, plugin: _Plugin) -> list[_Entry]:
        """What ``plugin`` declares: its specs, or _Entry records of what went wrong."""
        if plugin.error is not None:
            # the entry point's name stands for the backend(s) the plugin would have given
            return [_Entry(self._safe_name(plugin.name), plugin, error=plugin.error,
                           error_text=plugin.error_text, refused=plugin.refused)]
        return self._call_hook(plugin)

    def _call_hook(self, plugin: _Plugin) -> list[_Entry]:
        manager = self._pluggy()
        module = manager.get_plugin(plugin.key)
        implementations = [impl for impl in manager.hook.nnfs_backends.get_hookimpls()
                           if impl.plugin is module]
        fallback = self._safe_name(plugin.name)
        if not implementations:
            error = PluginError(f"{getattr(module, '__name__', module)!s} has no nnfs_backends "
                                "function marked @nnfs.backend_api.hookimpl, so it declares no "
                                "backend")
            self._fail(plugin, error)
            return [_Entry(fallback, plugin, error=error, error_text=plugin.error_text)]
        arguments: dict[str, object] = {}  # the hook's keyword arguments (none in API 1)
        timeout = _timeout()
        specs: list[Any] = []  # what the hooks returned, checked below
        for impl in implementations:  # one plugin at a time, so one failure stays its own
            self._say(f"calling nnfs_backends() of {plugin.name} ({plugin.distribution})")

            def call(impl: Any = impl) -> list[Any] | None:
                result = impl.function(**{name: arguments[name] for name in impl.argnames})
                if result is None:
                    return None
                if isinstance(result, (BackendSpec, str, bytes)) \
                        or not isinstance(result, Iterable):
                    raise PluginError(f"its nnfs_backends hook returned {result!r}, expected a "
                                      "list of nnfs.backend_api.BackendSpec records")
                return list(result)  # a generator runs here, within the bound

            try:
                result = run_plugin_code(f"the nnfs_backends hook of {plugin.name}", call,
                                         timeout)
            except BaseException as error:
                if not _plugin_failure(error):
                    raise
                context = "" if isinstance(error, (PluginTimeout, PluginError)) \
                    else "its nnfs_backends hook"
                self._fail(plugin, error, context=context)
                return [_Entry(fallback, plugin, error=error, error_text=plugin.error_text)]
            self._say(f"{plugin.name} declared "
                      f"{[getattr(spec, 'name', spec) for spec in (result or ())]}")
            specs.extend(result or ())
        if not specs:
            reason = ("declares no backend here: its nnfs_backends hook returned "
                      f"{'None' if result is None else 'an empty list'}")
            return [_Entry(fallback, plugin, error=PluginError(reason), error_text=reason,
                           refused=False)]
        declared = []
        for spec in specs:
            if isinstance(spec, BackendSpec):
                entry = _Entry(spec.name, plugin, spec=spec)
                self._check_version(entry)
                self._check_dtypes(entry)
                declared.append(entry)
            else:
                refusal = PluginError(f"its nnfs_backends hook returned {spec!r}, "
                                      "expected nnfs.backend_api.BackendSpec records")
                self._fail(plugin, refusal)
                declared.append(_Entry(fallback, plugin, error=refusal,
                                       error_text=plugin.error_text))
        return declared

    def _check_version(self, entry: _Entry) -> None:
        version = entry.declared_spec.api_version
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
    def _check_dtypes(entry: _Entry) -> None:
        """Note the dtypes the spec declares that its factory class does not (a spec may
        declare fewer: what it promises, the factory must be able to do)."""
        spec = entry.declared_spec
        declared = getattr(spec.factory, "dtypes", None) if isinstance(spec.factory, type) else None
        if declared is not None and not set(spec.dtypes) <= set(declared):
            entry.notes.append(f"its BackendSpec declares the dtypes {', '.join(spec.dtypes)} but "
                               f"its factory {spec.factory.__name__} declares "
                               f"{', '.join(declared) or 'none'}")

    def _resolve(self, plugins: list[_Plugin]) -> tuple[dict[str, _Entry], list[_Entry]]:
        """One entry per backend name, and the claims refused in favour of another.

        A name claimed more than once goes, in this order, to the distribution bundled with
        nnfs that owns it, then to the one plugin whose entry point has that name; claimants
        of the same rank are all refused, named together."""
        claims: dict[str, list[_Entry]] = {}
        for plugin in plugins:
            mine: dict[str, list[_Entry]] = {}
            for entry in plugin.declared or ():
                mine.setdefault(entry.name, []).append(entry)
            for name, declared in mine.items():
                if len(declared) > 1 and all(e.error is None for e in declared):
                    error = PluginError(f"its nnfs_backends hook declares the backend name "
                                        f"{name!r} {len(declared)} times; a plugin declares each "
                                        "name once")
                    declared = [_Entry(name, plugin, spec=declared[0].spec, error=error,
                                       error_text=_describe_error(error))]
                claims.setdefault(name, []).extend(declared)
        entries: dict[str, _Entry] = {}
        others: list[_Entry] = []
        for name, claimants in claims.items():
            owner = BUNDLED.get(name)
            if owner is not None:
                for c in claimants:
                    if c.plugin.distribution != owner and c.error is None:
                        error = PluginError(
                            f"the backend name {name!r} belongs to {owner}, bundled with nnfs; "
                            f"{c.plugin.distribution} {c.plugin.version} may not claim it "
                            "(give its backend a name of its own)")
                        c.error, c.error_text = error, _describe_error(error)
            working = [c for c in claimants if c.error is None]
            if len(working) > 1:
                named = [c for c in working if self._safe_name(c.plugin.name) == name]
                if len(named) == 1:
                    winner = named[0]
                    for c in working:
                        if c is not winner:
                            error = PluginError(
                                f"the backend name {name!r} belongs to "
                                f"{winner.plugin.distribution} {winner.plugin.version}, whose "
                                f"entry point is named {name!r}; {c.plugin.distribution} "
                                f"{c.plugin.version} (plugin {c.plugin.name!r}) declares it too")
                            c.error, c.error_text = error, _describe_error(error)
                else:
                    owners = " and ".join(
                        f"{c.plugin.distribution} {c.plugin.version} (plugin {c.plugin.name!r})"
                        for c in working)
                    error = PluginError(f"the backend name {name!r} is claimed by {owners}; "
                                        "uninstall one of them")
                    for c in working:
                        c.error, c.error_text = error, _describe_error(error)
            working = [c for c in claimants if c.error is None]
            chosen = working[0] if working else claimants[0]
            entries[name] = chosen
            others.extend(c for c in claimants if c is not chosen)
        return entries, others

    @staticmethod
    def _safe_name(name: str) -> str:
        try:
            return normalize_backend_name(name)
        except NnfsError:
            return name

    # --- in-process registration ------------------------------------------------------------

    def register_plugin(self, plugin: object, name: str | None = None) -> Callable[[], None]:
        """Register a plugin object or module holding ``nnfs_backends`` hookimpls.

        Returns a function that unregisters it again. Factories already made stay valid.
        """
        if plugin is None or isinstance(plugin, (str, bytes, int, float)):
            raise NnfsTypeError(
                "register_plugin: plugin must be a module or object with "
                "@nnfs.backend_api.hookimpl "
                f"functions, got {type(plugin).__name__}"
            )
        name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin):x}"
        for registered in self._in_process:
            if registered.module is plugin or registered.name == name:
                raise PluginError(f"register_plugin: the plugin {name!r} is already registered")
        if not any(getattr(getattr(plugin, attr, None), "nnfs_impl", None) is not None
                   for attr in ("nnfs_backends",)):
            raise PluginError(
                f"register_plugin: {name!r} has no nnfs_backends function marked "
                "@nnfs.backend_api.hookimpl"
            )
        record = _Plugin(name=name, distribution="(registered in process)", version="",
                         module=plugin)
        self._pluggy()
        self._register_with_pluggy(record)
        self._in_process.append(record)
        self._entries = None

        def unregister() -> None:
            if record in self._in_process:
                self._in_process.remove(record)
                with contextlib.suppress(Exception):
                    self._pluggy().unregister(name=record.key)
                self._entries = None

        return unregister

    def register_backend(self, spec: BackendSpec) -> Callable[[], None]:
        """Register one backend in process; returns a function that unregisters it."""
        if not isinstance(spec, BackendSpec):
            raise NnfsTypeError(
                f"register_backend: expected an nnfs.backend_api.BackendSpec, got "
                f"{type(spec).__name__}"
            )

        @hookspecs.hookimpl
        def nnfs_backends() -> list[BackendSpec]:
            return [spec]

        plugin = SimpleNamespace(nnfs_backends=nnfs_backends)
        return self.register_plugin(plugin, name=f"backend:{spec.name}")

    def enable_tracing(self, write: Callable[[str], Any] | None = None) -> Callable[[], None]:
        """Report every plugin import and hook call from now on, with what it returned or
        raised (to stderr, or to ``write``); returns a function that stops. Plugins already
        loaded are not loaded again (that would orphan the matrices of factories already
        made): the trace says so."""
        self._trace = write or (lambda text: sys.stderr.write(text))
        if self._entry_point_plugins or self._entries is not None:
            self._say("plugins loaded before tracing began are not loaded again; their "
                      "loading is not in this trace")

        def undo() -> None:
            self._trace = None

        return undo

    def _say(self, text: str) -> None:
        if self._trace is not None:
            self._trace(f"nnfs plugins: {text}\n")

    # --- queries ----------------------------------------------------------------------------

    def names(self) -> list[str]:
        entries = self._load()
        return sorted(name for name, entry in entries.items() if entry.error is None)

    def infos(self) -> list[BackendInfo]:
        """Every backend and broken plugin found, with availability (runs each probe), and
        which one is the default."""
        entries = self._load()
        chosen = self._default_choice()
        default_name = None if chosen is None else chosen[0].name
        rows = []
        for entry in sorted([*entries.values(), *self._others],
                            key=lambda e: (e.name, e.error is not None, e.plugin.distribution)):
            plugin = entry.plugin
            if entry.error is not None:
                rows.append(BackendInfo(entry.name, plugin.distribution, plugin.version, False,
                                        entry.error_text, refused=entry.refused,
                                        notes=tuple(entry.notes)))
                continue
            status = self._probe(entry)
            notes = list(entry.notes)
            extra = [d for d in status.dtypes if d not in entry.declared_spec.dtypes]
            if extra:
                notes.append(f"its probe reports the dtypes {', '.join(status.dtypes)}, but its "
                             f"BackendSpec declares {', '.join(entry.declared_spec.dtypes)}")
            rows.append(BackendInfo(
                entry.name, plugin.distribution, plugin.version, status.available, status.reason,
                status.devices, status.dtypes or entry.declared_spec.dtypes,
                entry.declared_spec.description,
                notes=tuple(notes), priority=_priority(entry.declared_spec, status),
                default=entry.name == default_name,
                options=tuple(str(option) for option in entry.declared_spec.options),
            ))
        return rows

    def default_backend(self) -> tuple[str, str]:
        """The name of the backend ``nnfs.backend()`` uses when given no name, and why; raises
        :class:`nnfs.BackendNotFound` when no installed backend is available."""
        from_env = os.environ.get(ENV_BACKEND)
        if from_env is not None:
            name, _ = parse_backend(from_env, what=f"the environment variable {ENV_BACKEND}")
            return name, f"the environment variable {ENV_BACKEND}={from_env!r}"
        chosen = self._default_choice()
        if chosen is None:
            installed = ", ".join(self.names()) or "none"
            raise BackendNotFound(
                f"no installed backend can run here (installed: {installed}; nnfs backends says "
                "why each cannot); install one, for example: pip install nnfs-cpu")
        entry, priority, others = chosen
        reason = f"the best available backend (priority {priority}"
        reason += f"; also available: {others})" if others else ")"
        return entry.name, reason + f"; set {ENV_BACKEND} to choose another"

    def _default_choice(self) -> tuple[_Entry, int, str] | None:
        """The available backend of the highest priority (``cpu`` first among equals), its
        priority, and the others available; None if none is. Probes are run in order of the
        specs' priorities and stop once no later backend can rank higher (a probe can only
        lower a backend's rank); a backend whose ``rank`` says it cannot beat the best found
        so far is not probed."""
        bounds = {entry.name: (entry.declared_spec.priority if entry.declared_spec.rank is None
                               else self._rank(entry))
                  for entry in self._load().values() if entry.error is None}
        entries = [entry for entry in self._load().values() if entry.error is None]
        entries.sort(key=lambda e: (-bounds[e.name], e.name != DEFAULT_BACKEND, e.name))
        best: tuple[_Entry, int] | None = None
        available = []
        for entry in entries:
            if best is not None and bounds[entry.name] < best[1]:
                break
            status = self._probe(entry)
            if not status.available:
                continue
            available.append(entry.name)
            priority = _priority(entry.declared_spec, status)
            if best is None or priority > best[1]:
                best = (entry, priority)
        if best is None:
            return None
        others = ", ".join(name for name in available if name != best[0].name)
        return best[0], best[1], others

    def _rank(self, entry: _Entry) -> int:
        """The most the backend can rank here, by its spec's ``rank`` (its priority if that
        fails)."""
        declared_rank = entry.declared_spec.rank
        assert declared_rank is not None  # asked only of a spec that declares its rank
        try:
            rank = run_plugin_code(f"the rank of {entry.name}", declared_rank, _timeout())
        except BaseException as error:
            if not _plugin_failure(error):
                raise
            return entry.declared_spec.priority
        if isinstance(rank, bool) or not isinstance(rank, int):
            return entry.declared_spec.priority
        return min(rank, entry.declared_spec.priority)

    def _probe(self, entry: _Entry) -> BackendStatus:
        spec = entry.declared_spec
        if spec.probe is None:
            return BackendStatus(True, dtypes=spec.dtypes)
        timeout = _timeout()
        try:
            status = run_plugin_code(f"the probe of {entry.name}", spec.probe, timeout)
        except BaseException as error:
            if not _plugin_failure(error):
                raise
            text = str(error) if isinstance(error, PluginTimeout) else _describe_error(error)
            return BackendStatus(False, f"its probe failed: {text}")
        if not isinstance(status, BackendStatus):
            return BackendStatus(False, f"its probe returned {status!r}, not a BackendStatus")
        return status

    def backend(self, name: str | None = None, dtype: object = "float32",
                **options: Any) -> Factory:
        """See :func:`nnfs.backend`."""
        name, text_options, source = self._requested(name)
        dtype = dtype_name(dtype)
        entry = self._find(name, source)
        spec = entry.declared_spec
        options = _options(spec, name, source, text_options, options)
        key = (name, dtype, tuple(sorted(options.items(), key=lambda item: item[0])))
        cached = self._factories.get(key)
        if cached is not None and not cached[1].released and cached[0] == spec:
            return cached[1]
        if dtype not in spec.dtypes:
            raise UnsupportedOperation(
                f"the {name} backend does not support {dtype}; it supports {', '.join(spec.dtypes)}"
            )
        status = self._probe(entry)
        if not status.available:
            raise BackendUnavailable(f"the {name} backend is installed but cannot be used here: "
                                     f"{status.reason}")
        if status.dtypes and dtype not in status.dtypes:
            raise UnsupportedOperation(
                f"the {name} backend supports {dtype}, but not on this machine: its device "
                f"supports {', '.join(status.dtypes)}")
        self._check_options(spec, name, dtype, options)
        factory = self._make_factory(entry, name, dtype, options)
        self._factories[key] = (spec, factory)
        return factory

    @staticmethod
    def _make_factory(entry: _Entry, name: str, dtype: str, options: dict[str, Any]) -> Factory:
        """The factory of ``spec.factory(dtype=..., **options)``, the backend made in this
        thread (devices may be bound to it), with what it prints sent to stderr and whatever
        it raises made an nnfs error."""
        try:
            with _stdout_to_stderr():
                backend = entry.declared_spec.factory(dtype=dtype, **options)
        except NnfsError:
            raise
        except BaseException as error:
            if not _plugin_failure(error):
                raise
            raise BackendUnavailable(
                f"the {name} backend ({entry.plugin.distribution}) failed to start: "
                f"{_describe_error(error)}"
            ) from error
        if not isinstance(backend, Backend):
            raise PluginError(f"the {name} backend returned {backend!r}, not an "
                              "nnfs.contract.Backend")
        factory = Factory(backend)
        if factory.dtype != dtype:
            raise PluginError(f"the {name} backend was asked for a {dtype} factory and made a "
                              f"{factory.dtype} one")
        return factory

    def _find(self, name: str, source: str) -> _Entry:
        entries = self._load(name)
        if name not in entries:
            entries = self._load()
        entry = entries.get(name)
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
            verb = "was refused" if entry.refused else "is not usable"
            raise BackendUnavailable(
                f"the {name} backend ({entry.plugin.distribution} {entry.plugin.version}) "
                f"{verb}: {entry.error_text}"
            ) from entry.error
        return entry

    def _requested(self, name: str | None) -> tuple[str, dict[str, str], str]:
        """The backend asked for (a name, ``NAME:key=value,...``, NNFS_BACKEND, or the
        default), its options written as text, and where it came from."""
        if name is not None:
            parsed, text = parse_backend(name)
            return parsed, text, f"the backend name {name!r}"
        from_env = os.environ.get(ENV_BACKEND)
        if from_env is not None:
            parsed, text = parse_backend(from_env, what=f"the environment variable {ENV_BACKEND}")
            return parsed, text, f"the environment variable {ENV_BACKEND}={from_env!r}"
        parsed, reason = self.default_backend()
        return parsed, {}, f"the default backend {parsed!r} ({reason})"

    @staticmethod
    def _check_options(spec: BackendSpec, name: str, dtype: str,
                       options: dict[str, Any]) -> None:
        if spec.options:
            declared = {option.name for option in spec.options}
            unknown = [key for key in options if key not in declared]
            if unknown:
                raise NnfsTypeError(
                    f"the {name} backend does not take the option(s) "
                    f"{', '.join(map(repr, unknown))}; it takes: "
                    f"{'; '.join(str(option) for option in spec.options)}")
            for key, value in options.items():
                option = spec.option(key)
                assert option is not None  # every key is declared (checked above)
                option.check(value, f"the {name} backend's options")
            return
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
                f"'nnfs' and may overwrite nnfs-core's files: {_clash.recovery()}"
            )
        return warnings


def _priority(spec: BackendSpec, status: BackendStatus) -> int:
    return spec.priority if status.priority is None else status.priority


def _literal(text: str) -> object:
    """An undeclared option given as text: a bool, an int, a float, or the text itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text.strip())
        except ValueError:
            pass
    return text


def _options(spec: BackendSpec, name: str, source: str, text: dict[str, str],
             given: dict[str, Any]) -> dict[str, Any]:
    """The options of a factory: those written as text (``NAME:key=value``), read as the spec
    declares, and those given as Python values, which may not repeat them."""
    twice = sorted(set(text) & set(given))
    if twice:
        raise NnfsValueError(f"{source} gives the option(s) {', '.join(map(repr, twice))} as "
                             "text and again as keyword arguments; give each once")
    options = {}
    for key, value in text.items():
        option = spec.option(key)  # an undeclared one is refused by _check_options, if the
        # spec declares its options; else the factory's signature decides
        options[key] = (_literal(value) if option is None
                        else option.parse(value, f"{source}: the {name} backend's options"))
    options.update(given)
    return options


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
