"""The hook specifications of the nnfs plugin contract.

A backend is a Python distribution that declares an entry point in the group ``nnfs``::

    # pyproject.toml of the distribution "nnfs-mybackend"
    [project.entry-points.nnfs]
    mybackend = "nnfs_mybackend.plugin"

The module named there holds functions marked with :data:`hookimpl`, one per hook below that it
implements. nnfs imports the module the first time somebody asks for a backend (never when
``nnfs`` itself is imported), calls the hooks, and keeps the records they return. Hooks are
always called with keyword arguments, so a later version of a hook can gain an argument without
breaking plugins that do not take it.

pluggy finds the backends; the factory a backend returns is then called directly, since a pluggy
call per matrix product would be far too slow for a training loop.

The contract is versioned by :data:`nnfs.backend_api.API_VERSION`; a plugin states the version
it was written for in each :class:`nnfs.backend_api.BackendSpec` and is refused, with both
versions named, when nnfs-core no longer speaks it.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from .spec import BackendSpec

#: The project name under which nnfs's hooks are registered with pluggy.
PROJECT_NAME = "nnfs"

#: Marks a function of a plugin module as an implementation of one of the hooks below.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: Marks the specifications in this module (used by nnfs itself).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def nnfs_backends() -> Iterable[BackendSpec]:
    """Declare the backends this plugin provides.

    Called once per process, the first time nnfs needs the list of backends (``nnfs.backend``,
    ``nnfs.backends``, ``nnfs backends``). Return an iterable of
    :class:`nnfs.backend_api.BackendSpec`; returning nothing is allowed. Do not touch devices here:
    a machine without the device must still be able to list the backend. Put device checks in the
    spec's ``probe``, and let the factory raise :class:`nnfs.BackendUnavailable` if it is created
    anyway.

    Example plugin module::

        from nnfs import backend_api as api
        from nnfs_mybackend.backend import MyBackend, probe

        @api.hookimpl
        def nnfs_backends():
            return [api.BackendSpec(name="mybackend", factory=MyBackend,
                                    api_version=2, dtypes=("float32",), probe=probe,
                                    description="my accelerator")]

    .. versionadded:: 0.1 (plugin API 1)
    .. versionchanged:: 0.2 (plugin API 2) ``factory`` makes an ``nnfs.contract.Backend``.
    """
    raise NotImplementedError  # a specification has no body of its own
