"""Philox-4x32-10, the counter-based generator of dropout's masks, and how a mask is drawn.

Philox (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011)
maps a 128-bit *counter* and a 64-bit *key* to 128 random bits, four 32-bit words, through ten
rounds of two 32×32→64-bit multiplications and some exclusive ors. Nothing is carried from one
call to the next, so any element of any stream can be drawn on its own, in any order, on any
device: the same seed then gives the same dropout masks on every backend, whether a batch is
trained in one process or split across several.

One round, with the multipliers M₀, M₁ and the counter (c₀, c₁, c₂, c₃)::

    (hi₀, lo₀) = M₀·c₀      (hi₁, lo₁) = M₁·c₂      (the high and low 32 bits of each product)
    (c₀, c₁, c₂, c₃) ← (hi₁ ⊕ c₁ ⊕ k₀,  lo₁,  hi₀ ⊕ c₃ ⊕ k₁,  lo₀)

and before each round but the first the key is bumped by the Weyl constants:
``k₀ += W₀, k₁ += W₁`` (mod 2³²).

A dropout mask (``Backend.dropout_mask``): entry (i, j) of a ``rows × cols`` mask takes
element ``n = (first + j)·rows + i`` of the stream keyed by ``(seed, layer)`` at ``step``:
the counter ``(b mod 2³², b div 2³², step mod 2³², step div 2³²)`` with ``b = n div 4`` gives four
words, of which word ``n mod 4`` is w; the entry is 0 when ``w < ⌊rate·2³²⌋`` (an integer
comparison, the same on every device) and ``1 / (1 − rate)`` otherwise.

This module is the definition, written twice: :func:`philox4x32` on numpy arrays (the
conformance kit's and the reference backend's), and :func:`philox4x32_scalar` on Python
integers, the plainest form, which the tests check against the published known answers of
Random123 (numpy's own ``Philox`` is the 4×64 variant, so it cannot serve as the oracle here).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

#: The round multipliers and the key's Weyl constants (Random123's PHILOX_M4x32_0/1 and
#: PHILOX_W32_0/1).
M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
ROUNDS = 10
MASK32 = 0xFFFFFFFF


def philox4x32_scalar(counter: tuple[int, int, int, int],
                      key: tuple[int, int]) -> tuple[int, int, int, int]:
    """Philox-4x32-10 of one counter and key, in Python integers (each word below 2³²)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_number in range(ROUNDS):
        if round_number:
            k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
    return c0, c1, c2, c3


def philox4x32(c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, c3: np.ndarray, k0: int,
               k1: int) -> tuple[np.ndarray, ...]:
    """Philox-4x32-10 of counters given word by word as arrays of equal shape (any integer
    dtype, values below 2³²), under one key; the four output words as uint64 arrays."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    m0, m1, low = np.uint64(M0), np.uint64(M1), np.uint64(MASK32)
    shift = np.uint64(32)
    for round_number in range(ROUNDS):
        if round_number:
            k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
        p0, p1 = m0 * c0, m1 * c2  # exact: both factors are below 2³²
        c0, c1, c2, c3 = ((p1 >> shift) ^ c1 ^ np.uint64(k0), p1 & low,
                          (p0 >> shift) ^ c3 ^ np.uint64(k1), p0 & low)
    return c0, c1, c2, c3


def threshold(rate: float) -> int:
    """⌊rate·2³²⌋: a word below it drops its entry."""
    return int(rate * 4294967296.0)  # exact: a power-of-two scaling, then the floor


def keep_scale(rate: float, dtype: DTypeLike) -> float:
    """The factor of a kept entry, ``1 / (1 − rate)`` rounded once to ``dtype``."""
    return float(np.asarray(1.0 / (1.0 - rate), dtype=np.dtype(dtype)))


def dropout_mask(rows: int, cols: int, rate: float, seed: int, layer: int, step: int,
                 first: int = 0, dtype: DTypeLike = np.float64) -> np.ndarray:
    """The ``rows × cols`` dropout mask ``Backend.dropout_mask`` draws (see the module
    docstring), as a host array of ``dtype``: the definition every backend must match."""
    n = (first + np.arange(cols, dtype=np.uint64))[None, :] * np.uint64(rows) \
        + np.arange(rows, dtype=np.uint64)[:, None]
    block = n >> np.uint64(2)
    words = philox4x32(block & np.uint64(MASK32), block >> np.uint64(32),
                       np.full_like(block, step & MASK32), np.full_like(block, step >> 32),
                       seed & MASK32, layer & MASK32)
    which = (n & np.uint64(3)).astype(np.int64)
    word = np.choose(which, words)
    kept = word >= np.uint64(threshold(rate))
    return np.where(kept, keep_scale(rate, dtype), 0.0).astype(dtype)


__all__ = ["M0", "M1", "ROUNDS", "W0", "W1", "dropout_mask", "keep_scale", "philox4x32",
           "philox4x32_scalar", "threshold"]
