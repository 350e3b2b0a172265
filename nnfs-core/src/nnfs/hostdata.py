"""Host data as users have it, checked for a network: samples and targets, one per row.

Host data follows numpy and scikit-learn: one sample per **row** (``X`` is samples × features);
targets are class labels (1-D) or one row of outputs per sample. Everything here runs before
training starts, so that bad data is refused before any work: ragged lists, non-numbers,
NaN and infinity, values that do not fit the network's dtype, labels out of range, and targets
a cost is not defined for.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from . import _checks as check
from .errors import NnfsTypeError, NnfsValueError, ShapeError
from .kinds import ActivationKind

#: Rows checked at a time (so the checks need no copy of the data).
_CHECK_ROWS = 65536


def _as_array(data: object, what: str) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data
    try:
        return np.asarray(data)
    except (ValueError, TypeError) as error:  # ragged nested lists, objects numpy cannot read
        raise NnfsValueError(f"{what} cannot be read as a numeric array (are its rows of "
                             f"different lengths?): {error}") from None


def samples(data: object, what: str, features: int, dtype: np.dtype) -> np.ndarray:
    """``data`` as a 2-D array of ``features`` columns, checked to be finite and to fit
    ``dtype`` (the network's)."""
    array = _as_array(data, what)
    if array.dtype.kind not in "biuf":
        raise NnfsTypeError(f"{what} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 1 and features == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != features:
        raise ShapeError(
            f"{what} must have one sample per row and {features} columns (the network's "
            f"inputs), got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise NnfsValueError(f"{what} is empty: it has no samples; expected at least one sample")
    check_values(array, what, dtype)
    return array


def check_values(array: np.ndarray, what: str, dtype: DTypeLike) -> None:
    """Raise naming the first entry of a 2-D ``array`` that is NaN, infinite, or too large
    for ``dtype``; block by block, with no copy of the whole."""
    if array.dtype.kind != "f":
        return  # every integer numpy holds fits a float32
    limit = float(np.finfo(dtype).max)
    fits = np.finfo(array.dtype).max <= limit
    for start in range(0, array.shape[0], _CHECK_ROWS):
        block = array[start:start + _CHECK_ROWS]
        bad = check.first_non_finite(block)
        if bad is not None:
            row, column = bad[0][0] + start, bad[0][1]
            raise NnfsValueError(f"{what} holds {bad[1]} in row {row}, column {column}; "
                                 "expected finite numbers")
        if not fits:
            large = np.abs(block) > limit
            if large.any():
                row, column = (int(i) for i in np.argwhere(large)[0])
                raise NnfsValueError(
                    f"{what} holds {float(block[row, column])!r} in row {row + start}, column "
                    f"{column}, which is too large for the network's {np.dtype(dtype).name} "
                    f"(at most {limit:.6g}); scale the data, or use a float64 network")


@dataclass(frozen=True)
class Targets:
    """Desired outputs: class labels (one-hot on the fly) or one row of outputs per sample."""

    labels: np.ndarray | None
    values: np.ndarray | None
    outputs: int
    #: One weight per sample, scaled to a mean of 1 (see :func:`sample_weights`), or None.
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        if self.labels is not None:
            return len(self.labels)
        assert self.values is not None  # a target is labels or values
        return len(self.values)


def targets(data: object, what: str, outputs: int, dtype: np.dtype) -> Targets:
    """``data`` as targets for a network of ``outputs`` outputs in ``dtype``.

    A 1-D array of integers is class labels when the network has several outputs (each in
    ``0 .. outputs-1``); otherwise one row of ``outputs`` values per sample.
    """
    array = _as_array(data, what)
    if array.dtype.kind not in "biuf":
        raise NnfsTypeError(
            f"{what} must hold numbers (labels or outputs), got dtype {array.dtype}")
    if array.ndim == 1 and outputs > 1:
        if array.dtype.kind == "f":
            check_values(array.reshape(-1, 1), what, np.float64)
            if not np.all(array == np.round(array)):
                raise NnfsValueError(
                    f"{what} is 1-D, so it must hold class labels (whole numbers), but it holds "
                    f"fractions such as {float(array[array != np.round(array)][0])!r}"
                )
            outside = (array < 0) | (array >= outputs)
            if outside.any():  # before converting: 1e20 is no int64
                row = int(np.argmax(outside))
                raise NnfsValueError(
                    f"{what} holds the label {float(array[row])!r} in row {row}, but the "
                    f"network has {outputs} outputs: labels must be 0 to {outputs - 1}")
        labels = array.astype(np.int64)
        outside = (labels < 0) | (labels >= outputs)
        if outside.any():
            row = int(np.argmax(outside))
            raise NnfsValueError(
                f"{what} holds the label {labels[row]} in row {row}, but the network has "
                f"{outputs} outputs: labels must be 0 to {outputs - 1}"
            )
        return Targets(labels, None, outputs)
    if array.ndim == 1 and outputs == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != outputs:
        raise ShapeError(
            f"{what} must be class labels (1-D) or one row of {outputs} outputs per sample, "
            f"got shape {array.shape}"
        )
    check_values(array, what, dtype)
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    return Targets(None, array, outputs)


def sample_weights(data: object, what: str, n: int) -> np.ndarray | None:
    """``data`` as one weight per sample for ``n`` samples, scaled to a mean of 1 so that the
    learning rate keeps its meaning; None when every weight is the same (weighting by a constant
    is no weighting, and the unweighted path gives the very same numbers).

    A weight multiplies its sample's loss: a batch's update is ``−(η/b)·Σ wᵢ·∂ℓᵢ/∂p``, so a
    weight of 2 counts a sample as twice, 0 leaves it out."""
    array = _as_array(data, what)
    if array.dtype.kind not in "biuf":
        raise NnfsTypeError(f"{what} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != 1 or len(array) != n:
        raise ShapeError(f"{what} must be one weight per sample: 1-D of length {n}, got shape "
                         f"{array.shape}")
    array = array.astype(np.float64)
    check_values(array.reshape(-1, 1), what, np.float64)
    if (array < 0).any():
        row = int(np.argmax(array < 0))
        raise NnfsValueError(f"{what} holds the negative weight {float(array[row])!r} in row "
                             f"{row}; expected weights of 0 or more")
    total = float(array.sum())
    if total == 0:
        raise NnfsValueError(f"{what} is zero for every sample: there is nothing to learn from; "
                             "expected at least one positive weight")
    if np.all(array == array[0]):
        return None
    return array * (n / total)


def check_cross_entropy(target: Targets, output: ActivationKind, what: str) -> None:
    """Raise unless ``target`` is what cross-entropy is defined for with an ``output`` layer:
    values in [0, 1] for sigmoid; rows of values in [0, 1] that sum to 1 for softmax (one-hot
    labels are). Checked block by block, before training."""
    if target.values is None:
        return
    values = target.values
    for start in range(0, len(values), _CHECK_ROWS):
        block = values[start:start + _CHECK_ROWS]
        outside = (block < 0) | (block > 1)
        if outside.any():
            row, column = (int(i) for i in np.argwhere(outside)[0])
            hint = (" (class labels for a one-output network? give it one output per class "
                    "and softmax)" if target.outputs == 1 and block[row, column] > 1 else "")
            raise NnfsValueError(
                f"{what} holds {float(block[row, column])!r} in row {row + start}, column "
                f"{column}: "
                f"cross-entropy needs targets between 0 and 1{hint}; use quadratic_cost for "
                "other targets")
        if output == ActivationKind.SOFTMAX:
            sums = block.sum(axis=1)
            tolerance = 1e-3 if values.dtype == np.float32 else 1e-6
            off = np.abs(sums - 1.0) > tolerance * max(1, target.outputs)
            if off.any():
                row = int(np.argmax(off))
                raise NnfsValueError(
                    f"{what}: row {row + start} sums to {float(sums[row])!r}, but with a "
                    "softmax output, cross-entropy needs each row of targets to sum to 1 "
                    "(one-hot rows, or probabilities)")


def accuracy(predicted: np.ndarray, expected: Targets, rows: slice | np.ndarray) -> int:
    """How many of the ``predicted`` rows (samples) are right: the largest output is the
    label's, or for one output, both sides of 0.5 agree."""
    if expected.labels is not None:
        return int(np.count_nonzero(predicted.argmax(axis=1) == expected.labels[rows]))
    values = expected.values
    assert values is not None  # a target is labels or values
    values = values[rows]
    if expected.outputs == 1:
        return int(np.count_nonzero((predicted[:, 0] > 0.5) == (values[:, 0] > 0.5)))
    return int(np.count_nonzero(predicted.argmax(axis=1) == values.argmax(axis=1)))


#: Rows of the data a fingerprint reads (evenly spaced, so it is cheap).
FINGERPRINT_ROWS = 64


def fingerprint(array: np.ndarray) -> int:
    """A checksum of a few evenly spaced rows, the same for equal data in any dtype: what
    data-parallel ranks compare, and what a checkpoint keeps of its training data."""
    rows = np.unique(np.linspace(0, len(array) - 1, FINGERPRINT_ROWS).astype(np.int64))
    return zlib.crc32(np.ascontiguousarray(array[rows], dtype=np.float64).tobytes())
