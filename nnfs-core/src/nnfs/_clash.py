"""Is the package ``nnfs`` of this process nnfs-core's own?

An unrelated distribution on PyPI, ``nnfs`` (a helper for the book "Neural Networks from
Scratch"), installs a package with the same import name. Installed after nnfs-core, its
``nnfs/__init__.py`` and its ``nnfs`` command replace ours: ``import nnfs`` then gives the
other package, and ``nnfs backends`` runs the other command. The rest of our files stay, this
module among them (the other distribution has no file of this name), and so do the backends:
each backend package calls :func:`require_nnfs_core` when it is imported, so that the clash is
named, with the way out, instead of surfacing as an ``AttributeError`` somewhere inside it.

This module imports no other module of nnfs but ``errors``, which the other distribution does
not have either: it must work when ``nnfs/__init__.py`` is not ours.
"""

from __future__ import annotations

import sys
from importlib import metadata

from .errors import NnfsError

#: Set to True by nnfs-core's ``nnfs/__init__.py``, and by no other package called ``nnfs``.
MARKER = "_is_nnfs_core"


class NnfsCoreReplaced(NnfsError, ImportError):
    """The package ``nnfs`` is not nnfs-core's: another distribution replaced its files."""


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def recovery() -> str:
    """The commands that give this environment nnfs-core's ``nnfs`` back."""
    core = _version("nnfs-core")
    reinstall = "pip install --force-reinstall --no-deps " + (
        f"nnfs-core=={core}" if core else "nnfs-core")
    if _version("nnfs") is None:
        return reinstall
    # Uninstalling the other distribution removes every file its RECORD lists, nnfs/__init__.py
    # included, whoever wrote it last: nnfs-core is reinstalled after it, in either order.
    return f"pip uninstall -y nnfs, then {reinstall}"


def require_nnfs_core(distribution: str) -> None:
    """Raise :class:`NnfsCoreReplaced`, naming the clash and the way out, when the package
    ``nnfs`` that ``distribution`` (an nnfs backend) builds on is not nnfs-core's."""
    # whoever called this imported nnfs._clash, so the package ``nnfs`` is in sys.modules
    nnfs = sys.modules["nnfs"]
    if getattr(nnfs, MARKER, False) is True:
        return
    where = getattr(nnfs, "__file__", None) or ", ".join(getattr(nnfs, "__path__", [])) or "?"
    other = _version("nnfs")
    if other is not None:
        cause = (f"the unrelated distribution 'nnfs' {other} (a helper for the book 'Neural "
                 f"Networks from Scratch') replaced nnfs-core's files in {where}")
    else:
        cause = (f"{where} is not nnfs-core's package 'nnfs' (its __init__.py is missing or "
                 "another one; uninstalling the unrelated distribution 'nnfs' removes it)")
    raise NnfsCoreReplaced(f"{distribution} needs nnfs-core, but {cause}; to repair: "
                           f"{recovery()}")


def exit_if_replaced(command: str) -> None:
    """For ``python -m`` entry points of nnfs-core: print the clash on stderr and exit 1."""
    try:
        require_nnfs_core(command)
    except NnfsCoreReplaced as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
