"""fit and predict: mini-batches over host data (issue #6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnfs
from nnfs import fully_connected
from nnfs.testing import reference


def make_data(n=50, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    return X, np.minimum(y, classes - 1)


def network(factory, sizes=(4, 6, 3), kinds=("tanh", "softmax"), seed=0):
    layers = [fully_connected(n, k) for n, k in zip(sizes[1:], kinds, strict=True)]
    return nnfs.inference_network(factory, sizes[0], layers, seed=seed)


def host_parameters(net):
    return ([nnfs.transfer(layer.weights).astype(np.float64) for layer in net.layers],
            [nnfs.transfer(layer.bias).astype(np.float64) for layer in net.layers])


def test_mini_batches_match_numpy_including_the_short_last_batch(factory):
    """10 samples in batches of 4: 4, 4, then 2, in order; the same as numpy step by step."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (10, 4))
    Y = np.eye(3)[rng.integers(0, 3, 10)]
    with network(factory, kinds=("sigmoid", "softmax")) as net:
        weights, biases = host_parameters(net)
        history = nnfs.fit(net, X, Y, epochs=2, batch_size=4, eta=0.3, shuffle=False, quiet=True)
        costs = []
        for _ in range(2):
            epoch_cost = 0.0
            for start in (0, 4, 8):
                xb, yb = X[start:start + 4].T, Y[start:start + 4].T
                weights, biases, value = reference.train(weights, biases, ["sigmoid", "softmax"],
                                                         xb, yb, 1, 0.3, "cross_entropy")
                epoch_cost += value * xb.shape[1]
            costs.append(epoch_cost / 10)
        got_weights, got_biases = host_parameters(net)
    tolerance = 1e-4 if factory.dtype == "float32" else 1e-10
    for got, expected in zip(got_weights + got_biases, weights + biases, strict=True):
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(history.cost, costs, rtol=tolerance)


def test_fit_learns_and_reports_history(cpu):
    X, y = make_data(200)
    Xv, yv = make_data(100, seed=1)
    with network(cpu) as net:
        history = nnfs.fit(net, X, y, epochs=30, batch_size=16, eta=0.5, seed=0,
                           validation=(Xv, yv), quiet=True)
    assert history.epochs == 30 and len(history.validation_accuracy) == 30
    assert history.cost[-1] < history.cost[0] / 3
    assert history.validation_accuracy[-1] > 0.85
    assert history.eta == [0.5] * 30 and history.seconds > 0
    assert set(history.as_dict()) == {"cost", "validation_cost", "validation_accuracy", "eta",
                                      "seconds", "ranks", "allreduce_seconds", "best_epoch",
                                      "stopped_epoch"}
    assert history.ranks == 1 and history.allreduce_seconds == 0.0


def test_schedule_as_eta(cpu):
    X, y = make_data()
    with network(cpu) as net:
        history = nnfs.fit(net, X, y, eta=[(3, 0.5), (2, 0.1)], batch_size=10, quiet=True)
    assert history.eta == [0.5, 0.5, 0.5, 0.1, 0.1]
    with network(cpu) as net, \
            pytest.raises(nnfs.NnfsValueError, match="epochs is 4 but the schedule"):
        nnfs.fit(net, X, y, epochs=4, eta=[(3, 0.5), (2, 0.1)], quiet=True)


def test_seeded_shuffling_is_reproducible(cpu):
    X, y = make_data()
    runs = []
    for seed in (7, 7, 8):
        with network(cpu, seed=1) as net:
            nnfs.fit(net, X, y, epochs=3, batch_size=8, eta=0.5, seed=seed, quiet=True)
            runs.append(nnfs.transfer(net.parameters).copy())
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_no_allocation_per_batch_or_epoch(cpu):
    """fit allocates its buffers once: the count does not grow with batches or epochs."""
    X, y = make_data(103)
    counts = []
    with network(cpu) as net:
        for epochs, batch in [(1, 10), (6, 10), (6, 7)]:
            before = cpu.stats().allocations
            nnfs.fit(net, X, y, epochs=epochs, batch_size=batch, eta=0.1, quiet=True,
                     validation=(X[:30], y[:30]))
            counts.append(cpu.stats().allocations - before)
    assert counts[0] == counts[1] == counts[2], counts
    assert cpu.stats().bytes_in_use == cpu.stats().bytes_in_use  # and all of it given back:
    with network(cpu) as net:
        before = cpu.stats().bytes_in_use
        nnfs.fit(net, X, y, epochs=2, batch_size=10, eta=0.1, quiet=True)
        assert cpu.stats().bytes_in_use == before


def test_targets_as_labels_one_hot_or_single_output(cpu):
    X, y = make_data()
    with network(cpu) as net:
        by_label = nnfs.fit(net, X, y, epochs=2, batch_size=10, shuffle=False, quiet=True)
    with network(cpu) as net:
        by_rows = nnfs.fit(net, X, np.eye(3)[y], epochs=2, batch_size=10, shuffle=False, quiet=True)
    assert by_label.cost == pytest.approx(by_rows.cost, rel=1e-6)
    with network(cpu, (4, 5, 1), ("tanh", "sigmoid")) as net:
        history = nnfs.fit(net, X, (y > 0).astype(float), epochs=5, batch_size=10, quiet=True,
                           validation=(X, (y > 0)))
        assert 0.0 <= history.validation_accuracy[-1] <= 1.0


def test_predict_matches_inference_and_handles_any_batch(cpu):
    X, _ = make_data(37)
    with network(cpu) as net, cpu.matrix(4, 37, X.T) as x:
        expected = nnfs.transfer(net(x)).T
        for batch in (1, 5, 37, 100):
            got = nnfs.predict(net, X, batch_size=batch)
            assert got.shape == (37, 3)
            np.testing.assert_allclose(got, expected, rtol=1e-6)
        assert np.allclose(nnfs.predict(net, X).sum(axis=1), 1.0, atol=1e-5)  # softmax rows


def test_divergence_stops_with_the_last_finite_weights(cpu):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 4)) * 50
    Y = rng.normal(size=(40, 2)) * 50
    with network(cpu, (4, 8, 2), ("relu", "linear")) as net:
        with pytest.raises(nnfs.TrainingDiverged) as raised:
            nnfs.fit(net, X, Y, epochs=50, batch_size=8, eta=1e3, quiet=True)
        assert raised.value.eta == 1e3 and raised.value.epoch >= 1
        assert f"epoch {raised.value.epoch}" in str(raised.value)
        assert np.all(np.isfinite(nnfs.transfer(net.parameters)))


def test_progress_bar_stays_out_of_logs(cpu, capsys):
    X, y = make_data()
    with network(cpu) as net:
        nnfs.fit(net, X, y, epochs=3, batch_size=10, quiet=False)
    captured = capsys.readouterr()
    assert captured.out == "" and "\r" not in captured.err


# --- bad input ----------------------------------------------------------------------------------

@pytest.fixture
def net(cpu):
    with network(cpu) as built:
        yield built


def unchanged(net):
    return nnfs.transfer(net.parameters).copy()


@pytest.mark.parametrize("kwargs, error, text", [
    ({"batch_size": 0}, nnfs.NnfsValueError, "batch_size must be positive"),
    ({"batch_size": 51}, nnfs.NnfsValueError, "batch_size is 51 but X has only 50 samples"),
    ({"batch_size": 2.5}, nnfs.NnfsTypeError, "batch_size must be an integer"),
    ({"epochs": 0}, nnfs.NnfsValueError, "epochs must be positive"),
    ({"epochs": None}, nnfs.NnfsTypeError, "give epochs"),
    ({"eta": math.nan}, nnfs.NnfsValueError, "eta must be finite"),
    ({"cost": "hinge"}, nnfs.NnfsValueError, "unknown cost 'hinge'"),
    ({"validation": ([[1, 2, 3, 4]], [0, 1])}, nnfs.ShapeError, "validation X has 1 samples"),
    ({"seed": "x"}, nnfs.NnfsTypeError, "seed must be an int"),
])
def test_bad_arguments(net, kwargs, error, text):
    X, y = make_data()
    before = unchanged(net)
    arguments = {"epochs": 2, "batch_size": 10, "eta": 0.1, "quiet": True, **kwargs}
    with pytest.raises(error, match=text):
        nnfs.fit(net, X, y, **arguments)
    assert np.array_equal(unchanged(net), before)


def test_x_and_y_of_different_lengths(net):
    X, y = make_data()
    with pytest.raises(nnfs.ShapeError, match=r"X has 50 samples .* but Y has 49"):
        nnfs.fit(net, X, y[:49], epochs=1, quiet=True)


def test_labels_outside_the_outputs(net):
    X, y = make_data()
    y[7] = 3
    with pytest.raises(nnfs.NnfsValueError,
                       match="label 3 in row 7, but the network has 3 outputs"):
        nnfs.fit(net, X, y, epochs=1, quiet=True)
    y[7] = -1
    with pytest.raises(nnfs.NnfsValueError, match="label -1 in row 7"):
        nnfs.fit(net, X, y, epochs=1, quiet=True)


def test_fractional_labels(net):
    X, y = make_data()
    with pytest.raises(nnfs.NnfsValueError, match=r"class labels .* fractions such as \d\.5"):
        nnfs.fit(net, X, y + 0.5, epochs=1, quiet=True)


def test_non_finite_samples_name_the_row(net):
    X, y = make_data()
    X[13, 2] = np.inf
    with pytest.raises(nnfs.NnfsValueError, match="fit: X holds inf in row 13, column 2"):
        nnfs.fit(net, X, y, epochs=1, quiet=True)
    with pytest.raises(nnfs.NnfsValueError, match="predict: X holds inf in row 13"):
        nnfs.predict(net, X)


def test_wrong_feature_count_and_empty_data(net):
    X, y = make_data(features=5)
    with pytest.raises(nnfs.ShapeError, match=r"4 columns .* got shape \(50, 5\)"):
        nnfs.fit(net, X, y, epochs=1, quiet=True)
    with pytest.raises(nnfs.NnfsValueError, match="empty"):
        nnfs.predict(net, np.empty((0, 4)))
    with pytest.raises(nnfs.NnfsTypeError, match="real numbers"):
        nnfs.predict(net, [["a", "b", "c", "d"]])


def test_cross_entropy_needs_a_probability_output(cpu):
    X, y = make_data()
    with network(cpu, (4, 5, 3), ("tanh", "linear")) as net, \
            pytest.raises(nnfs.NnfsValueError, match="cross_entropy_cost needs an output layer"):
        nnfs.fit(net, X, y, epochs=1, cost="cross_entropy", quiet=True)


# --- sample weights -----------------------------------------------------------------------------

def _weighted_reference(weights, biases, kinds, X, Y, w, batch, eta, epochs, cost):
    """Mini-batches in order, each sample's output δ scaled by its weight (w of mean 1)."""
    weights = [m.copy() for m in weights]
    biases = [b.copy() for b in biases]
    for _ in range(epochs):
        for start in range(0, len(X), batch):
            outputs = [X[start:start + batch].T]
            for m, b, kind in zip(weights, biases, kinds, strict=True):
                outputs.append(reference.activation(kind, m @ outputs[-1], b))
            a, y = outputs[-1], Y[start:start + batch].T
            delta = a - y if cost == "cross_entropy" else reference.activation_backward(
                kinds[-1], a, a - y)
            delta = delta * w[start:start + batch]
            n = a.shape[1]
            for i in range(len(weights) - 1, -1, -1):
                below = (reference.activation_backward(kinds[i - 1], outputs[i],
                                                       weights[i].T @ delta) if i > 0 else None)
                weights[i] -= eta / n * (delta @ outputs[i].T)
                biases[i] -= eta / n * delta.sum(axis=1)
                delta = below
    return weights, biases


@pytest.mark.parametrize("kinds, cost", [(("sigmoid", "softmax"), "cross_entropy"),
                                         (("relu", "linear"), "quadratic")])
def test_sample_weights_scale_each_samples_gradient_as_numpy_does(factory, kinds, cost):
    """10 samples in batches of 4, 4, 2: each sample's δ times its weight (scaled to mean 1),
    on every backend, against numpy step by step."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (10, 4))
    Y = np.eye(3)[rng.integers(0, 3, 10)]
    w = rng.uniform(0, 3, 10)
    w[4] = 0.0
    with network(factory, kinds=kinds) as net:
        weights, biases = host_parameters(net)
        nnfs.fit(net, X, Y, epochs=2, batch_size=4, eta=0.3, shuffle=False, quiet=True,
                 cost=cost, sample_weight=w)
        got_weights, got_biases = host_parameters(net)
    expected = _weighted_reference(weights, biases, kinds, X, Y, w * (10 / w.sum()), 4, 0.3, 2,
                                   cost)
    tolerance = 1e-4 if factory.dtype == "float32" else 1e-10
    for got, want in zip(got_weights + got_biases, expected[0] + expected[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


def test_whole_number_weights_are_repeated_samples_in_one_batch(cpu64):
    """In one full batch, weight k is the sample given k times (0: left out): the same weights
    to rounding, an independent check of the scaling to a mean of 1."""
    X, y = make_data(20)
    w = np.arange(20) % 3  # 0, 1, 2, ...
    repeated = np.repeat(np.arange(20), w)
    runs = []
    for data, labels, weight in [(X, y, w), (X[repeated], y[repeated], None)]:
        with network(cpu64, seed=2) as net:
            nnfs.fit(net, data, labels, epochs=5, batch_size=len(data), eta=0.5, shuffle=False,
                     quiet=True, sample_weight=weight)
            runs.append(nnfs.transfer(net.parameters))
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-12, atol=1e-12)


def test_equal_weights_are_no_weights_bit_for_bit(cpu):
    X, y = make_data()
    runs = []
    for weight in (None, np.full(50, 0.1), np.ones(50, dtype=int)):
        with network(cpu, seed=1) as net:
            nnfs.fit(net, X, y, epochs=2, batch_size=8, eta=0.5, seed=4, quiet=True,
                     sample_weight=weight)
            runs.append(nnfs.transfer(net.parameters))
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])


def test_sample_weights_allocate_nothing_per_batch(cpu):
    X, y = make_data(103)
    w = np.linspace(0.5, 2, 103)
    counts = []
    with network(cpu) as net:
        for epochs, batch in [(1, 10), (6, 10), (6, 7)]:
            before = cpu.stats().allocations
            nnfs.fit(net, X, y, epochs=epochs, batch_size=batch, eta=0.1, quiet=True,
                     sample_weight=w)
            counts.append(cpu.stats().allocations - before)
        before = cpu.stats().bytes_in_use
        nnfs.fit(net, X, y, epochs=1, batch_size=10, eta=0.1, quiet=True, sample_weight=w)
        assert cpu.stats().bytes_in_use == before
    assert counts[0] == counts[1] == counts[2], counts


@pytest.mark.parametrize("weights, error, text", [
    (np.ones(49), nnfs.ShapeError, "one weight per sample: 1-D of length 50"),
    (np.ones((50, 1)), nnfs.ShapeError, "1-D of length 50, got shape \\(50, 1\\)"),
    (np.r_[np.ones(49), -1.0], nnfs.NnfsValueError, "negative weight -1.0 in row 49"),
    (np.r_[np.ones(9), np.nan, np.ones(40)], nnfs.NnfsValueError, "nan in row 9"),
    (np.zeros(50), nnfs.NnfsValueError, "zero for every sample"),
    (np.array(["a"] * 50), nnfs.NnfsTypeError, "real numbers"),
])
def test_bad_sample_weights(net, weights, error, text):
    X, y = make_data()
    before = unchanged(net)
    with pytest.raises(error, match=text):
        nnfs.fit(net, X, y, epochs=1, batch_size=10, quiet=True, sample_weight=weights)
    assert np.array_equal(unchanged(net), before)


def test_divergence_with_sample_weights_rolls_back_to_the_last_finite_batch(cpu64):
    """The roll-back replays weighted batches: the weights it leaves are those of a weighted
    run stopped one batch before the diverging one."""
    X, y = make_data(40)
    # every batch of 8 sums to 8: the weights, whole or a batch's, are their own scaling
    w = np.tile([0.5, 2.0, 1.0, 0.0, 1.5, 1.0, 0.5, 1.5], 5)
    with network(cpu64, kinds=("relu", "softmax"), seed=3) as net:
        start = nnfs.transfer(net.parameters)
        with pytest.raises(nnfs.TrainingDiverged) as raised:
            nnfs.fit(net, X * 1e3, y, epochs=50, batch_size=8, eta=50.0, shuffle=False,
                     quiet=True, sample_weight=w)
        rolled = nnfs.transfer(net.parameters)
    epoch = raised.value.epoch
    batch = int(str(raised.value).split("the cost of batch ")[1].split(" ")[0])
    # the weights the last finite batch was measured with: those after the batch before it
    done = (epoch - 1) * 5 + batch - 2
    assert done > 5
    with network(cpu64, kinds=("relu", "softmax"), seed=3) as net:
        nnfs.transfer(start, net.parameters)
        for step in range(done):
            rows = slice((step % 5) * 8, (step % 5) * 8 + 8)
            nnfs.fit(net, X[rows] * 1e3, y[rows], epochs=1, batch_size=8, eta=50.0,
                     shuffle=False, quiet=True, sample_weight=w[rows])
        np.testing.assert_array_equal(nnfs.transfer(net.parameters), rolled)


def test_sample_weights_are_refused_for_data_parallel_training_before_mpi(net):
    X, y = make_data()
    with pytest.raises(nnfs.NnfsValueError, match="not supported with data_parallel yet"):
        nnfs.fit(net, X, y, epochs=1, quiet=True, data_parallel=True, sample_weight=np.ones(50))
