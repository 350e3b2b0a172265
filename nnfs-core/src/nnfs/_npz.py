"""Reading ``.npz`` archives that may be damaged or made to harm: model files and data files.

An ``.npz`` file is a zip archive of ``.npy`` arrays. numpy's own reader trusts it: a member's
header may declare 10¹² floats, and numpy allocates them before it reads a byte; a zip member
that is no ``.npy``, an encrypted one, an unknown compression method or damaged deflate data
reach the caller as ``KeyError``, ``RuntimeError``, ``NotImplementedError`` or ``zlib.error``.

Here, opening an archive reads only its directory, and refuses anything numpy's ``savez`` would
not write: members that are not ``.npy``, two members of one name, encryption, compression
other than stored and deflated, sizes the member cannot hold. :meth:`Archive.header` then reads
one entry's ``.npy`` header alone and checks it against its zip member (the data it declares
must be exactly what the member holds), and :meth:`Archive.read` reads the data only up to a
bound the caller gives from what it expects, checking the member's CRC at its end. Every
failure is the caller's error class (``ModelFileError``, ``DataFileError``) naming the file and
what is wrong. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np

from .errors import NnfsError, OutOfDeviceMemory

#: How the files np.load reads begin: a zip archive (.npz), one array (.npy), a pickle.
ZIP_MAGIC, NPY_MAGIC, PICKLE_MAGIC = b"PK\x03\x04", b"\x93NUMPY", b"\x80"
#: How a zip archive of no members begins (its end-of-directory record alone).
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
#: Members an archive may hold: far more than any model or data set uses.
MAX_MEMBERS = 10_000
#: deflate never expands data by more than about 1032 to 1: a member that claims more is damaged.
MAX_DEFLATE_RATIO = 1100
#: Bytes read at a time from a member (bounds the temporary memory of a read).
_CHUNK = 1 << 20


def describe(error: BaseException) -> str:
    """``Type: message`` on one line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(frozen=True)
class Header:
    """An entry's ``.npy`` header, checked against its zip member."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    info: zipfile.ZipInfo
    data_offset: int

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize

    @property
    def text(self) -> str:
        """How the header's array is described in messages: ``float64 of shape (25,)``."""
        return f"{self.dtype} of shape {self.shape}"


class Archive:
    """An open ``.npz`` archive whose directory has been checked (see the module docstring).

    ``file`` is an open binary file of ``file_size`` bytes that starts with :data:`ZIP_MAGIC`;
    ``where`` names it in messages, ``kind`` says what it should be ("nnfs model"), and
    ``error`` is the class of the errors raised.
    """

    def __init__(self, file, file_size: int, where: str, error: type[NnfsError],
                 kind: str = ".npz"):
        self.where = where
        self.error = error
        try:
            self.zip = zipfile.ZipFile(file)
        except Exception as failure:
            raise error(f"{where} is damaged or truncated: not a readable {kind} file (its zip "
                        f"archive: {describe(failure)})") from None
        members = self.zip.infolist()
        if len(members) > MAX_MEMBERS:
            raise error(f"{where} holds {len(members)} members; an .npz archive of nnfs holds "
                        f"a few (at most {MAX_MEMBERS} are read)")
        self._members: dict[str, zipfile.ZipInfo] = {}
        for info in members:
            self._check_member(info, file_size)
            name = info.filename.removesuffix(".npy")
            if name in self._members:
                raise error(f"{where} holds two members named {info.filename!r}: an .npz archive "
                            "names each array once")
            self._members[name] = info

    def _check_member(self, info: zipfile.ZipInfo, file_size: int) -> None:
        where, error, name = self.where, self.error, info.filename
        if not name.endswith(".npy"):
            raise error(f"{where}: its member {name!r} is not a .npy array (an .npz archive holds "
                        "only .npy members)")
        if info.flag_bits & 0x1:
            raise error(f"{where}: its member {name!r} is encrypted, which nnfs does not read")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise error(f"{where}: its member {name!r} is compressed with zip method "
                        f"{info.compress_type}; nnfs reads stored (0) and deflated (8) members")
        if info.header_offset + info.compress_size > file_size:
            raise error(f"{where} is damaged or truncated: its member {name!r} ends at byte "
                        f"{info.header_offset + info.compress_size}, past the end of the "
                        f"{file_size}-byte file")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise error(f"{where} is damaged: its stored member {name!r} declares {info.file_size} "
                        f"bytes but holds {info.compress_size}")
        if info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 1024:
            raise error(f"{where} is damaged: its member {name!r} declares {info.file_size} bytes "
                        f"from {info.compress_size} compressed, more than deflate can give")

    # --- entries --------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The entries' names (without ``.npy``), in the archive's order."""
        return list(self._members)

    def __contains__(self, name: str) -> bool:
        return name in self._members

    def header(self, name: str) -> Header:
        """Entry ``name``'s ``.npy`` header, read alone and checked against its member: a plain
        array (no Python objects, no structured dtype) whose data is what the member holds."""
        where, error = self.where, self.error
        info = self._members[name]
        try:
            with self.zip.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    raise error(f"{where}: the entry {name!r} is in .npy format version "
                                f"{version[0]}.{version[1]}; nnfs reads versions 1.0 and 2.0")
                offset = member.tell()
        except NnfsError:
            raise
        except Exception as failure:
            raise error(f"{where} is damaged: the entry {name!r} is not a readable .npy array "
                        f"({describe(failure)})") from None
        if dtype.hasobject:
            raise error(f"{where}: the entry {name!r} holds Python objects (dtype object), which "
                        "nnfs never loads: unpickling can run code")
        if dtype.fields is not None or dtype.subdtype is not None or dtype.kind in "OVMm":
            raise error(f"{where}: the entry {name!r} holds {dtype}, not an array of numbers or "
                        "text")
        if any(n < 0 for n in shape):
            raise error(f"{where}: the entry {name!r} declares the shape {shape}")
        if dtype.itemsize == 0:
            raise error(f"{where}: the entry {name!r} holds {dtype}, items of no bytes")
        header = Header(name, tuple(shape), dtype, bool(fortran_order), info, offset)
        if offset + header.nbytes != info.file_size:
            raise error(f"{where} is damaged: the entry {name!r} declares {header.text} "
                        f"({header.nbytes} bytes of data) but its member holds "
                        f"{info.file_size - offset}")
        return header

    def read(self, header: Header, max_bytes: int, needs: str) -> np.ndarray:
        """The entry's array (native byte order, C order), read only if its header declares at
        most ``max_bytes`` bytes (what ``needs`` needs: named in the message otherwise), with
        the member's CRC checked."""
        where, name = self.where, header.name
        if header.nbytes > max_bytes:
            raise self.error(f"{where}: the entry {name!r} declares {header.text}, "
                             f"{header.nbytes} bytes, far more than {needs} "
                             f"({max_bytes} bytes at most)")
        try:
            flat = np.empty(header.count, dtype=header.dtype)
        except MemoryError:
            raise OutOfDeviceMemory(f"{where}: reading the entry {name!r} ({header.text}) needs "
                                    f"{header.nbytes} bytes of host memory, which are not there",
                                    header.nbytes) from None
        raw = flat.view(np.uint8)
        try:
            with self.zip.open(header.info) as member:
                member.read(header.data_offset)
                done = 0
                while done < header.nbytes:
                    got = cast(zipfile.ZipExtFile, member).readinto(raw[done:done + _CHUNK])
                    if not got:
                        raise EOFError(f"{header.nbytes - done} bytes of data are missing")
                    done += got
                if member.read(1):
                    raise ValueError("the member holds more data than the header declares")
        except Exception as failure:
            raise self.error(f"{where} is damaged: reading the entry {name!r} failed "
                             f"({describe(failure)})") from None
        order: Literal["C", "F"] = "F" if header.fortran_order else "C"
        array = flat.reshape(header.shape, order=order)
        return np.ascontiguousarray(array, dtype=header.dtype.newbyteorder("="))

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _refuse_by_magic(head: bytes, where: str, error: type[NnfsError], kind: str) -> None:
    """Refuse what is no .npz archive by its first bytes, before any parser reads it: numpy
    takes anything that is neither zip nor .npy for a pickle, and says so even for text."""
    if head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
        return
    if head.startswith(NPY_MAGIC):
        raise error(f"{where} is a single numpy array (.npy), not an {kind} archive (.npz)")
    if head.startswith(PICKLE_MAGIC):
        raise error(f"{where} holds pickled Python objects, which nnfs never loads (unpickling "
                    f"can run code): not an {kind} file")
    shown = "it is empty" if not head else f"it starts with {head!r}"
    raise error(f"{where} is not an {kind} file (an .npz archive, which starts with "
                f"{ZIP_MAGIC!r}): {shown}")


@contextlib.contextmanager
def open_archive(path, where: str, error: type[NnfsError], kind: str) -> Iterator[Archive]:
    """The archive at ``path`` (a checked regular file, see :func:`nnfs._files.input_file`),
    refused by its first bytes unless it is a zip archive. ``kind`` names what it should be in
    messages (``"nnfs model"``)."""
    from ._files import open_input

    with open_input(path, where, error) as file:
        try:
            head = file.read(8)
            size = os.fstat(file.fileno()).st_size
            file.seek(0)
        except OSError as failure:
            raise error(f"{where} cannot be read: {describe(failure)}") from None
        _refuse_by_magic(head, where, error, kind)
        with Archive(file, size, where, error, kind) as archive:
            yield archive
