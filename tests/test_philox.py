"""Philox-4x32-10 (nnfs.philox) against the known answers Random123 publishes, and the way a
dropout mask is drawn from it: keyed by seed and layer, counted by step and element, so that any
part of a batch draws the entries the whole batch would.

numpy's own ``np.random.Philox`` is the 4×64 variant, so the oracle here is the published
known-answer vectors (Random123's ``kat_vectors``), for both implementations of nnfs.philox;
each backend's masks are checked against these by the conformance kit (``dropout_masks``)."""

from __future__ import annotations

import numpy as np
import pytest

from nnfs.philox import dropout_mask, keep_scale, philox4x32, philox4x32_scalar, threshold

#: (counter, key, output) of philox4x32 with 10 rounds, from Random123's tests/kat_vectors.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_the_scalar_form_gives_random123s_known_answers(counter, key, expected):
    assert philox4x32_scalar(counter, key) == expected


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_the_array_form_gives_random123s_known_answers(counter, key, expected):
    words = philox4x32(*(np.array([c, c]) for c in counter), *key)
    assert [int(w[0]) for w in words] == list(expected)
    assert [int(w[1]) for w in words] == list(expected)


def test_the_array_form_agrees_with_the_scalar_form_on_random_counters():
    rng = np.random.default_rng(0)
    counters = rng.integers(0, 2**32, (4, 50), dtype=np.uint64)
    key = (int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32)))
    words = philox4x32(*counters, *key)
    for j in range(50):
        assert tuple(int(w[j]) for w in words) == philox4x32_scalar(
            tuple(int(c[j]) for c in counters), key)


def test_a_mask_entry_is_the_word_of_its_element():
    """Entry (i, j) of a rows × cols mask: element (first + j)·rows + i of the stream."""
    rows, cols, rate, seed, layer, step, first = 3, 5, 0.4, 99, 2, 2**33 + 7, 6
    mask = dropout_mask(rows, cols, rate, seed, layer, step, first)
    scale = keep_scale(rate, np.float64)
    for i in range(rows):
        for j in range(cols):
            n = (first + j) * rows + i
            block = n // 4
            word = philox4x32_scalar((block % 2**32, block >> 32, step % 2**32, step >> 32),
                                     (seed, layer))[n % 4]
            assert mask[i, j] == (0.0 if word < threshold(rate) else scale)


def test_a_split_batch_draws_the_entries_of_the_whole_batch():
    whole = dropout_mask(4, 10, 0.5, 1, 0, 3)
    assert np.array_equal(dropout_mask(4, 3, 0.5, 1, 0, 3, first=0), whole[:, :3])
    assert np.array_equal(dropout_mask(4, 7, 0.5, 1, 0, 3, first=3), whole[:, 3:])


def test_seed_layer_and_step_each_change_the_mask():
    base = dropout_mask(16, 16, 0.5, 1, 0, 0)
    for other in (dropout_mask(16, 16, 0.5, 2, 0, 0), dropout_mask(16, 16, 0.5, 1, 1, 0),
                  dropout_mask(16, 16, 0.5, 1, 0, 1)):
        assert 64 < np.count_nonzero(base != other) < 192  # about half the entries


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_entries_are_dropped_at_the_rate_and_kept_ones_scaled(rate):
    mask = dropout_mask(200, 500, rate, 5, 1, 12)
    dropped = np.mean(mask == 0.0)
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / mask.size)
    assert np.all((mask == 0.0) | (mask == keep_scale(rate, np.float64)))
    assert abs(mask.mean() - 1.0) < 0.02  # the expected output is kept


def test_rate_zero_keeps_everything_at_factor_one():
    assert np.all(dropout_mask(7, 9, 0.0, 3, 0, 1) == 1.0)


def test_the_threshold_and_factor_are_exact():
    assert threshold(0.5) == 2**31 and threshold(0.0) == 0
    assert threshold(np.nextafter(1.0, 0.0)) == 2**32 - 1
    assert keep_scale(0.2, np.float32) == float(np.float32(1 / 0.8))
