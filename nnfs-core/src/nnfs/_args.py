"""Checks of plain argument values: numbers, counts, dtypes, released objects.

Each check names the argument, what was given and what was expected. They run before any work
or state change; the training loop itself calls none of them. Checks of matrices and vectors
(shapes, factories, overlaps) are in ``_checks``, which builds on these.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

from .errors import NnfsTypeError, NnfsValueError, ReleasedError

#: The dtypes nnfs knows about. A backend supports a subset of them.
DTYPES = ("float32", "float64")


def real(value: object, what: str, *, finite: bool = True) -> float:
    """``value`` as a float; it must be a real number (not a bool) and, by default, finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise NnfsTypeError(f"{what} must be a real number, got {type(value).__name__} {value!r}")
    result = float(value)
    if finite and not math.isfinite(result):
        raise NnfsValueError(f"{what} must be finite, got {result!r}")
    return result


def learning_rate(value: object, what: str) -> float:
    """``value`` as a learning rate: a finite real number above 0."""
    eta = real(value, what)
    if eta <= 0:
        raise NnfsValueError(f"{what} (the learning rate) must be positive, got {eta}")
    return eta


def count(value: object, what: str, *, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum``; floats such as 2.0 are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise NnfsTypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    result = int(value)
    if result < minimum:
        relation = "positive" if minimum == 1 else f"at least {minimum}"
        raise NnfsValueError(f"{what} must be {relation}, got {result}")
    return result


def live(obj: object, what: str) -> None:
    """Raise if ``obj`` (anything with a ``released`` property) was released."""
    if getattr(obj, "released", False):
        raise ReleasedError(f"{what} was released and cannot be used any more: {obj!r}")


def dtype_name(dtype: object) -> str:
    """The dtype name nnfs uses ("float32" or "float64") for ``dtype`` (a name or numpy dtype)."""
    try:
        # accepts "float32", np.float32, np.dtype("f4")...
        name = np.dtype(cast("DTypeLike", dtype)).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise NnfsValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return name


def format_bytes(nbytes: int) -> str:
    """``nbytes`` exactly, and in GiB, MiB or KiB for a reader: "3221225472 bytes (3.0 GiB)"."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes} bytes ({nbytes / size:.1f} {unit})"
    return f"{nbytes} bytes"
