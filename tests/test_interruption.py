"""Interruptions (issue #8): Ctrl-C during fit stops at the end of a whole mini-batch and leaves
a network that infers and trains on; nnfs train's checkpoints survive the process being killed
at any moment, the middle of writing one included."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import nnfs
from nnfs import fully_connected

#: An interruption that is not noticed must fail the test, not hang it (pytest-timeout).
pytestmark = pytest.mark.timeout(300)

QC = nnfs.quadratic_cost
BATCH = 8


def data():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (40, 4))
    return X, (X[:, :2] > 0).astype(float) * 0.6 + 0.2


def network(factory):
    return nnfs.inference_network(factory, 4, [fully_connected(8, "tanh"),
                                               fully_connected(2, "sigmoid")], seed=0)


def batch_states(factory, X, Y, eta, count):
    """The parameters after each of the first ``count`` batches of fit (in order, batches of
    BATCH), computed by running every batch as one sgd epoch; entry 0 is the start."""
    states = []
    with network(factory) as net, factory.matrix(4, BATCH) as x, factory.matrix(2, BATCH) as y, \
            nnfs.training_network(net, x) as training:
        states.append(nnfs.transfer(net.parameters))
        while len(states) <= count:
            for start in range(0, len(X), BATCH):
                nnfs.transfer(X[start:start + BATCH].T, x)
                nnfs.transfer(Y[start:start + BATCH].T, y)
                nnfs.sgd(training, y, QC, 1, eta)
                states.append(nnfs.transfer(net.parameters))
    return states[:count + 1]


def whole_batches(parameters, states, factory) -> int:
    """How many whole batches ``parameters`` are the state after (fails if none)."""
    tolerance = 1e-5 if factory.dtype == "float32" else 1e-12
    for count, state in enumerate(states):
        if np.allclose(parameters, state, rtol=tolerance, atol=tolerance):
            return count
    raise AssertionError("the parameters are not those after any whole number of batches")


def assert_goes_on(net, X, Y) -> None:
    """Inference works, and training resumes from where it stopped."""
    assert np.all(np.isfinite(nnfs.predict(net, X)))
    history = nnfs.fit(net, X, Y, epochs=2, batch_size=BATCH, eta=0.5, cost=QC, quiet=True)
    assert history.epochs == 2 and all(math.isfinite(c) for c in history.cost)


@pytest.mark.parametrize("delay", [0.15, 0.4])
def test_ctrl_c_during_fit_stops_after_a_whole_batch(factory, delay):
    """A real SIGINT, sent to this process while fit trains, as a terminal's Ctrl-C is."""
    X, Y = data()
    epochs_done = []
    started = time.monotonic()

    def on_epoch(epoch, history):
        epochs_done.append(epoch)
        assert time.monotonic() - started < 60, "Ctrl-C did not stop fit"

    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    with network(factory) as net:
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                nnfs.fit(net, X, Y, epochs=10**7, batch_size=BATCH, eta=0.5, cost=QC,
                         shuffle=False, quiet=True, on_epoch=on_epoch)
        finally:
            timer.cancel()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        parameters = nnfs.transfer(net.parameters)
        done = len(epochs_done)
        states = batch_states(factory, X, Y, 0.5, (done + 1) * 5)
        batches = whole_batches(parameters, states, factory)
        assert done * 5 <= batches <= (done + 1) * 5, (done, batches)
        assert_goes_on(net, X, Y)


class CutUpdate:
    """A CPU factory whose update of the parameters runs in two halves, and which sends itself
    SIGINT between them on its ``at``-th update (``times`` times): Ctrl-C in the middle of a
    backend's update, where nothing but fit's holding of it keeps the weights whole.

    The update is the gradient's ``axpy`` here, the path of every backend that does not
    accumulate in its products (``direct_blas=False``); the states to compare with are computed
    on the same path, so that they agree to the last bit."""

    def __new__(cls, at: int, times: int = 1):
        from nnfs_cpu import CpuBackend

        class Backend(CpuBackend):
            updates = 0

            def axpy(self, alpha, x, y):
                if alpha != 1.0:
                    return super().axpy(alpha, x, y)
                xv, yv, half = x.handle, y.handle, y.size // 2

                def update():
                    self.updates += 1
                    np.add(yv[:half], xv[:half], out=yv[:half])
                    if self.updates == at:
                        for _ in range(times):
                            os.kill(os.getpid(), signal.SIGINT)
                    np.add(yv[half:], xv[half:], out=yv[half:])

                return update

        return nnfs.Factory(Backend("float64", direct_blas=False))


def AXPY_CPU():  # a factory, named like the class it makes
    return nnfs.backend("cpu", "float64", direct_blas=False)


#: Updates per batch: each layer's parameters are updated on their own, the last layer first.
UPDATES = 2


def test_ctrl_c_in_the_middle_of_an_update_is_held_until_the_batch_is_done():
    X, Y = data()
    cut = CutUpdate(at=3 * UPDATES + 1)  # in the first update of batch 4
    with network(cut) as net:
        with pytest.raises(KeyboardInterrupt):
            nnfs.fit(net, X, Y, epochs=5, batch_size=BATCH, eta=0.5, cost=QC, shuffle=False,
                     quiet=True)
        assert cut.backend.updates == 4 * UPDATES  # stopped right after the batch it arrived in
        states = batch_states(AXPY_CPU(), X, Y, 0.5, 8)
        np.testing.assert_array_equal(nnfs.transfer(net.parameters), states[4])
        assert_goes_on(net, X, Y)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_interrupts_at_once():
    X, Y = data()
    cut = CutUpdate(at=UPDATES + 1, times=2)  # inside the last layer's update in batch 2
    with network(cut) as net:
        with pytest.raises(KeyboardInterrupt):
            nnfs.fit(net, X, Y, epochs=5, batch_size=BATCH, eta=0.5, cost=QC, shuffle=False,
                     quiet=True)
        states = batch_states(AXPY_CPU(), X, Y, 0.5, 4)
        first = net.layers[0].parameter_count  # the first layer's parameters, then the last's
        half = first + net.layers[1].parameter_count // 2
        parameters = nnfs.transfer(net.parameters)
        # stopped inside the last layer's update: the first half of it is done, the rest of it
        # and the first layer's update are not
        np.testing.assert_array_equal(parameters[first:half], states[2][first:half])
        np.testing.assert_array_equal(parameters[half:], states[1][half:])
        np.testing.assert_array_equal(parameters[:first], states[1][:first])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_keyboard_interrupt_raised_inside_a_batch_leaves_the_batch_before(factory, monkeypatch):
    """A KeyboardInterrupt that fit cannot hold (raised by other code, or in a thread that
    gets no signals) between a batch's forward pass and its update."""
    X, Y = data()
    real_descend, calls = nnfs.TrainingStep.descend, []

    def descend(self):  # after the batch's forward pass: its gradient and update
        calls.append(None)
        if len(calls) == 9:
            raise KeyboardInterrupt
        real_descend(self)

    monkeypatch.setattr(nnfs.TrainingStep, "descend", descend)
    with network(factory) as net:
        with pytest.raises(KeyboardInterrupt):
            nnfs.fit(net, X, Y, epochs=5, batch_size=BATCH, eta=0.5, cost=QC, shuffle=False,
                     quiet=True)
        monkeypatch.setattr(nnfs.TrainingStep, "descend", real_descend)
        states = batch_states(factory, X, Y, 0.5, 9)
        assert whole_batches(nnfs.transfer(net.parameters), states, factory) == 8
        assert_goes_on(net, X, Y)


def test_fit_leaves_the_signal_handler_as_it_found_it(cpu):
    X, Y = data()

    def mine(signum, frame):
        raise AssertionError("not called")

    with network(cpu) as net:
        nnfs.fit(net, X, Y, epochs=1, batch_size=BATCH, quiet=True)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(nnfs.NnfsValueError):
            nnfs.fit(net, X, Y, epochs=1, batch_size=BATCH, eta=-1.0, quiet=True)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        previous = signal.signal(signal.SIGINT, mine)
        try:
            nnfs.fit(net, X, Y, epochs=1, batch_size=BATCH, quiet=True,
                     on_epoch=lambda *_: assert_handler(mine))
        finally:
            signal.signal(signal.SIGINT, previous)


def assert_handler(handler) -> None:
    assert signal.getsignal(signal.SIGINT) is handler, "fit replaced a handler of the caller's"


def test_fit_in_a_thread_that_gets_no_signals(cpu):
    X, Y = data()
    results = []

    def train():
        with network(cpu) as net:
            results.append(nnfs.fit(net, X, Y, epochs=2, batch_size=BATCH, quiet=True).epochs)

    thread = threading.Thread(target=train)
    thread.start()
    thread.join(60)
    assert results == [2]


# --- nnfs train, killed ----------------------------------------------------------------------


def training_data(directory: Path) -> Path:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(256, 16))
    labels = (X[:, 0] + X[:, 1] > 0).astype(int)
    path = directory / "data.csv"
    np.savetxt(path, np.column_stack([X, labels]), delimiter=",", fmt="%.5f")
    return path


def start_training(directory: Path, *extra: str) -> subprocess.Popen:
    """nnfs train saving a checkpoint of a 16 → 2048 → 2 network (about 150 KB) every epoch,
    for far longer than any test waits."""
    command = [sys.executable, "-m", "nnfs", "train", "--data", str(training_data(directory)),
               "--layers", "2048:relu,2:softmax", "--epochs", "100000", "--eta", "0.01",
               "--batch-size", "64", "--save", str(directory / "model.npz"),
               "--checkpoint-every", "1", "--quiet", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process: subprocess.Popen, seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            raise AssertionError(f"nnfs train ended early: {process.communicate()}")
    return False


def temporary_files(directory: Path) -> list[str]:
    return [entry.name for entry in os.scandir(directory) if entry.name.endswith(".tmp")]


@pytest.mark.parametrize("moment", ["while-writing", "at-random"])
def test_killing_nnfs_train_leaves_the_checkpoint_before_loadable(tmp_path, moment):
    """SIGKILL five times: the moment a checkpoint's temporary file appears (in the middle of
    writing it), or at a random moment of the training, checkpoints being written every few
    milliseconds. Each time, the file holds a whole model."""
    model = tmp_path / "model.npz"
    rng = np.random.default_rng(0)
    caught_writing = 0
    for _ in range(5):
        process = start_training(tmp_path)
        try:
            assert wait_for(model.exists, process), "no checkpoint appeared"
            if moment == "while-writing":
                seen = set(temporary_files(tmp_path))
                if wait_for(lambda seen=seen: bool(set(temporary_files(tmp_path)) - seen),
                            process, 10):
                    caught_writing += 1
            else:
                time.sleep(rng.uniform(0.0, 1.0))
            process.kill()
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(30)
        assert process.returncode == -signal.SIGKILL
        with nnfs.load(model, nnfs.backend("cpu")) as loaded:  # whole, and a model
            assert loaded.in_dim == 16 and loaded.out_dim == 2
            assert np.all(np.isfinite(nnfs.transfer(loaded.parameters)))
        names = {p.name for p in tmp_path.iterdir()}
        assert names <= {"model.npz", "data.csv"} | set(temporary_files(tmp_path)), names
        model.unlink()
    if moment == "while-writing":
        print(f"{caught_writing} of 5 kills landed while a checkpoint was being written")
        assert caught_writing >= 1, "no kill landed in the middle of writing a checkpoint"


def test_the_checkpoint_on_disk_is_whole_at_every_moment(tmp_path):
    """What a kill would leave, looked at continuously: while nnfs train writes checkpoints,
    every read of the file finds a whole model (a file rewritten in place would be caught
    half-written)."""
    from nnfs.io import read_model

    model = tmp_path / "model.npz"
    process = start_training(tmp_path)
    reads = 0
    try:
        assert wait_for(model.exists, process), "no checkpoint appeared"
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            in_dim, layers, _ = read_model(model)  # raises on a partial file
            assert in_dim == 16 and [layer.units for layer in layers] == [2048, 2]
            reads += 1
        assert process.poll() is None, "nnfs train stopped while it was watched"
    finally:
        process.kill()
        process.wait(30)
    assert reads >= 100, f"only {reads} reads in 3 seconds"


def test_ctrl_c_stops_nnfs_train_with_one_line_naming_the_checkpoint(tmp_path):
    model = tmp_path / "model.npz"
    process = start_training(tmp_path)
    try:
        assert wait_for(model.exists, process), "no checkpoint appeared"
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("nnfs train: interrupted: training stopped; ")
    assert f"{model} holds the checkpoint of epoch " in err
    with nnfs.load(model, nnfs.backend("cpu")) as loaded:
        assert loaded.in_dim == 16
    assert temporary_files(tmp_path) == []


def test_ctrl_c_during_sgd_stops_at_the_end_of_that_epoch():
    """The layers' updates of an epoch are separate operations; a Ctrl-C between them is held
    until the epoch is done, so sgd leaves the weights of a whole number of epochs."""
    X, Y = data()
    cut = CutUpdate(at=2 * UPDATES + 1)  # in the first update of epoch 3
    with network(cut) as net, cut.matrix(4, len(X), X.T) as x, \
            cut.matrix(2, len(X), Y.T) as y, nnfs.training_network(net, x) as training:
        with pytest.raises(KeyboardInterrupt):
            nnfs.sgd(training, y, QC, 10, 0.5)
        assert cut.backend.updates == 3 * UPDATES
        reference = AXPY_CPU()
        with network(reference) as expected, reference.matrix(4, len(X), X.T) as rx, \
                reference.matrix(2, len(X), Y.T) as ry, \
                nnfs.training_network(expected, rx) as expected_training:
            nnfs.sgd(expected_training, ry, QC, 3, 0.5)
            np.testing.assert_array_equal(nnfs.transfer(net.parameters),
                                          nnfs.transfer(expected.parameters))
        nnfs.sgd(training, y, QC, 2, 0.5)  # and training goes on
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
