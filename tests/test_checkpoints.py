"""Checkpoints and resume: fit(..., checkpoint=path) after every epoch, fit(..., resume=path)
continues, and a run interrupted and resumed ends as the uninterrupted run: bit for bit on the
cpu backend (and on every backend here, whose work is as deterministic), with the same history.
A checkpoint of another run is refused before any work; loading one never runs anything."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import nnfs
from conftest import backend_params
from nnfs import fully_connected
from nnfs.checkpoints import Checkpoints
from nnfs.optimizers import SGD, Adam, AdamW
from nnfs.schedules import Cosine, ReduceOnPlateau, StepDecay


def make_data(n=70, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)


def layers(dropout=0.2):
    return [fully_connected(9, "relu", dropout=dropout), fully_connected(2, "softmax")]


RUNS = {
    "adam-cosine-dropout": dict(optimizer=Adam(0.01), schedule=Cosine()),
    "momentum-plateau-early-stopping": dict(
        optimizer=SGD(0.1, momentum=0.9), schedule=ReduceOnPlateau(patience=1, threshold=0.5),
        early_stopping=nnfs.EarlyStopping(patience=3)),
    "nesterov-weight-decay": dict(optimizer=SGD(0.1, momentum=0.8, nesterov=True,
                                                weight_decay=0.01)),
    "adamw-step-decay": dict(optimizer=AdamW(0.01), schedule=StepDecay(every=3)),
    "plain-sgd-pairs": dict(eta=[(4, 0.1), (4, 0.05)]),
}


def train(factory, seed_of_weights=0, dropout=0.2, **arguments):
    X, y = make_data()
    options = dict(epochs=8, batch_size=16, validation=(X[:30], y[:30]), quiet=True, seed=1)
    options.update(arguments)
    if "eta" in options:
        options.pop("epochs")
    with nnfs.inference_network(factory, 5, layers(dropout), seed=seed_of_weights) as network:
        history = nnfs.fit(network, X, y, **options)
        return nnfs.transfer(network.parameters), history


def assert_same(first, second, exact=True):
    (weights, history), (other_weights, other_history) = first, second
    if exact:
        np.testing.assert_array_equal(weights, other_weights)
        assert history.cost == other_history.cost
        assert history.validation_cost == other_history.validation_cost
    else:
        np.testing.assert_allclose(weights, other_weights, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(history.cost, other_history.cost, rtol=1e-5)
    assert history.eta == other_history.eta
    assert history.best_epoch == other_history.best_epoch


@pytest.mark.parametrize("name", RUNS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stopped_and_resumed_runs_end_bit_for_bit_as_the_whole_run(name, dtype, tmp_path):
    factory = nnfs.backend("cpu", dtype)
    whole = train(factory, **RUNS[name])
    path = tmp_path / "run.npz"
    first = train(factory, checkpoint=path, on_epoch=lambda epoch, history: epoch < 3,
                  **RUNS[name])
    assert first[1].epochs == 3 and first[1].stopped_epoch == 3
    # a network of other weights: resuming puts the checkpoint's in
    resumed = train(factory, seed_of_weights=9, resume=path, **RUNS[name])
    assert resumed[1].epochs == whole[1].epochs  # the history holds the first run's epochs too
    assert_same(whole, resumed)


@pytest.mark.parametrize("factory", backend_params(), indirect=True)
def test_a_run_killed_mid_epoch_resumes_from_its_last_checkpoint(factory, tmp_path):
    """An error in the middle of epoch 5 (here, Ctrl-C from on_epoch's clock): the file holds
    epoch 4, whole; resuming from it ends as the uninterrupted run."""
    arguments = RUNS["adam-cosine-dropout"]
    whole = train(factory, **arguments)
    path = tmp_path / "run.npz"

    def interrupt(epoch, history):
        if epoch == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(factory, checkpoint=path, on_epoch=interrupt, **arguments)
    resumed = train(factory, resume=path, **arguments)
    assert_same(whole, resumed, exact=factory.name in ("cpu", "reference"))


def test_checkpoints_every_n_epochs_and_after_the_last(cpu64, tmp_path, monkeypatch):
    import nnfs.checkpoints as checkpoints

    written = []
    original = checkpoints.write

    def counting(target, arguments, training, progress, history):
        written.append(progress.epoch)
        return original(target, arguments, training, progress, history)

    monkeypatch.setattr(checkpoints, "write", counting)
    train(cpu64, checkpoint=Checkpoints(tmp_path / "run.npz", every=3), epochs=7)
    assert written == [3, 6, 7]


def test_resuming_a_finished_run_trains_nothing(cpu64, tmp_path):
    path = tmp_path / "run.npz"
    weights, history = train(cpu64, checkpoint=path, epochs=4)
    again, resumed = train(cpu64, resume=path, epochs=4)
    np.testing.assert_array_equal(again, weights)
    assert resumed.cost == history.cost


def test_resuming_continues_a_run_for_more_epochs(cpu64, tmp_path):
    path = tmp_path / "run.npz"
    train(cpu64, checkpoint=path, epochs=4, optimizer=Adam(0.01))
    longer = train(cpu64, resume=path, epochs=8, optimizer=Adam(0.01))
    assert longer[1].epochs == 8
    assert_same(train(cpu64, epochs=8, optimizer=Adam(0.01)), longer)


def test_a_run_without_a_seed_resumes_with_its_own_shuffling_and_masks(cpu64, tmp_path):
    path = tmp_path / "run.npz"
    first = train(cpu64, checkpoint=path, seed=None, epochs=3, optimizer=Adam(0.01))
    with nnfs.inference_network(cpu64, 5, layers(), seed=0) as network:
        X, y = make_data()
        history = nnfs.fit(network, X, y, epochs=3, batch_size=16, quiet=True, seed=None,
                           optimizer=Adam(0.01), validation=(X[:30], y[:30]), resume=path)
        np.testing.assert_array_equal(nnfs.transfer(network.parameters), first[0])
    assert history.cost == first[1].cost


# --- refused before any work ------------------------------------------------------------------

@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "run.npz"
    train(nnfs.backend("cpu"), checkpoint=path, epochs=2, optimizer=Adam(0.01))
    return path


@pytest.mark.parametrize("change, expected", [
    ({"optimizer": SGD(0.01)}, "the optimizer"),
    ({"optimizer": Adam(0.02)}, "the optimizer"),
    ({"optimizer": Adam(0.01), "schedule": Cosine()}, "the schedule"),
    ({"optimizer": Adam(0.01), "early_stopping": nnfs.EarlyStopping()}, "early stopping"),
    ({"optimizer": Adam(0.01), "batch_size": 8}, "batch_size"),
    ({"optimizer": Adam(0.01), "seed": 2}, "seed"),
    ({"optimizer": Adam(0.01), "validation": None}, "with validation data"),
    ({"optimizer": Adam(0.01), "shuffle": False}, "shuffle"),
])
def test_a_checkpoint_of_another_run_is_refused_before_any_work(cpu, checkpoint, change,
                                                                expected):
    X, y = make_data()
    options = dict(epochs=4, batch_size=16, validation=(X[:30], y[:30]), quiet=True, seed=1,
                   resume=checkpoint)
    options.update(change)
    with nnfs.inference_network(cpu, 5, layers(), seed=3) as network:
        before, allocations = nnfs.transfer(network.parameters), cpu.stats().allocations
        with pytest.raises(nnfs.NnfsValueError, match=expected):
            nnfs.fit(network, X, y, **options)
        assert np.array_equal(nnfs.transfer(network.parameters), before)
        assert cpu.stats().allocations == allocations


@pytest.mark.parametrize("network_layers, dtype, expected", [
    ([fully_connected(8, "relu", dropout=0.2), fully_connected(2, "softmax")], "float32",
     "checkpoint of the network 5 → 9 relu dropout 0.2 → 2 softmax"),
    ([fully_connected(9, "tanh", dropout=0.2), fully_connected(2, "softmax")], "float32",
     "this fit trains 5 → 9 tanh"),
    ([fully_connected(9, "relu"), fully_connected(2, "softmax")], "float32", "dropout"),
    (layers(), "float64", "float32 run"),
])
def test_a_checkpoint_of_another_architecture_or_dtype_is_refused(checkpoint, network_layers,
                                                                  dtype, expected):
    factory = nnfs.backend("cpu", dtype)
    X, y = make_data()
    with nnfs.inference_network(factory, 5, network_layers, seed=3) as network:
        before = nnfs.transfer(network.parameters)
        with pytest.raises(nnfs.ModelFileError, match=expected):
            nnfs.fit(network, X, y, epochs=4, batch_size=16, quiet=True, seed=1,
                     optimizer=Adam(0.01), validation=(X[:30], y[:30]), resume=checkpoint)
        assert np.array_equal(nnfs.transfer(network.parameters), before)


def test_other_data_is_refused(cpu, checkpoint):
    X, y = make_data(seed=1)
    with nnfs.inference_network(cpu, 5, layers(), seed=3) as network, \
            pytest.raises(nnfs.NnfsValueError, match="other data"):
        nnfs.fit(network, X, y, epochs=4, batch_size=16, quiet=True, seed=1,
                 optimizer=Adam(0.01), validation=(X[:30], y[:30]), resume=checkpoint)


def _resume(path):
    factory = nnfs.backend("cpu")
    X, y = make_data()
    with nnfs.inference_network(factory, 5, layers(), seed=3) as network:
        nnfs.fit(network, X, y, epochs=4, batch_size=16, quiet=True, seed=1,
                 optimizer=Adam(0.01), validation=(X[:30], y[:30]), resume=path)


def test_a_model_file_is_not_a_checkpoint(tmp_path):
    with nnfs.inference_network(nnfs.backend("cpu"), 5, layers(0.0), seed=3) as network:
        nnfs.save(network, tmp_path / "model.npz")
    with pytest.raises(nnfs.ModelFileError, match="not a checkpoint"):
        _resume(tmp_path / "model.npz")


def test_damaged_and_hostile_checkpoints_are_refused_without_running_anything(checkpoint,
                                                                            tmp_path):
    data = checkpoint.read_bytes()
    (tmp_path / "half.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(nnfs.ModelFileError):
        _resume(tmp_path / "half.npz")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("pwned",))

    (tmp_path / "pickle.npz").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(nnfs.ModelFileError, match="pickled"):
        _resume(tmp_path / "pickle.npz")
    entries = dict(np.load(checkpoint, allow_pickle=False))
    entries["optimizer_state"] = np.array([Payload()], dtype=object)
    np.savez(tmp_path / "objects.npz", **entries)
    with pytest.raises(nnfs.ModelFileError):
        _resume(tmp_path / "objects.npz")
    assert not marker.exists()
    entries = dict(np.load(checkpoint, allow_pickle=False))
    entries["checkpoint_order"] = entries["checkpoint_order"][::-1][:-1]
    np.savez(tmp_path / "order.npz", **entries)
    with pytest.raises(nnfs.ModelFileError, match="checkpoint_order"):
        _resume(tmp_path / "order.npz")
    entries = dict(np.load(checkpoint, allow_pickle=False))
    entries["optimizer_state"] = entries["optimizer_state"] * np.nan
    np.savez(tmp_path / "nan.npz", **entries)
    with pytest.raises(nnfs.ModelFileError, match="not finite"):
        _resume(tmp_path / "nan.npz")
    with pytest.raises(nnfs.NnfsFileNotFoundError):
        _resume(tmp_path / "missing.npz")


def test_a_checkpoint_nowhere_is_refused_before_any_work(cpu, tmp_path):
    X, y = make_data()
    with nnfs.inference_network(cpu, 5, layers(), seed=3) as network:
        before = nnfs.transfer(network.parameters)
        with pytest.raises(nnfs.NnfsFileNotFoundError):
            nnfs.fit(network, X, y, epochs=2, quiet=True,
                     checkpoint=tmp_path / "no-such-directory" / "run.npz")
        assert np.array_equal(nnfs.transfer(network.parameters), before)
