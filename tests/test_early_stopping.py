"""nnfs.EarlyStopping and on_epoch returning False: training stops cleanly after the epoch,
with its history; History.best_epoch and stopped_epoch say what happened; restore_best ends
with the best epoch's weights; monitoring validation figures without validation data is a
clear error, before any work."""

from __future__ import annotations

import numpy as np
import pytest

import nnfs
from nnfs import fully_connected
from nnfs.optimizers import Adam


def make_data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)  # noisy: validation turns
    return X[:40], y[:40], X[40:], y[40:]


def network(factory):
    return nnfs.inference_network(factory, 4, [fully_connected(32, "relu"),
                                               fully_connected(2, "softmax")], seed=0)


def train(factory, epochs=60, **arguments):
    X, y, Xv, yv = make_data()
    with network(factory) as net:
        history = nnfs.fit(net, X, y, epochs=epochs, batch_size=8, seed=1, quiet=True,
                           optimizer=Adam(0.03), validation=(Xv, yv), **arguments)
        return history, nnfs.transfer(net.parameters)


def test_training_stops_after_patience_epochs_without_improvement(cpu64):
    history, _ = train(cpu64, early_stopping=nnfs.EarlyStopping(patience=3))
    best, stopped = history.best_epoch, history.stopped_epoch
    assert stopped is not None and stopped == best + 3 == history.epochs < 60
    costs = history.validation_cost
    assert costs[best - 1] == min(costs)
    assert all(cost >= costs[best - 1] for cost in costs[best:])


def test_restore_best_ends_with_the_weights_of_the_best_epoch(cpu64):
    history, restored = train(cpu64, early_stopping=nnfs.EarlyStopping(patience=3))
    _, at_best = train(cpu64, epochs=history.best_epoch)
    np.testing.assert_array_equal(restored, at_best)
    history, last = train(cpu64, early_stopping=nnfs.EarlyStopping(patience=3,
                                                                    restore_best=False))
    _, at_stop = train(cpu64, epochs=history.stopped_epoch)
    np.testing.assert_array_equal(last, at_stop)


def test_min_delta_and_other_monitors(cpu64):
    strict, _ = train(cpu64, early_stopping=nnfs.EarlyStopping(patience=2, min_delta=1.0))
    assert strict.best_epoch == 1 and strict.stopped_epoch == 3  # nothing beats epoch 1 by 1.0
    accuracy, _ = train(cpu64, early_stopping=nnfs.EarlyStopping(
        patience=4, monitor="validation_accuracy"))
    best = accuracy.best_epoch
    assert accuracy.validation_accuracy[best - 1] == max(accuracy.validation_accuracy)
    X, y, _, _ = make_data()
    with network(cpu64) as net:
        cost = nnfs.fit(net, X, y, epochs=30, seed=1, quiet=True, optimizer=Adam(0.03),
                        early_stopping=nnfs.EarlyStopping(patience=2, monitor="cost"))
    assert cost.best_epoch is not None and cost.validation_cost == []


def test_without_early_stopping_the_history_says_nothing_of_it(cpu64):
    history, _ = train(cpu64, epochs=3)
    assert history.best_epoch is None and history.stopped_epoch is None


def test_on_epoch_returning_false_stops_cleanly_with_the_history(cpu64):
    seen = []

    def on_epoch(epoch, history):
        seen.append(epoch)
        return epoch < 4  # True (go on) until epoch 4, then False

    history, stopped = train(cpu64, epochs=20, on_epoch=on_epoch)
    assert seen == [1, 2, 3, 4] and history.epochs == 4 and history.stopped_epoch == 4
    _, four = train(cpu64, epochs=4)
    np.testing.assert_array_equal(stopped, four)
    history, _ = train(cpu64, epochs=3, on_epoch=lambda epoch, history: None)
    assert history.epochs == 3 and history.stopped_epoch is None  # None goes on


@pytest.mark.parametrize("monitor", ["validation_cost", "validation_accuracy"])
def test_monitoring_validation_without_validation_data_is_refused_before_any_work(cpu,
                                                                                 monitor):
    X, y, _, _ = make_data()
    with network(cpu) as net:
        before, allocations = nnfs.transfer(net.parameters), cpu.stats().allocations
        with pytest.raises(nnfs.NnfsValueError, match=f"early stopping monitors {monitor}, "
                                                      "which needs validation data"):
            nnfs.fit(net, X, y, epochs=5, quiet=True,
                     early_stopping=nnfs.EarlyStopping(monitor=monitor))
        assert np.array_equal(nnfs.transfer(net.parameters), before)
        assert cpu.stats().allocations == allocations


@pytest.mark.parametrize("make, error, expected", [
    (lambda: nnfs.EarlyStopping(patience=-1), nnfs.NnfsValueError, "patience"),
    (lambda: nnfs.EarlyStopping(patience=2.5), nnfs.NnfsTypeError, "patience"),
    (lambda: nnfs.EarlyStopping(min_delta=-0.1), nnfs.NnfsValueError, "min_delta"),
    (lambda: nnfs.EarlyStopping(monitor="val_loss"), nnfs.NnfsValueError, "monitor must be"),
    (lambda: nnfs.EarlyStopping(restore_best="yes"), nnfs.NnfsTypeError, "restore_best"),
])
def test_bad_settings_are_refused_when_made(make, error, expected):
    with pytest.raises(error, match=expected):
        make()


def test_the_best_weights_are_one_copy_allocated_when_training_starts(cpu):
    X, y, Xv, yv = make_data()
    counts = []
    with network(cpu) as net:
        before = cpu.stats().allocations
        nnfs.fit(net, X, y, epochs=6, batch_size=8, quiet=True, validation=(Xv, yv),
                 early_stopping=nnfs.EarlyStopping(patience=10),
                 on_epoch=lambda epoch, history: counts.append(cpu.stats().allocations))
    assert len(set(counts)) == 1 and counts[0] > before
