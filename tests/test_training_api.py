"""The training API of issue #2: semantics, schedules, dtypes, release, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnfs
from conftest import diverging, queued as make_queued
from nnfs import fully_connected, sigmoid, tanh


def small_network(factory, seed=0):
    return nnfs.inference_network(factory, 3, [fully_connected(5, tanh),
                                               fully_connected(2, sigmoid)], seed=seed)


@pytest.fixture
def setup(cpu):
    rng = np.random.default_rng(0)
    x = cpu.matrix(3, 6, rng.uniform(-1, 1, (3, 6)))
    y = cpu.matrix(2, 6, rng.uniform(0.2, 0.8, (2, 6)))
    network = small_network(cpu)
    training = nnfs.training_network(network, x)
    yield cpu, x, y, network, training
    for thing in (training, network, x, y):
        thing.release()


def parameters(network):
    return nnfs.transfer(network.parameters).copy()


# --- semantics ----------------------------------------------------------------------------------

def test_schedule_returns_one_cost_per_pair_and_equals_sequential_calls(cpu):
    rng = np.random.default_rng(1)
    x_host, y_host = rng.uniform(-1, 1, (3, 6)), rng.uniform(0.2, 0.8, (2, 6))
    results = []
    for use_schedule in (True, False):
        with cpu.matrix(3, 6, x_host) as x, cpu.matrix(2, 6, y_host) as y, \
                small_network(cpu, seed=4) as network, \
                nnfs.training_network(network, x) as training:
            if use_schedule:
                costs = nnfs.sgd(training, y, nnfs.quadratic_cost, [(5, 0.5), (3, 0.1), (7, 0.3)])
            else:
                costs = [nnfs.sgd(training, y, nnfs.quadratic_cost, n, eta)
                         for n, eta in [(5, 0.5), (3, 0.1), (7, 0.3)]]
            results.append((costs, parameters(network)))
    (schedule_costs, schedule_parameters), (costs, sequential_parameters) = results
    assert isinstance(schedule_costs, list) and len(schedule_costs) == 3
    assert all(isinstance(c, float) for c in schedule_costs)
    assert schedule_costs == costs
    assert np.array_equal(schedule_parameters, sequential_parameters)


def test_sgd_returns_a_float(setup):
    _, _, y, _, training = setup
    cost = nnfs.sgd(training, y, nnfs.quadratic_cost, 2, 0.1)
    assert isinstance(cost, float) and math.isfinite(cost)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_both_dtypes_train_and_transfer_in_their_dtype(dtype):
    factory = nnfs.backend("cpu", dtype)
    with factory.matrix(3, 4, np.ones((3, 4))) as x, factory.matrix(2, 4) as y, \
            small_network(factory) as network, nnfs.training_network(network, x) as training:
        first = nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.5)
        last = nnfs.sgd(training, y, nnfs.quadratic_cost, 50, 0.5)
        assert last < first
        out = network(x)
        assert nnfs.transfer(out).dtype == np.dtype(dtype)
        assert nnfs.transfer(network.layers[0].weights).dtype == np.dtype(dtype)
        out.release()


def test_float32_and_float64_agree(cpu, cpu64):
    rng = np.random.default_rng(2)
    x_host, y_host = rng.uniform(-1, 1, (3, 6)), rng.uniform(0.2, 0.8, (2, 6))
    costs = []
    for factory in (cpu, cpu64):
        with factory.matrix(3, 6, x_host) as x, factory.matrix(2, 6, y_host) as y, \
                small_network(factory, seed=9) as network, \
                nnfs.training_network(network, x) as training:
            costs.append(nnfs.sgd(training, y, nnfs.quadratic_cost, 30, 0.5))
    assert costs[0] == pytest.approx(costs[1], rel=1e-4)


def test_inference_returns_new_matrix_or_writes_into_out(setup):
    factory, x, _, network, _ = setup
    first = network(x)
    assert first.shape == (2, 6)
    with factory.matrix(2, 6) as out:
        assert network(x, out) is out
        assert np.array_equal(nnfs.transfer(out), nnfs.transfer(first))
    first.release()


def test_update_rule_is_eta_over_columns(cpu64):
    """W ← W − (η/n)·Σ over samples: the same step as η·gradient of the mean loss."""
    rng = np.random.default_rng(3)
    with cpu64.matrix(3, 5, rng.uniform(-1, 1, (3, 5))) as x, \
            cpu64.matrix(2, 5, rng.uniform(0.2, 0.8, (2, 5))) as y, \
            small_network(cpu64, seed=1) as network, \
            nnfs.training_network(network, x) as training:
        before = parameters(network)
        training.forward()
        gradient = nnfs.transfer(training.backward(y, nnfs.quadratic_cost, 1 / 5)).copy()
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.3)
        np.testing.assert_allclose(parameters(network), before - 0.3 * gradient, rtol=1e-12)


def test_bias_is_added(cpu64):
    with small_network(cpu64) as network, cpu64.matrix(3, 1) as x:
        nnfs.transfer(np.zeros((5, 3)), network.layers[0].weights)
        nnfs.transfer([0.5] * 5, network.layers[0].bias)
        nnfs.transfer(np.ones((2, 5)), network.layers[1].weights)
        nnfs.transfer([0.0, -1.0], network.layers[1].bias)
        out = nnfs.transfer(network(x))
    hidden = np.tanh(0.5)
    expected = 1 / (1 + np.exp(-(5 * hidden + np.array([0.0, -1.0]))))
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-12)


def test_weights_are_random_and_seeded(cpu):
    a, b, c = small_network(cpu, seed=1), small_network(cpu, seed=1), small_network(cpu, seed=2)
    assert np.array_equal(parameters(a), parameters(b))
    assert not np.array_equal(parameters(a), parameters(c))
    assert np.all(nnfs.transfer(a.layers[0].bias) == 0)
    limit = math.sqrt(6 / (3 + 5))  # Glorot uniform for a 3→5 tanh layer
    weights = nnfs.transfer(a.layers[0].weights)
    assert np.all(np.abs(weights) <= limit) and weights.std() > limit / 4


# --- release and with ---------------------------------------------------------------------------

def test_release_is_idempotent_and_everything_refuses_use_after_it(setup):
    _factory, x, y, network, training = setup
    training.release()
    training.release()
    assert training.released and not network.released
    with pytest.raises(nnfs.ReleasedError, match="training"):
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.1)
    network.release()
    with pytest.raises(nnfs.ReleasedError):
        network(x)
    with pytest.raises(nnfs.ReleasedError):
        nnfs.transfer(network.layers[0].weights)


def test_training_refuses_when_its_inference_network_was_released(setup):
    _, _, y, network, training = setup
    network.release()
    assert training.released
    with pytest.raises(nnfs.ReleasedError):
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.1)


def test_with_releases_and_gives_back_the_bytes(cpu):
    before = cpu.stats().bytes_in_use
    with cpu.matrix(30, 40) as x, small_network(cpu) as network:
        network = nnfs.inference_network(cpu, 30, [fully_connected(20, tanh)])
        with nnfs.training_network(network, x) as training:
            assert cpu.stats().bytes_in_use > before
        assert training.released
        network.release()
    assert cpu.stats().bytes_in_use == before


def test_a_released_input_is_refused_before_training(setup):
    _, x, y, network, training = setup
    before = parameters(network)
    x.release()
    with pytest.raises(nnfs.ReleasedError, match="input"):
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.1)
    assert np.array_equal(parameters(network), before)


def test_factory_release_releases_its_matrices():
    factory = nnfs.backend("cpu", "float64")
    m = factory.matrix(2, 2)
    factory.release()
    assert m.released and factory.released
    with pytest.raises(nnfs.ReleasedError):
        factory.matrix(1, 1)
    assert nnfs.backend("cpu", "float64") is not factory  # a new one after release


# --- bad input: a clear error before any work ---------------------------------------------------

def test_x_rows_must_match_in_dim(cpu):
    with small_network(cpu) as network, cpu.matrix(4, 6) as x:
        with pytest.raises(nnfs.ShapeError, match=r"3 rows.*got 4×6"):
            nnfs.training_network(network, x)
        with pytest.raises(nnfs.ShapeError, match="inference: x"):
            network(x)


@pytest.mark.parametrize("shape", [(2, 5), (3, 6), (1, 6)])
def test_y_shape_must_match_output(setup, shape):
    factory, _, _, network, training = setup
    before = parameters(network)
    with factory.matrix(*shape) as y, pytest.raises(nnfs.ShapeError, match=r"sgd: y must be 2×6"):
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.1)
    assert np.array_equal(parameters(network), before)


@pytest.mark.parametrize("epochs", [0, -3])
def test_epochs_must_be_positive(setup, epochs):
    _, _, y, network, training = setup
    before = parameters(network)
    with pytest.raises(nnfs.NnfsValueError, match=f"epochs must be positive, got {epochs}"):
        nnfs.sgd(training, y, nnfs.quadratic_cost, epochs, 0.1)
    assert np.array_equal(parameters(network), before)


@pytest.mark.parametrize("epochs", [2.0, "3", None])
def test_epochs_must_be_an_integer(setup, epochs):
    _, _, y, _, training = setup
    with pytest.raises(nnfs.NnfsTypeError, match="epochs"):
        nnfs.sgd(training, y, nnfs.quadratic_cost, epochs, 0.1)


@pytest.mark.parametrize("eta", [math.nan, math.inf, -math.inf])
def test_eta_must_be_finite(setup, eta):
    _, _, y, network, training = setup
    before = parameters(network)
    with pytest.raises(nnfs.NnfsValueError, match="eta must be finite"):
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, eta)
    assert np.array_equal(parameters(network), before)


def test_eta_must_be_positive(setup):
    _, _, y, _, training = setup
    with pytest.raises(nnfs.NnfsValueError, match=r"learning rate.*positive"):
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.0)


def test_a_bad_pair_anywhere_in_a_schedule_stops_everything_before_work(setup):
    _, _, y, network, training = setup
    before = parameters(network)
    with pytest.raises(nnfs.NnfsValueError, match=r"schedule\[2\] eta"):
        nnfs.sgd(training, y, nnfs.quadratic_cost, [(1, 0.1), (2, 0.1), (3, math.nan)])
    with pytest.raises(nnfs.NnfsValueError, match="schedule is empty"):
        nnfs.sgd(training, y, nnfs.quadratic_cost, [])
    with pytest.raises(nnfs.NnfsTypeError, match=r"schedule\[0\] must be an \(epochs, eta\) pair"):
        nnfs.sgd(training, y, nnfs.quadratic_cost, [(1, 0.1, 3)])
    assert np.array_equal(parameters(network), before)


def test_a_backend_without_a_training_operation_is_refused_when_the_network_is_built():
    import dataclasses

    from nnfs_cpu import CpuBackend

    backend = CpuBackend()  # declares that it cannot compute the cost
    backend.capabilities = dataclasses.replace(backend.capabilities,
                                               unsupported=frozenset({"cost_sum"}))
    with nnfs.Factory(backend) as factory:
        x = factory.matrix(2, 3)
        inference = nnfs.inference_network(factory, 2, [fully_connected(1, sigmoid)])
        before = factory.stats().allocations
        with pytest.raises(nnfs.UnsupportedOperation, match=r"does not provide cost_sum, which "
                                                           r"training needs"):
            nnfs.training_network(inference, x)
        assert factory.stats().allocations == before


def test_wrong_data_size_for_matrix_and_transfer(cpu):
    with pytest.raises(nnfs.ShapeError, match=r"must have shape 2×3 or a flat sequence of 6"):
        cpu.matrix(2, 3, [[1, 2], [3, 4]])
    with cpu.matrix(2, 3) as m:
        with pytest.raises(nnfs.ShapeError, match="transfer: source"):
            nnfs.transfer(np.ones((3, 2)), m)
        assert np.array_equal(nnfs.transfer(m), np.zeros((2, 3)))  # unchanged
    with cpu.vector(3) as v, pytest.raises(nnfs.ShapeError, match="must have shape 3"):
        nnfs.transfer([1, 2], v)


@pytest.mark.parametrize("dtype", ["float16", "int32", "double-ish"])
def test_unknown_dtype(dtype):
    with pytest.raises(nnfs.NnfsValueError, match="dtype must be one of float32, float64"):
        nnfs.backend("cpu", dtype)


def test_matrices_of_another_dtype_are_refused(cpu, cpu64):
    with cpu64.matrix(3, 6) as x64, small_network(cpu) as network, \
            pytest.raises(nnfs.DTypeMismatch, match=r"float64.*float32"):
        nnfs.training_network(network, x64)


def test_bad_layers_and_activations(cpu):
    with pytest.raises(nnfs.NnfsValueError, match="layers is empty"):
        nnfs.inference_network(cpu, 3, [])
    with pytest.raises(nnfs.NnfsValueError, match="unknown activation 'swish'"):
        fully_connected(4, "swish")
    with pytest.raises(nnfs.NnfsTypeError, match=r"layers\[1\] must be made by fully_connected"):
        nnfs.inference_network(cpu, 3, [fully_connected(4, tanh), (4, tanh)])
    with pytest.raises(nnfs.NnfsValueError, match="units must be positive"):
        fully_connected(0, tanh)
    with pytest.raises(nnfs.NnfsValueError, match="in_dim must be positive"):
        nnfs.inference_network(cpu, 0, [fully_connected(4, tanh)])
    assert fully_connected(4, "TANH").activation is tanh


def test_cost_must_be_a_cost(setup):
    _, _, y, _, training = setup
    with pytest.raises(nnfs.NnfsTypeError, match="cost must be a cost"):
        nnfs.sgd(training, y, lambda a, b: 0.0, 1, 0.1)


def test_transfer_needs_a_device_object(cpu):
    with pytest.raises(nnfs.NnfsTypeError, match="transfer: with one argument"):
        nnfs.transfer(np.ones(3))
    with pytest.raises(nnfs.NnfsTypeError, match="destination must be an nnfs Matrix"):
        nnfs.transfer([1, 2], [0, 0])


def test_errors_are_also_builtin_exceptions():
    assert issubclass(nnfs.ShapeError, ValueError)
    assert issubclass(nnfs.NnfsTypeError, TypeError)
    assert issubclass(nnfs.ReleasedError, ValueError)
    assert issubclass(nnfs.BackendNotFound, LookupError)
    assert issubclass(nnfs.OutOfDeviceMemory, MemoryError)
    for error in (nnfs.ShapeError, nnfs.BackendNotFound, nnfs.BackendUnavailable,
                  nnfs.OutOfDeviceMemory, nnfs.TrainingDiverged):
        assert issubclass(error, nnfs.NnfsError)


def test_reprs_say_shape_dtype_and_backend(setup):
    _factory, x, _, network, training = setup
    assert repr(x) == "Matrix(3×6, float32, cpu)"
    assert repr(x.columns(1, 3)) == "Matrix(3×2, float32, cpu, view)"
    assert "InferenceNetwork(3, [fully_connected(5, nnfs.tanh)" in repr(network)
    assert "batch 6" in repr(training) and "cpu float32" in repr(training)
    assert repr(nnfs.tanh) == "nnfs.tanh" and repr(nnfs.quadratic_cost) == "nnfs.quadratic_cost"


# --- divergence ---------------------------------------------------------------------------------

def replay_until_divergence(factory, eta):
    """(epoch that diverges, the parameters of the epoch before it, the last whose cost was
    finite), found one epoch at a time."""
    _x, y, network, training = diverging(factory)
    epoch, before = 0, None
    while True:
        epoch += 1
        previous, before = before, nnfs.transfer(network.parameters).copy()
        try:
            nnfs.sgd(training, y, nnfs.quadratic_cost, 1, eta)
        except nnfs.TrainingDiverged:
            return epoch, previous


def test_sgd_stops_at_the_first_non_finite_cost_with_the_weights_of_the_epoch_before(cpu64):
    expected_epoch, expected_weights = replay_until_divergence(cpu64, 1.0)
    assert expected_epoch > 3  # it trains a few epochs before it overflows
    _x, y, network, training = diverging(cpu64)
    with pytest.raises(nnfs.TrainingDiverged) as raised:
        nnfs.sgd(training, y, nnfs.quadratic_cost, [(500, 1.0), (5, 0.1)])
    error = raised.value
    assert (error.epoch, error.eta) == (expected_epoch, 1.0)
    assert f"epoch {error.epoch} of 500 at eta=1.0" in str(error)
    weights = nnfs.transfer(network.parameters)
    assert np.all(np.isfinite(weights))
    np.testing.assert_array_equal(weights, expected_weights)


def test_an_asynchronous_backend_rolls_back_and_replays_to_the_same_epoch(cpu64):
    """sgd on a backend that queues work reads the cost only at the end, then replays."""
    from nnfs_cpu import CpuBackend

    queued = make_queued(CpuBackend, "float64")
    expected_epoch, expected_weights = replay_until_divergence(cpu64, 1.0)
    _x, y, network, training = diverging(queued)
    syncs = queued.stats().synchronizations
    with pytest.raises(nnfs.TrainingDiverged) as raised:
        nnfs.sgd(training, y, nnfs.quadratic_cost, 500, 1.0)
    assert raised.value.epoch == expected_epoch
    np.testing.assert_array_equal(nnfs.transfer(network.parameters), expected_weights)
    assert queued.stats().synchronizations == syncs
    # and when nothing diverges, the queued path returns the last forward pass's cost
    _x, y, network, training = diverging(queued)
    _x2, y2, _network2, training2 = diverging(cpu64)
    assert nnfs.sgd(training, y, nnfs.quadratic_cost, 3, 1e-4) == \
        nnfs.sgd(training2, y2, nnfs.quadratic_cost, 3, 1e-4)


def test_building_a_training_network_reads_the_devices_memory_once_and_prepares_lazily(cpu):
    """A training network checks all its buffers against the device's memory in one read, and
    prepares a step's backward pass only when that step is asked for, once per variant."""
    reads = []
    backend = cpu.backend
    real = backend.memory_limits
    with cpu.matrix(64, 512) as x, \
            nnfs.inference_network(cpu, 64, [fully_connected(256, tanh),
                                             fully_connected(64, "relu"),
                                             fully_connected(10, sigmoid)]) as network:
        backend.memory_limits = lambda: (reads.append(1), real())[1]
        try:
            training = nnfs.training_network(network, x)
        finally:
            del backend.memory_limits
        assert len(reads) == 1
        assert training._steps == {}, "no step is prepared before one is asked for"
        with cpu.matrix(10, 512) as y:
            first = training.step(y, nnfs.quadratic_cost, -0.1 / 512)
            assert training.step(y, nnfs.quadratic_cost, -0.1 / 512) is first
            assert len(training._steps) == 1, "only the variant in use is built"
            separate = training.step(y, nnfs.quadratic_cost, -0.1 / 512, separate_update=True)
            assert separate.update and not first.update and first.fused
        training.release()
