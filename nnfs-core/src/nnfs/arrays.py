"""Matrices and vectors: windows of device buffers.

A :class:`Buffer` is one allocation on a device, made by a factory. Every matrix and vector is
a contiguous window of one buffer: a ``rows × cols`` matrix is stored column by column
(column-major, leading dimension = rows) starting ``offset`` elements into its buffer, and a
vector is ``size`` consecutive elements. Views (``columns``, ``column``, ``as_vector``,
``as_matrix``, ``subvector``) are windows of the same buffer, so every operand a backend sees is
one contiguous block, which keeps kernels simple.

A backend keeps whatever it needs per window in ``handle`` (a numpy view, a device pointer and
offset...), made by its factory when the window is created.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, TypeVar, cast

from . import _args as check
from .errors import NnfsValueError

if TYPE_CHECKING:
    from .factory import Factory


class Buffer:
    """One allocation on a device. Matrices and vectors are windows into a buffer."""

    __slots__ = ("__weakref__", "_finalizer", "factory", "nbytes", "size", "storage")

    def __init__(self, factory: Factory, size: int, storage: Any):
        self.factory = factory
        self.size = size
        self.nbytes = size * factory.itemsize
        self.storage = storage
        self._finalizer = weakref.finalize(self, factory.backend.memory.freed, self.nbytes)

    @property
    def released(self) -> bool:
        return self.storage is None

    def release(self) -> None:
        """Give the allocation back. A training step running in another thread is let finish
        first (the factory's lock), so no operation ever runs on freed memory; the driver then
        finds the release at its next step (the factory's release count) and stops with
        :class:`nnfs.ReleasedError`."""
        if self.storage is not None:
            factory = self.factory
            with factory._lock:
                if self.storage is None:
                    return
                storage, self.storage = self.storage, None
                factory._releases += 1
                self._finalizer()
                factory.backend.free(storage)


_W = TypeVar("_W", bound="_Window")


class _Window:
    """What matrices and vectors share: a window of a buffer, release and ``with``."""

    __slots__ = (
        "__weakref__", "_released", "buffer", "factory", "handle", "offset", "owns", "size",
    )

    handle: Any  # the backend's view of the window (None once released), set by the subclass

    def __init__(self, buffer: Buffer, offset: int, size: int, owns: bool):
        self.factory = buffer.factory
        self.buffer = buffer
        self.offset = offset
        self.size = size
        self.owns = owns
        self._released = False

    @property
    def dtype(self) -> str:
        return self.factory.dtype

    @property
    def nbytes(self) -> int:
        return self.size * self.factory.itemsize

    @property
    def released(self) -> bool:
        """True after ``release()``, or once the memory this window views was released."""
        return self._released or self.buffer.storage is None

    def release(self) -> None:
        """Give the memory back (for a view: stop using it). Safe to call more than once."""
        self._released = True
        self.handle = None
        if self.owns:
            self.buffer.release()

    def __enter__(self: _W) -> _W:
        check.live(self, "the object entering 'with'")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def overlaps(self, other: _Window) -> bool:
        """True if both windows share at least one element of the same buffer."""
        return (
            self.buffer is other.buffer
            and self.offset < other.offset + other.size
            and other.offset < self.offset + self.size
        )

    def _state(self) -> str:
        notes = [self.dtype, self.factory.name]
        if not self.owns:
            notes.append("view")
        if self.released:
            notes.append("released")
        return ", ".join(notes)

    def __str__(self) -> str:
        if self.released:
            return repr(self)
        return f"{self!r}\n{self.factory.to_host(cast('Matrix | Vector', self))}"


class Matrix(_Window):
    """A ``rows × cols`` matrix on a device, stored column by column.

    Create matrices with :meth:`Factory.matrix`; read one back with ``nnfs.transfer(m)``.
    """

    __slots__ = ("cols", "rows")

    def __init__(self, buffer: Buffer, offset: int, rows: int, cols: int, owns: bool = False):
        super().__init__(buffer, offset, rows * cols, owns)
        self.rows = rows
        self.cols = cols
        self.handle = buffer.factory.backend.matrix_view(buffer.storage, offset, rows, cols)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def shape_text(self) -> str:
        return f"{self.rows}×{self.cols} matrix"

    def columns(self, start: int, stop: int) -> Matrix:
        """A view of the columns ``start`` to ``stop - 1`` (samples of a batch, say)."""
        check.live(self, "the matrix")
        start = check.count(start, "columns: start", minimum=0)
        stop = check.count(stop, "columns: stop", minimum=start + 1)
        if stop > self.cols:
            raise NnfsValueError(
                f"columns: stop must be at most the number of columns ({self.cols}), got {stop}"
            )
        return Matrix(self.buffer, self.offset + start * self.rows, self.rows, stop - start)

    def column(self, j: int) -> Vector:
        """A view of column ``j`` as a vector."""
        check.live(self, "the matrix")
        j = check.count(j, "column: index", minimum=0)
        if j >= self.cols:
            raise NnfsValueError(f"column: index must be below {self.cols}, got {j}")
        return Vector(self.buffer, self.offset + j * self.rows, self.rows)

    def as_vector(self) -> Vector:
        """A view of all entries as one vector, column after column."""
        check.live(self, "the matrix")
        return Vector(self.buffer, self.offset, self.size)

    def __repr__(self) -> str:
        return f"Matrix({self.rows}×{self.cols}, {self._state()})"


class Vector(_Window):
    """A vector of ``size`` entries on a device. Create vectors with :meth:`Factory.vector`."""

    __slots__ = ()

    def __init__(self, buffer: Buffer, offset: int, size: int, owns: bool = False):
        super().__init__(buffer, offset, size, owns)
        self.handle = buffer.factory.backend.vector_view(buffer.storage, offset, size)

    @property
    def shape(self) -> tuple[int]:
        return (self.size,)

    @property
    def shape_text(self) -> str:
        return f"vector of {self.size}"

    def subvector(self, start: int, stop: int) -> Vector:
        """A view of the entries ``start`` to ``stop - 1``."""
        check.live(self, "the vector")
        start = check.count(start, "subvector: start", minimum=0)
        stop = check.count(stop, "subvector: stop", minimum=start + 1)
        if stop > self.size:
            raise NnfsValueError(f"subvector: stop must be at most {self.size}, got {stop}")
        return Vector(self.buffer, self.offset + start, stop - start)

    def as_matrix(self, rows: int, cols: int, start: int = 0) -> Matrix:
        """A ``rows × cols`` matrix view of the entries from ``start`` on, column after column."""
        check.live(self, "the vector")
        rows = check.count(rows, "as_matrix: rows")
        cols = check.count(cols, "as_matrix: cols")
        start = check.count(start, "as_matrix: start", minimum=0)
        if start + rows * cols > self.size:
            raise NnfsValueError(
                f"as_matrix: {rows}×{cols} from entry {start} needs {start + rows * cols} "
                f"entries, the vector has {self.size}"
            )
        return Matrix(self.buffer, self.offset + start, rows, cols)

    def __repr__(self) -> str:
        return f"Vector({self.size}, {self._state()})"
