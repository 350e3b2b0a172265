"""Files nnfs reads and writes, the way a careful tool treats them.

Reading: the path is checked before it is opened (it exists, can be reached, and is a regular
file: never a directory, a pipe that would block, or a device that never ends), and every
failure of the system is an nnfs error naming the file.

Writing: a file is written whole or not at all (a temporary file next to it, synced to disk,
renamed over it); through a symbolic link, to the link's target; never over anything that is
not a regular file; with the mode the old file had, or the one the umask gives a new file; and
a full disk, a read-only filesystem or a file-size limit is an nnfs error naming the file.
:func:`check_writable` finds those before long work, so that ``nnfs train --save`` refuses
before training rather than after it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ._args import format_bytes
from .errors import (
    NnfsError,
    NnfsFileNotFoundError,
    NnfsOSError,
    NnfsPermissionError,
    NnfsTypeError,
    NnfsValueError,
)

if sys.platform != "win32":
    import resource  # file-size limits; not on Windows
else:  # pragma: no cover - Windows
    resource = None


def as_path(path: object, what: str) -> Path:
    """``path`` as a Path, refusing what cannot name a file (a number, a name with NUL)."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise NnfsTypeError(f"{what} must be a file path, got {type(path).__name__}")
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if "\0" in text:
        raise NnfsValueError(f"{what} {text!r} holds a NUL character, which no file name can hold")
    if not text:
        raise NnfsValueError(f"{what} is empty, expected a file name")
    return Path(text)


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


# --- reading --------------------------------------------------------------------------------------

def input_file(path: Path, where: str, error: type[NnfsError], what_it_is: str) -> Path:
    """Check that ``path`` is a regular file that can be reached, before opening it: raise
    NnfsFileNotFoundError, NnfsPermissionError or ``error`` (naming it as ``where``) if not.
    ``what_it_is`` ends the message about a directory ("an nnfs model file")."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise NnfsFileNotFoundError(f"{where} does not exist") from None
    except NotADirectoryError:
        raise NnfsFileNotFoundError(f"{where} does not exist (a part of its path is not a "
                                    "directory)") from None
    except PermissionError:
        raise NnfsPermissionError(f"{where} cannot be reached (permission denied on a "
                                  "directory of its path)") from None
    except OSError as failure:
        if failure.errno == errno.ELOOP:
            raise error(f"{where} is a loop of symbolic links") from None
        raise error(f"{where} cannot be opened: {_reason(failure)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{where} is a directory, not {what_it_is}")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{where} is {_kind(info.st_mode)}, not a regular file: nnfs reads "
                    f"{what_it_is} from a file")
    return path


def open_input(path: Path, where: str, error: type[NnfsError]) -> io.BufferedReader:
    """``open(path, "rb")``, with the system's refusals as nnfs errors."""
    try:
        return open(path, "rb")
    except PermissionError:
        raise NnfsPermissionError(f"{where} cannot be read (permission denied)") from None
    except OSError as failure:
        raise error(f"{where} cannot be read: {_reason(failure)}") from None


def _reason(failure: OSError) -> str:
    return failure.strerror or str(failure) or type(failure).__name__


# --- writing --------------------------------------------------------------------------------------

#: The longest file name when the filesystem does not say (Linux, macOS and Windows: 255).
DEFAULT_NAME_MAX = 255
#: mkstemp's random part and nnfs's suffix of a temporary file: ".NAME." + 8 + ".tmp".
_TEMPORARY_EXTRA = len("..") + 8 + len(".tmp")


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAME_MAX


def output_file(path: object, what: str) -> Path:
    """The regular file that writing ``path`` replaces: ``path`` itself, or the target of the
    symbolic link(s) it is. Raises, naming ``what``, unless that file can be a regular file
    in an existing directory, under a name the filesystem allows."""
    path = as_path(path, what)
    _check_name_length(path, what)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except PermissionError:
        raise NnfsPermissionError(f"{what}: {str(path)!r} cannot be reached (permission denied "
                                  "on a directory of its path)") from None
    except OSError as failure:
        if failure.errno == errno.ELOOP:
            raise NnfsValueError(f"{what}: {str(path)!r} is a loop of symbolic links") from None
        if failure.errno == errno.ENAMETOOLONG:
            raise NnfsValueError(f"{what}: the path {str(path)!r} is too long for this "
                                 "system") from None
        if failure.errno != errno.ENOTDIR:
            raise NnfsOSError(f"{what}: {str(path)!r}: {_reason(failure)}") from None
        info = None
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise NnfsValueError(f"{what}: {str(path)!r} is a directory, expected a file name")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise NnfsValueError(
            f"{what}: {str(path)!r} is {_kind(info.st_mode)}, not a regular file: nnfs writes "
            "a file whole by replacing it, which it does not do to anything but a regular file")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        link = f" (the target of the symbolic link {str(path)!r})" if target != path else ""
        raise NnfsFileNotFoundError(f"{what}: the directory {str(directory)!r} of "
                                    f"{str(target)!r}{link} does not exist")
    _check_name_length(target, what)
    return target


def _check_name_length(path: Path, what: str) -> None:
    directory = path.parent if path.parent.is_dir() else Path(".")
    limit = _name_max(directory)
    length = len(os.fsencode(path.name))
    if length > limit:
        raise NnfsValueError(f"{what}: the file name {path.name[:40]!r}… is {length} bytes "
                             f"long; the filesystem of {str(path.parent)!r} allows {limit}")


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it; else set and put
    back under a lock (os.umask has no way to only read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _temporary_prefix(name: str, limit: int) -> str:
    """``.NAME.``, NAME shortened so that the temporary file's name fits in ``limit`` bytes."""
    room = max(1, limit - _TEMPORARY_EXTRA)
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return f".{name}."


def write_error(failure: OSError, what: str, path: Path) -> NnfsError:
    """The nnfs error for the system's refusal to write ``path``."""
    code, shown = failure.errno, str(path)
    made: NnfsOSError | NnfsPermissionError
    if isinstance(failure, PermissionError) or code in (errno.EACCES, errno.EPERM):
        made = NnfsPermissionError(f"{what}: cannot write in {str(path.parent)!r} "
                                   f"(permission denied) to write {shown!r}")
    elif code == errno.EROFS:
        made = NnfsOSError(f"{what}: cannot write {shown!r}: its filesystem is read-only")
    elif code in (errno.ENOSPC, errno.EDQUOT):
        room = "the disk is full" if code == errno.ENOSPC else "the disk quota is used up"
        made = NnfsOSError(f"{what}: cannot write {shown!r}: {room} (no space left on the "
                           f"device of {str(path.parent)!r})")
    elif code == errno.EFBIG:
        made = NnfsOSError(f"{what}: cannot write {shown!r}: the file would be larger than this "
                           "process may write (its file-size limit, ulimit -f) or than the "
                           "filesystem allows")
    elif code == errno.ENAMETOOLONG:
        made = NnfsOSError(f"{what}: cannot write {shown!r}: the name is too long for its "
                           "filesystem")
    else:
        made = NnfsOSError(f"{what}: cannot write {shown!r}: {_reason(failure)}")
    made.errno = code  # (a filename would change how the message reads)
    return made


def check_writable(path: object, what: str, size: int | None = None) -> Path:
    """Raise unless a file of about ``size`` bytes can be written at ``path`` now: its
    directory exists and takes a new file (permissions, a read-only filesystem, the name's
    length), and the free space and this process's file-size limit allow ``size``. Returns the
    file that would be written (a link's target). Commands call it before long work."""
    target = output_file(path, what)
    directory = target.parent
    prefix = _temporary_prefix(target.name, _name_max(directory))
    try:
        handle, probe = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    except OSError as failure:
        raise write_error(failure, what, target) from None
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    if size is not None:
        _check_room(target, what, size)
    return target


def _check_room(target: Path, what: str, size: int) -> None:
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource else None
    if limit is not None and limit != resource.RLIM_INFINITY and size > limit:
        raise NnfsOSError(f"{what}: {str(target)!r} would be about {format_bytes(size)}, but "
                          f"this process may write files of at most {format_bytes(limit)} "
                          "(its file-size limit, ulimit -f)")
    try:
        space = os.statvfs(target.parent)
    except (OSError, AttributeError):
        return
    free = space.f_bavail * space.f_frsize
    old = target.stat().st_size if target.is_file() else 0
    if size > free + old:
        raise NnfsOSError(f"{what}: {str(target)!r} would be about {format_bytes(size)}, but "
                          f"the filesystem of {str(target.parent)!r} has "
                          f"{format_bytes(free)} free")


def _keep_mode_and_owner(descriptor: int, target: Path) -> None:
    """Give the new file the old file's mode (and, where allowed, owner), or for a new file the
    mode the umask gives: what ``open(path, "w")`` would have left, not mkstemp's 0600."""
    try:
        old = os.stat(target)
    except OSError:
        os.fchmod(descriptor, 0o666 & ~_umask())
        return
    os.fchmod(descriptor, stat.S_IMODE(old.st_mode))
    mine = os.fstat(descriptor)
    if (mine.st_uid, mine.st_gid) != (old.st_uid, old.st_gid):
        with contextlib.suppress(OSError):
            os.fchown(descriptor, old.st_uid, old.st_gid)


def write_whole(path: object, write: Callable[[BinaryIO], object], what: str) -> Path:
    """Write a file whole or not at all: ``write(file)`` fills a temporary file in the same
    directory, which is synced to disk and renamed over the file. Returns the file written
    (a symbolic link's target)."""
    target = output_file(path, what)
    directory = target.parent
    prefix = _temporary_prefix(target.name, _name_max(directory))
    try:
        handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    except OSError as failure:
        raise write_error(failure, what, target) from None
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            _keep_mode_and_owner(file.fileno(), target)
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException as failure:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(failure, OSError) and not isinstance(failure, NnfsError):
            raise write_error(failure, what, target) from None
        raise
    _sync_directory(directory)
    return target


def _sync_directory(directory: Path) -> None:
    """Put the rename on disk too, so that a power cut after it keeps the new file. Best
    effort: some systems cannot open a directory."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
