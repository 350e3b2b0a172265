"""Property tests (issue #8): hypothesis draws architectures, batches, values and schedules;
every backend must agree with the numpy reference (nnfs.testing.reference, in float64) and
with the CPU backend of its dtype, and must refuse every array that holds a NaN or infinity.

Examples are derandomized, so that CI sees the same ones on every run; hypothesis still
explores (and shrinks a failure to its smallest example) within them.

Values in the data come from hypothesis; the weights come from the network's seed, which
hypothesis draws: a relu's derivative jumps at 0, and drawn weights that cancel a drawn input
exactly would put a float32 and a float64 computation on either side of the jump.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import nnfs
from nnfs import fully_connected
from nnfs.testing import reference
from nnfs.testing.checks import host_parameters, rounded

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

HIDDEN = ["linear", "sigmoid", "tanh", "relu"]


@st.composite
def architectures(draw):
    """(in_dim, [(units, activation)...], cost): hidden layers of any activation, an output
    layer that suits the cost."""
    in_dim = draw(st.integers(1, 6))
    hidden = draw(st.lists(st.tuples(st.integers(1, 6), st.sampled_from(HIDDEN)), max_size=2))
    cost = draw(st.sampled_from(["quadratic", "cross_entropy"]))
    if cost == "quadratic":
        output = draw(st.sampled_from([*HIDDEN, "softmax"]))
    else:
        output = draw(st.sampled_from(["sigmoid", "softmax"]))
    units = draw(st.integers(2 if output == "softmax" else 1, 5))
    return in_dim, [*hidden, (units, output)], cost


def values(rows: int, cols: int, low: float = -2.0, high: float = 2.0):
    """Numbers in [low, high] that are 0 or at least 0.001 away from it: one such as 1e-45
    is 0 in float32 (or a subnormal that the BLAS flushes to 0) but not in float64, and sits
    on the jump of relu's derivative."""
    small = 1e-3
    elements = st.one_of(st.just(0.0), st.floats(max(low, small), high),
                         st.floats(low, min(high, -small))) if low < 0 else \
        st.one_of(st.just(0.0), st.floats(max(low, small), high))
    return arrays(np.float64, (rows, cols), elements=elements)


@st.composite
def problems(draw):
    """An architecture, a batch of inputs and of targets that suit its cost, and a seed."""
    in_dim, layers, cost = draw(architectures())
    batch = draw(st.integers(1, 7))
    x = draw(values(in_dim, batch))
    units, output = layers[-1]
    if output == "softmax":  # columns of y that sum to 1
        y = np.eye(units)[:, draw(st.lists(st.integers(0, units - 1), min_size=batch,
                                           max_size=batch))]
    elif output == "sigmoid":
        y = draw(values(units, batch, 0.0, 1.0))
    else:
        y = draw(values(units, batch))
    return in_dim, layers, cost, x, y, draw(st.integers(0, 2**31))


schedules = st.lists(st.tuples(st.integers(1, 3), st.floats(0.01, 1.0)), min_size=1,
                     max_size=3)


def build(factory, in_dim, layers, seed):
    return nnfs.inference_network(factory, in_dim, [fully_connected(units, kind)
                                                    for units, kind in layers], seed=seed)


def tolerance(factory, epochs: int = 1) -> float:
    """Per unit of magnitude: a few float32 roundings per operation, growing with the epochs
    through which a difference can carry; float64 far tighter."""
    return (3e-4 if factory.dtype == "float32" else 1e-10) * (1 + epochs)


def assert_close(actual, expected, factory, epochs: int, what: str) -> None:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    allowed = tolerance(factory, epochs) * (np.abs(expected) + 1.0)
    error = np.abs(actual - expected)
    assert np.all(error <= allowed), (
        f"{what} on {factory.describe()}: largest error {error.max():.3g} where "
        f"{allowed.ravel()[np.argmax(error)]:.3g} is allowed\nactual   {actual.ravel()}\n"
        f"expected {expected.ravel()}")


def well_conditioned(weights, biases, costs) -> bool:
    """Training that stays in a range where float32 and float64 can agree: divergence has its
    own tests (test_bad_input.py), and a run on its way there amplifies every rounding."""
    return (all(math.isfinite(c) for c in costs)
            and all(np.abs(p).max() < 1e3 for p in [*weights, *biases]))


def cpu_of(factory) -> nnfs.Factory | None:
    """The CPU backend in ``factory``'s dtype, or None when ``factory`` is the CPU backend."""
    return None if factory.name == "cpu" else nnfs.backend("cpu", factory.dtype)


@SETTINGS
@given(problem=problems())
def test_inference_agrees_with_numpy_and_the_cpu(factory, problem):
    in_dim, layers, _, x, _, seed = problem
    kinds = [kind for _, kind in layers]
    with build(factory, in_dim, layers, seed) as network, \
            factory.matrix(in_dim, x.shape[1], x) as device_x:
        weights, biases = host_parameters(network)
        expected = rounded(factory, x)
        for w, b, kind in zip(weights, biases, kinds, strict=True):
            expected = reference.activation(kind, w @ expected, b)
        with network(device_x) as out:
            got = nnfs.transfer(out)
        assert_close(got, expected, factory, 1, "inference")
        cpu = cpu_of(factory)
        if cpu is not None:
            with build(cpu, in_dim, layers, seed) as twin, cpu.matrix(*x.shape, x) as cpu_x, \
                    twin(cpu_x) as cpu_out:
                assert_close(got, nnfs.transfer(cpu_out), factory, 1, "inference against cpu")


@SETTINGS
@given(problem=problems(), schedule=schedules)
def test_sgd_through_a_schedule_agrees_with_numpy_and_the_cpu(factory, problem, schedule):
    in_dim, layers, cost, x, y, seed = problem
    kinds = [kind for _, kind in layers]
    epochs = sum(n for n, _ in schedule)
    eps = float(np.finfo(factory.numpy_dtype).eps)
    with build(factory, in_dim, layers, seed) as network, \
            factory.matrix(*x.shape, x) as device_x, factory.matrix(*y.shape, y) as device_y, \
            nnfs.training_network(network, device_x) as training:
        weights, biases = host_parameters(network)
        expected_costs = []
        with np.errstate(all="ignore"):
            for n, eta in schedule:
                weights, biases, value = reference.train(
                    weights, biases, kinds, rounded(factory, x), rounded(factory, y), n, eta,
                    cost, eps)
                expected_costs.append(value)
        assume(well_conditioned(weights, biases, expected_costs))
        costs = nnfs.sgd(training, device_y, cost, schedule)
        got_weights, got_biases = host_parameters(network)
        assert np.array_equal(nnfs.transfer(device_x), rounded(factory, x).astype(
            factory.numpy_dtype)), "training wrote into its input"
    assert_close(costs, expected_costs, factory, epochs, "costs")
    for got, expected in zip(got_weights + got_biases, weights + biases, strict=True):
        assert_close(got, expected, factory, epochs, "parameters")
    cpu = cpu_of(factory)
    if cpu is not None:
        with build(cpu, in_dim, layers, seed) as twin, cpu.matrix(*x.shape, x) as cpu_x, \
                cpu.matrix(*y.shape, y) as cpu_y, nnfs.training_network(twin, cpu_x) as cpu_t:
            cpu_costs = nnfs.sgd(cpu_t, cpu_y, cost, schedule)
            assert_close(costs, cpu_costs, factory, epochs, "costs against cpu")
            cpu_weights, cpu_biases = host_parameters(twin)
            for got, expected in zip(got_weights + got_biases, cpu_weights + cpu_biases,
                                     strict=True):
                assert_close(got, expected, factory, epochs, "parameters against cpu")


@SETTINGS
@given(problem=problems(), batch_size=st.integers(1, 7), epochs=st.integers(1, 3),
       eta=st.floats(0.01, 0.5))
def test_fit_mini_batches_agree_with_numpy(factory, problem, batch_size, epochs, eta):
    in_dim, layers, cost, x, y, seed = problem
    kinds = [kind for _, kind in layers]
    samples = x.shape[1]
    batch_size = min(batch_size, samples)
    eps = float(np.finfo(factory.numpy_dtype).eps)
    xs, ys = rounded(factory, x), rounded(factory, y)
    with build(factory, in_dim, layers, seed) as network:
        weights, biases = host_parameters(network)
        expected_costs = []
        with np.errstate(all="ignore"):
            for _ in range(epochs):
                total = 0.0
                for start in range(0, samples, batch_size):
                    stop = min(start + batch_size, samples)
                    weights, biases, value = reference.train(
                        weights, biases, kinds, xs[:, start:stop], ys[:, start:stop], 1, eta,
                        cost, eps)
                    total += value * (stop - start)
                expected_costs.append(total / samples)
        assume(well_conditioned(weights, biases, expected_costs))
        history = nnfs.fit(network, x.T, y.T, epochs=epochs, batch_size=batch_size, eta=eta,
                           cost=cost, shuffle=False, quiet=True)
        got_weights, got_biases = host_parameters(network)
    steps = epochs * math.ceil(samples / batch_size)
    assert_close(history.cost, expected_costs, factory, steps, "fit's costs")
    for got, expected in zip(got_weights + got_biases, weights + biases, strict=True):
        assert_close(got, expected, factory, steps, "fit's parameters")


@SETTINGS
@given(data=arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 5)),
                   elements=st.floats(-1e30, 1e30, allow_nan=False)))
def test_any_finite_array_goes_to_the_device_and_back(factory, data):
    with factory.matrix(*data.shape, data) as matrix:
        np.testing.assert_array_equal(nnfs.transfer(matrix), data.astype(factory.numpy_dtype))


@SETTINGS
@given(data=arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 5)),
                   elements=st.floats(-10, 10)),
       bad=st.sampled_from([math.nan, math.inf, -math.inf]), where=st.data())
def test_any_array_with_a_nan_or_an_infinity_is_refused_naming_where(factory, data, bad,
                                                                     where):
    row = where.draw(st.integers(0, data.shape[0] - 1))
    col = where.draw(st.integers(0, data.shape[1] - 1))
    data[row, col] = bad
    first = tuple(int(i) for i in np.argwhere(~np.isfinite(data))[0])
    before = factory.stats()
    with pytest.raises(nnfs.NnfsValueError, match=rf"matrix: data holds (nan|inf) at index "
                                                  rf"\({first[0]}, {first[1]}\)"):
        factory.matrix(*data.shape, data)
    assert factory.stats() == before
    refused = rf"predict: X holds (nan|inf) in row {first[0]}, column {first[1]}"
    with build(factory, data.shape[1], [(2, "sigmoid")], 0) as network, \
            pytest.raises(nnfs.NnfsValueError, match=refused):
        nnfs.predict(network, data)
