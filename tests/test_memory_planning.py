"""Device memory: nnfs.plan_memory says what a network needs before it is built, and building
one that does not fit raises nnfs.OutOfDeviceMemory with both numbers, on every backend, before
anything is allocated (issue #8)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnfs
from conftest import resident_bytes
from nnfs import fully_connected

LAYERS = [fully_connected(7, "tanh"), fully_connected(5, "relu"), fully_connected(3, "softmax")]


def held(factory):
    stats = factory.stats()
    return stats.allocations, stats.bytes_in_use


def test_the_plan_is_what_building_and_training_allocate(factory):
    """Parameters, training buffers and one batch of data: byte for byte what the factory
    counts, and the largest allocation is the largest buffer."""
    plan = nnfs.plan_memory(factory, 11, LAYERS, batch=9)
    itemsize = factory.itemsize
    parameters = 7 * 12 + 5 * 8 + 3 * 6
    assert plan.parameters == parameters * itemsize
    assert plan.batch_data == (11 + 3) * 9 * itemsize
    assert plan.total == plan.parameters + plan.training + plan.batch_data
    _, start = held(factory)
    with nnfs.inference_network(factory, 11, LAYERS, seed=0) as network:
        assert held(factory)[1] - start == plan.parameters
        with factory.matrix(11, 9) as x, factory.matrix(3, 9) as y, \
                nnfs.training_network(network, x) as training:
            nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.1)  # an asynchronous backend's backup
            assert held(factory)[1] - start == plan.total
            sizes = [network.parameters.nbytes, x.nbytes, y.nbytes,
                     *(b.nbytes for b in training._owned)]
            assert plan.largest_allocation == max(sizes)
            assert training.memory_bytes() == plan.training
    assert held(factory)[1] == start


def test_the_plan_reports_what_the_device_has(factory):
    limits = factory.memory_limits()
    plan = nnfs.plan_memory(factory, 4, [fully_connected(2, "sigmoid")])
    assert (plan.available is None) == (limits.total_bytes is None)
    assert (plan.max_allocation is None) == (limits.max_allocation_bytes is None)
    if plan.available is None and plan.max_allocation is None:
        assert plan.fits is None and "does not say" in str(plan)
    else:
        assert plan.fits is True and "available" in str(plan)
    assert f"{plan.total} bytes" in str(plan) and "batch 1" in str(plan)


def _too_large(factory) -> int:
    """A layer width whose square of parameters needs about twice the device's memory (or
    1 TiB where the backend does not say, which no host here can give)."""
    available = factory.memory_limits().total_bytes
    target = 2**40 if available is None else 2 * available
    return math.isqrt(target // factory.itemsize) + 1


def _assert_both_numbers(error: nnfs.OutOfDeviceMemory, factory) -> None:
    assert isinstance(error, MemoryError) and isinstance(error, nnfs.NnfsError)
    assert error.requested is not None and f"{error.requested} bytes" in str(error)
    if factory.memory_limits().total_bytes is not None:
        assert error.available is not None and f"{error.available} bytes" in str(error)
        assert error.requested > error.available
    else:  # the device itself refused: the backend cannot say what it has
        assert "refused" in str(error)


def test_a_network_that_does_not_fit_is_refused_then_a_smaller_one_trains(factory):
    width = _too_large(factory)
    layers = [fully_connected(width, "tanh")]
    plan = nnfs.plan_memory(factory, width, layers)
    assert plan.fits in (False, None)
    before = held(factory)
    with pytest.raises(nnfs.OutOfDeviceMemory) as raised:
        nnfs.inference_network(factory, width, layers)
    _assert_both_numbers(raised.value, factory)
    if plan.available is not None:
        assert raised.value.requested == plan.parameters
    assert held(factory)[1] == before[1]
    # the process goes on: a smaller network builds and trains
    with nnfs.inference_network(factory, 3, [fully_connected(2, "sigmoid")], seed=0) as network, \
            factory.matrix(3, 4, np.ones((3, 4))) as x, factory.matrix(2, 4) as y, \
            nnfs.training_network(network, x) as training:
        assert math.isfinite(nnfs.sgd(training, y, nnfs.quadratic_cost, 3, 0.1))


def test_a_training_network_that_does_not_fit_is_refused_before_allocating(factory):
    width = _too_large(factory)  # z and a of width × width: four times what fits
    with nnfs.inference_network(factory, 2, [fully_connected(width, "tanh")]) as network, \
            factory.matrix(2, width) as x:
        before = held(factory)
        with pytest.raises(nnfs.OutOfDeviceMemory) as raised:
            nnfs.training_network(network, x)
        _assert_both_numbers(raised.value, factory)
        if factory.memory_limits().total_bytes is not None:
            assert f"training network for batch {width}" in str(raised.value)
            assert held(factory) == before  # refused by the plan: nothing was allocated
        assert held(factory)[1] == before[1]


def test_fit_checks_all_it_will_allocate_before_allocating_any(factory):
    limits = factory.memory_limits()
    if limits.total_bytes is None:
        pytest.skip(f"{factory.describe()} does not report its memory, so fit cannot check "
                    "ahead; the device refuses instead (see the tests above)")
    # 64 → 256 → 10 needs about 600 numbers per sample of a batch (x, y, z and a of each
    # layer), so a batch of this size asks for about twice what the device has
    features = 64
    batch = limits.total_bytes // (300 * factory.itemsize)
    X = np.lib.stride_tricks.as_strided(np.zeros(1), (batch, features), (0, 0))  # no memory
    y = np.lib.stride_tricks.as_strided(np.zeros(1, np.int64), (batch,), (0,))
    with nnfs.inference_network(factory, features, [fully_connected(256, "relu"),
                                                    fully_connected(10, "softmax")]) as network:
        before = held(factory)
        with pytest.raises(nnfs.OutOfDeviceMemory) as raised:
            nnfs.fit(network, X, y, epochs=1, batch_size=batch, quiet=True)
        assert f"fit: training with batch_size {batch} needs" in str(raised.value)
        _assert_both_numbers(raised.value, factory)
        assert held(factory) == before


def test_one_buffer_larger_than_the_device_allows_in_one_allocation(factory):
    limits = factory.memory_limits()
    largest, total = limits.max_allocation_bytes, limits.total_bytes
    if largest is None or total is None or largest * 3 // 2 >= total:
        pytest.skip(f"{factory.describe()} allows one allocation as large as all it has "
                    f"({largest} of {total} bytes), so no buffer can exceed it and still fit")
    width = math.isqrt(largest * 3 // 2 // factory.itemsize)
    layers = [fully_connected(width, "linear")]
    plan = nnfs.plan_memory(factory, width, layers)
    # the parameters fit the device, but not in one allocation
    assert plan.parameters <= total and plan.largest_allocation > largest and plan.fits is False
    before = held(factory)
    with pytest.raises(nnfs.OutOfDeviceMemory, match="in one allocation") as raised:
        nnfs.inference_network(factory, width, layers)
    assert (raised.value.requested, raised.value.available) == (plan.parameters, largest)
    assert held(factory) == before


def test_cpu_buffers_are_committed_when_allocated(cpu):
    """The CPU checks against MemAvailable, so its buffers must count there from the start:
    memory that calloc only promised would let the next check pass against it."""
    size = 64 * 2**20
    before = resident_bytes()
    with cpu.vector(size // cpu.itemsize):
        grown = resident_bytes() - before
    assert grown >= size * 0.9, f"a {size}-byte buffer made the process {grown} bytes larger"


@pytest.mark.parametrize("arguments, error, words", [
    (("cpu", 0, LAYERS, 1), nnfs.NnfsValueError, ["in_dim", "positive", "got 0"]),
    (("cpu", 3, [], 1), nnfs.NnfsValueError, ["layers is empty"]),
    (("cpu", 3, LAYERS, 0), nnfs.NnfsValueError, ["batch", "positive", "got 0"]),
    (("cpu", 3, LAYERS, 2.5), nnfs.NnfsTypeError, ["batch", "integer", "2.5"]),
    (("not a factory", 3, LAYERS, 1), nnfs.NnfsTypeError, ["factory", "str"]),
])
def test_plan_memory_checks_its_arguments(cpu, arguments, error, words):
    factory, *rest = arguments
    with pytest.raises(error) as raised:
        nnfs.plan_memory(cpu if factory == "cpu" else factory, *rest)
    for word in ["plan_memory", *words]:
        assert word in str(raised.value)
