"""The CPU backend: no temporaries in the hot path, memory flat over long training."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

pytest.importorskip("nnfs_cpu", reason="nnfs-cpu is not installed here: pip install ./nnfs-cpu")

import nnfs
from conftest import cpu_factory as make_cpu_factory, run_kit_check
from nnfs import fully_connected, sigmoid, tanh
from nnfs.testing import CHECKS
from nnfs_cpu import backend as cpu_backend


def test_an_epoch_makes_no_temporary_arrays(cpu):
    """numpy reports every array it allocates to tracemalloc: epochs must allocate none.

    Every array of this network holds 256 KiB or more, so a temporary of any of them would
    show. What is allowed is numpy's own iterator buffer (8192 elements, 32 KiB in float32),
    which a broadcasting ufunc such as the bias addition uses whatever the arrays' sizes.
    """
    rng = np.random.default_rng(0)
    with cpu.matrix(256, 1024, rng.uniform(-1, 1, (256, 1024))) as x, \
            cpu.matrix(64, 1024, rng.uniform(0, 1, (64, 1024))) as y, \
            nnfs.inference_network(cpu, 256, [fully_connected(128, tanh),
                                              fully_connected(64, "relu"),
                                              fully_connected(64, sigmoid)], seed=0) as network, \
            nnfs.training_network(network, x) as training:
        # the same calls once before measuring: each call prepares its output δ and its cost
        # (small Python objects, replaced by the next call's), which is not an epoch's
        # allocation; they are traced from here, so that the ones replaced count as freed
        tracemalloc.start()
        try:
            nnfs.sgd(training, y, nnfs.quadratic_cost, 2, 0.1)
            nnfs.sgd(training, y, nnfs.cross_entropy_cost, [(1, 0.1), (1, 0.05)])
            start, _ = tracemalloc.get_traced_memory()
            nnfs.sgd(training, y, nnfs.quadratic_cost, 20, 0.1)
            nnfs.sgd(training, y, nnfs.cross_entropy_cost, [(5, 0.1), (5, 0.05)])
            _, peak = tracemalloc.get_traced_memory()
            gc.collect()  # empties Python's free lists: bounded caches, not what epochs keep
            end, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak - start < 64 * 1024, f"epochs allocated up to {peak - start} bytes at once"
    assert end - start < 4 * 1024, f"epochs kept {end - start} bytes"


def test_memory_stays_flat_over_many_epochs(cpu):
    with cpu.matrix(2, 2, [[0.3, 0.3], [0.9, 0.9]]) as x, cpu.matrix(1, 2, [0.5, 0.5]) as y, \
            nnfs.inference_network(cpu, 2, [fully_connected(4, tanh),
                                             fully_connected(1, sigmoid)]) as network, \
            nnfs.training_network(network, x) as training:
        nnfs.sgd(training, y, nnfs.quadratic_cost, 100, 0.05)
        before = cpu.stats()
        tracemalloc.start()
        try:
            start, _ = tracemalloc.get_traced_memory()
            nnfs.sgd(training, y, nnfs.quadratic_cost, 20000, 0.05)
            gc.collect()  # empties Python's free lists: bounded caches, not what epochs keep
            end, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        after = cpu.stats()
    assert after.allocations == before.allocations
    assert end - start < 4 * 1024


def test_column_views_are_used_in_place(cpu):
    """A network trained on a column view reads the view, not a copy."""
    data = (np.arange(30).reshape(3, 10) / 30).astype(np.float32)
    with cpu.matrix(3, 10, data) as big, \
            nnfs.inference_network(cpu, 3, [fully_connected(2, sigmoid)], seed=0) as network:
        view = big.columns(2, 6)
        with nnfs.training_network(network, view) as training, cpu.matrix(2, 4) as y:
            before = cpu.stats().allocations
            nnfs.sgd(training, y, nnfs.quadratic_cost, 3, 0.1)
            assert cpu.stats().allocations == before
        assert np.array_equal(nnfs.transfer(big), data)


def test_threads_give_the_same_numbers_as_one_thread():
    """Large elementwise work is shared among threads, block by block: every entry is computed
    exactly as by one thread, so training ends bit for bit the same."""
    rng = np.random.default_rng(1)
    x_host = rng.uniform(-1, 1, (64, 4096))
    results = []
    for threads in (1, 2, 3):
        factory = nnfs.backend("cpu", threads=threads)
        assert f"{threads} thread" in factory.describe()
        with factory.matrix(64, 4096, x_host) as x, factory.matrix(10, 4096) as y, \
                nnfs.inference_network(factory, 64, [fully_connected(96, tanh),
                                                     fully_connected(80, sigmoid),
                                                     fully_connected(10, "softmax")],
                                       seed=3) as net, \
                nnfs.training_network(net, x) as training:
            factory.fill(y, 0.1)
            nnfs.sgd(training, y, nnfs.quadratic_cost, 3, 0.5)
            results.append(nnfs.transfer(net.parameters))
        factory.release()
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.name)
def test_every_operation_conforms_when_split_among_threads(check, monkeypatch):
    """The conformance kit with every operation, however small, cut into blocks of 4 elements
    and shared among three threads (gemm and gemv with β included: they go through numpy's
    functions and scratch, block by block, instead of one BLAS call)."""
    monkeypatch.setattr(cpu_backend, "THREAD_MIN", 1)
    monkeypatch.setattr(cpu_backend, "BLOCK", 4)
    factory = make_cpu_factory("float64", threads=3, direct_blas=False)
    run_kit_check(check, factory)


def test_bad_thread_counts():
    for threads in (0, -1, 1.5, "2"):
        with pytest.raises(nnfs.NnfsValueError, match="threads must be a positive integer"):
            nnfs.backend("cpu", threads=threads)
