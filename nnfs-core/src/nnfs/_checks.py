"""Checks of the matrices and vectors that public functions are given: whose they are,
their shapes, whether they overlap, and host data meant for them.

Each check names the argument, what was given and what was expected. They run before any work
or state change; the training loop itself calls none of them. The checks of plain values
(``real``, ``count``, ``live``) are in ``_args`` and are offered here too, so that a caller
imports one module of checks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ._args import count, live, real
from .arrays import Matrix, Vector
from .errors import BackendMismatch, DTypeMismatch, NnfsTypeError, NnfsValueError, ShapeError

if TYPE_CHECKING:
    from .factory import Factory

__all__ = ["count", "elementwise_alias", "first_non_finite", "host_array", "live", "matrix",
           "no_overlap", "on_factory", "real", "same_shape", "vector"]


def on_factory(factory: Factory, obj: object, what: str) -> None:
    """Raise unless ``obj`` is a live matrix or vector of ``factory``."""
    if not isinstance(obj, (Matrix, Vector)):
        raise NnfsTypeError(
            f"{what} must be an nnfs Matrix or Vector of {factory.describe()}, "
            f"got {type(obj).__name__}"
        )
    live(obj, what)
    if obj.factory is not factory:
        other = obj.factory
        if other.name == factory.name and other.dtype != factory.dtype:
            raise DTypeMismatch(
                f"{what} is {other.dtype} but this operation runs on a {factory.dtype} factory "
                f"({factory.describe()}); transfer it with nnfs.transfer(x, destination)"
            )
        raise BackendMismatch(
            f"{what} belongs to {other.describe()}, not to {factory.describe()}; "
            "use matrices of one factory together, or copy with nnfs.transfer(x, destination)"
        )


def matrix(
    factory: Factory, obj: object, what: str, rows: int | None = None, cols: int | None = None
) -> Matrix:
    """Raise unless ``obj`` is a live matrix of ``factory`` with the given dimensions."""
    on_factory(factory, obj, what)
    if not isinstance(obj, Matrix):
        assert isinstance(obj, Vector)  # on_factory lets only matrices and vectors through
        raise NnfsTypeError(f"{what} must be a Matrix, got a Vector of size {obj.size}")
    if (rows is not None and obj.rows != rows) or (cols is not None and obj.cols != cols):
        want = f"{'?' if rows is None else rows}×{'?' if cols is None else cols}"
        raise ShapeError(f"{what} must be {want}, got {obj.rows}×{obj.cols}")
    return obj


def vector(factory: Factory, obj: object, what: str, size: int | None = None) -> Vector:
    """Raise unless ``obj`` is a live vector of ``factory`` with ``size`` entries."""
    on_factory(factory, obj, what)
    if not isinstance(obj, Vector):
        assert isinstance(obj, Matrix)  # on_factory lets only matrices and vectors through
        raise NnfsTypeError(f"{what} must be a Vector, got a {obj.rows}×{obj.cols} Matrix")
    if size is not None and obj.size != size:
        raise ShapeError(f"{what} must have {size} entries, got {obj.size}")
    return obj


def same_shape(x: Matrix | Vector, y: Matrix | Vector, what_x: str, what_y: str) -> None:
    """Raise unless ``x`` and ``y`` are both matrices or both vectors of the same shape."""
    if type(x) is not type(y) or x.shape != y.shape:
        raise ShapeError(
            f"{what_x} and {what_y} must have the same shape, got {x.shape_text} and {y.shape_text}"
        )


def no_overlap(out: Matrix | Vector, source: Matrix | Vector, what_out: str, what: str) -> None:
    """Raise if ``out`` shares memory with ``source`` (BLAS results would be undefined)."""
    if out.overlaps(source):
        raise NnfsValueError(
            f"{what_out} shares memory with {what}; the result would be undefined: "
            "give an output that does not overlap the inputs"
        )


def elementwise_alias(out: Matrix | Vector, source: Matrix | Vector, what_out: str,
                      what: str) -> None:
    """Allow ``out`` to be exactly ``source`` but not to overlap it partly."""
    if out.overlaps(source) and (out.buffer is not source.buffer or out.offset != source.offset):
        raise NnfsValueError(
            f"{what_out} partly overlaps {what}: an elementwise output must be the input itself "
            "or share no memory with it"
        )


def host_array(data: object, shape: tuple[int, ...], dtype: np.dtype, what: str) -> np.ndarray:
    """``data`` as a C-ordered numpy array of ``shape`` and ``dtype``, checked to be finite.

    A matrix accepts data of its exact shape, given row by row as on the host, or a flat
    sequence of rows·cols numbers read row by row.
    """
    if isinstance(data, (Matrix, Vector)):
        live(data, what)
        data = data.factory.to_host(data)
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as error:  # ragged nested lists
        raise NnfsValueError(f"{what} cannot be read as a numeric array: {error}") from None
    if array.dtype.kind not in "biuf":
        raise NnfsTypeError(
            f"{what} must hold real numbers, got an array of dtype {array.dtype} "
            f"(for example {array.ravel()[:1].tolist()})"
        )
    size = math.prod(shape)
    if array.shape != shape:
        if array.ndim == 1 and array.size == size and len(shape) == 2:
            array = array.reshape(shape)
        else:
            expected = "×".join(map(str, shape))
            flat = f" or a flat sequence of {size} numbers" if len(shape) == 2 else ""
            raise ShapeError(
                f"{what} must have shape {expected}{flat}, got shape "
                f"{'×'.join(map(str, array.shape)) or 'scalar'}"
            )
    bad = first_non_finite(array)
    if bad is not None:
        raise NnfsValueError(f"{what} holds {bad[1]} at index {bad[0]}; expected finite numbers")
    with np.errstate(over="ignore"):  # a number too large for dtype is reported just below
        converted = np.ascontiguousarray(array, dtype=dtype)
    bad = first_non_finite(converted)
    if bad is not None:
        raise NnfsValueError(
            f"{what} holds {array[bad[0]]!r} at index {bad[0]}, which is too large for {dtype}"
        )
    return converted


def first_non_finite(array: np.ndarray) -> tuple[tuple[int, ...], str] | None:
    """The index and kind (``nan`` or ``inf``) of the first non-finite entry, or None."""
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return None
    index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
    return index, ("nan" if np.isnan(array[index]) else "inf")
