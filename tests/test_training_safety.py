"""Training under careless use: releases in the middle of training, an update nobody checks,
data that does not fit the network's dtype, targets a cost is not defined for, aliased
buffers, threads, and memory the host does not have (issue #16, items 1 to 8).

Each test tries to break one promise of the README the way a careless user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import nnfs
from conftest import ROOT, cpu_factory
from nnfs import fully_connected

QC = nnfs.quadratic_cost


def small(factory, outputs=2, hidden="tanh", last="sigmoid", inputs=3, seed=0):
    return nnfs.inference_network(factory, inputs, [fully_connected(5, hidden),
                                                    fully_connected(outputs, last)], seed=seed)


def data(n=64, inputs=3, outputs=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, inputs)), rng.uniform(0.1, 0.9, (n, outputs))


# --- 1. releasing while training ------------------------------------------------------------

@pytest.mark.parametrize("what", ["network", "factory"])
def test_releasing_from_on_epoch_stops_fit_with_released_error(factory, what):
    """on_epoch releases the network (or a factory of its own): the next batch raises
    ReleasedError, never a crash or a raw AttributeError."""
    if what == "factory":
        factory = nnfs.Factory(type(factory.backend)(factory.dtype))
    X, Y = data()
    network = small(factory)

    def release(epoch, history):
        (network if what == "network" else factory).release()

    with pytest.raises(nnfs.ReleasedError, match=r"fit: the (network|factory) was released"):
        nnfs.fit(network, X, Y, epochs=3, batch_size=8, eta=0.1, quiet=True, on_epoch=release)
    assert network.released
    with pytest.raises(nnfs.ReleasedError):
        nnfs.predict(network, X)
    if what == "factory":
        with pytest.raises(nnfs.ReleasedError):
            factory.matrix(2, 2)
    else:
        network.release()  # idempotent
        factory.matrix(2, 2).release()  # the factory goes on


@pytest.mark.parametrize("what", ["network", "input", "target", "factory"])
def test_releasing_from_another_thread_during_sgd_raises_at_the_next_epoch(factory, what):
    """Another thread releases something sgd trains with while sgd runs: the release waits for
    the epoch being run, and sgd stops with ReleasedError at the next one."""
    if what == "factory":
        factory = nnfs.Factory(type(factory.backend)(factory.dtype))
    rng = np.random.default_rng(1)
    x = factory.matrix(3, 64, rng.uniform(-1, 1, (3, 64)))
    y = factory.matrix(2, 64, rng.uniform(0.1, 0.9, (2, 64)))
    network = small(factory)
    training = nnfs.training_network(network, x)
    target = {"network": network, "input": x, "target": y, "factory": factory}[what]
    started = threading.Event()
    errors: list[BaseException] = []

    def release():
        started.wait(10)
        time.sleep(0.05)
        target.release()

    thread = threading.Thread(target=release)
    thread.start()
    try:
        started.set()
        with pytest.raises(nnfs.ReleasedError, match=r"sgd: .*was released"):
            nnfs.sgd(training, y, QC, 10**7, 0.01)  # far longer than the thread waits
    except BaseException as error:  # reported below, after the thread is joined
        errors.append(error)
    finally:
        thread.join(30)
    assert not thread.is_alive() and not errors, errors
    for thing in (network, training, x, y):
        thing.release()


# --- 2. the last update is checked ----------------------------------------------------------

def test_an_update_that_breaks_the_weights_is_found_even_when_it_is_the_last(factory):
    """One epoch whose cost is finite and whose update is not (a learning rate of 1e300):
    sgd must say so and leave the weights it was called with, which the next call can train
    from."""
    rng = np.random.default_rng(2)
    x = factory.matrix(3, 8, rng.uniform(-1, 1, (3, 8)))
    y = factory.matrix(2, 8, rng.uniform(-5, 5, (2, 8)) * 1e10)  # a cost of 1e20: finite
    network = nnfs.inference_network(factory, 3, [fully_connected(4, "linear"),
                                                  fully_connected(2, "linear")], seed=3)
    training = nnfs.training_network(network, x)
    before = nnfs.transfer(network.parameters)
    with pytest.raises(nnfs.TrainingDiverged, match="update left parameters that are not "
                                                    "finite; the weights are those sgd was "
                                                    "called with") as raised:
        nnfs.sgd(training, y, QC, 1, 1e300)
    assert raised.value.epoch == 1
    np.testing.assert_array_equal(nnfs.transfer(network.parameters), before)
    assert np.isfinite(nnfs.sgd(training, y, QC, 3, 1e-12))  # it trains on from there
    assert np.all(np.isfinite(nnfs.transfer(network.parameters)))
    for thing in (training, network, x, y):
        thing.release()


def test_fit_checks_the_update_of_its_very_last_batch(factory):
    X, Y = data(n=16)
    with nnfs.inference_network(factory, 3, [fully_connected(2, "linear")], seed=0) as network:
        # one batch, one epoch: the only update is the last one, and no forward pass reads it
        with pytest.raises(nnfs.TrainingDiverged, match="update of its last batch"):
            nnfs.fit(network, X, Y * 1e10, epochs=1, batch_size=16, eta=1e300, quiet=True,
                     cost=QC)
        assert np.all(np.isfinite(nnfs.transfer(network.parameters)))


# --- 3. values that do not fit the network's dtype ------------------------------------------

@pytest.mark.parametrize("where", ["X", "Y", "validation X", "predict"])
def test_values_too_large_for_float32_are_refused_before_training(cpu, where):
    X, Y = data()
    X, Y = X.copy(), Y.copy()
    validation = (X.copy(), Y.copy())
    target = {"X": X, "Y": Y, "validation X": validation[0], "predict": X}[where]
    target[5, 1] = 1e39  # a float64 that no float32 holds
    with small(cpu) as network:
        before = nnfs.transfer(network.parameters)
        with pytest.raises(nnfs.NnfsValueError, match=r"row 5, column 1, which is too large "
                                                      r"for the network's float32"):
            if where == "predict":
                nnfs.predict(network, X)
            else:
                nnfs.fit(network, X, Y, epochs=1, quiet=True, validation=validation,
                         cost=QC)
        np.testing.assert_array_equal(nnfs.transfer(network.parameters), before)


def test_float64_networks_take_what_float32_cannot(cpu64):
    X, _Y = data()
    X[0, 0] = 1e39
    with small(cpu64) as network:
        nnfs.predict(network, X)  # large, but a float64: fine


# --- 4. targets the cost is not defined for -------------------------------------------------

def test_cross_entropy_refuses_class_labels_on_a_one_output_network(cpu):
    """A one-output sigmoid network fitted on ten-class labels used to report negative costs
    and 95% accuracy on random labels."""
    rng = np.random.default_rng(0)
    X, labels = rng.uniform(size=(50, 3)), rng.integers(0, 10, 50)
    with small(cpu, outputs=1) as network, \
            pytest.raises(nnfs.NnfsValueError, match=r"cross-entropy needs targets between 0 "
                                                     r"and 1 .*one output per class"):
        nnfs.fit(network, X, labels, epochs=1, quiet=True)


@pytest.mark.parametrize("targets, words", [
    ([[0.5, 0.6]] * 4, "sums to 1.1"),
    ([[-0.5, 1.5]] * 4, "holds -0.5"),
    ([[2.0, -1.0]] * 4, "holds 2.0"),
])
def test_cross_entropy_refuses_targets_that_are_no_probabilities(cpu, targets, words):
    X = np.zeros((4, 3))
    with small(cpu, last="softmax") as network:
        with pytest.raises(nnfs.NnfsValueError, match=words):
            nnfs.fit(network, X, np.array(targets), epochs=1, batch_size=4, quiet=True)
        with pytest.raises(nnfs.NnfsValueError, match="fit: validation Y"):
            nnfs.fit(network, X, np.eye(2)[[0, 1, 0, 1]], epochs=1, batch_size=4, quiet=True,
                     validation=(X, np.array(targets)))


def test_quadratic_cost_takes_any_targets(cpu):
    X, Y = np.zeros((4, 3)), np.full((4, 2), 5.0)
    with small(cpu, last="linear") as network:
        nnfs.fit(network, X, Y, epochs=1, batch_size=4, quiet=True)


# --- 5. ragged nested lists -----------------------------------------------------------------

@pytest.mark.parametrize("argument", ["X", "Y", "validation X", "validation Y", "predict X"])
def test_ragged_lists_are_refused_naming_the_argument(cpu, argument):
    X, Y = [[0.0, 1.0, 2.0]] * 4, [[0.1, 0.9]] * 4
    ragged = [[0.0, 1.0, 2.0], [0.0, 1.0]] + [[0.0, 1.0, 2.0]] * 2
    ragged_y = [[0.1, 0.9], [0.1]] + [[0.1, 0.9]] * 2
    message = f"{argument.replace('predict X', 'predict: X')} cannot be read as a numeric array"
    with small(cpu) as network, pytest.raises(nnfs.NnfsValueError, match=message):
        if argument == "X":
            nnfs.fit(network, ragged, Y, epochs=1, batch_size=4, quiet=True)
        elif argument == "Y":
            nnfs.fit(network, X, ragged_y, epochs=1, batch_size=4, quiet=True)
        elif argument == "validation X":
            nnfs.fit(network, X, Y, epochs=1, batch_size=4, quiet=True,
                     validation=(ragged, Y))
        elif argument == "validation Y":
            nnfs.fit(network, X, Y, epochs=1, batch_size=4, quiet=True,
                     validation=(X, ragged_y))
        else:
            nnfs.predict(network, ragged)


# --- 6. aliasing ----------------------------------------------------------------------------

def test_inference_into_the_networks_own_parameters_is_refused(cpu):
    with small(cpu) as network, cpu.matrix(3, 2) as x:
        before = nnfs.transfer(network.parameters)
        out = network.parameters.as_matrix(2, 2)  # a view of the first weights
        with pytest.raises(nnfs.NnfsValueError, match="inference: out shares memory with "
                                                      "the network's parameters"):
            network(x, out)
        np.testing.assert_array_equal(nnfs.transfer(network.parameters), before)


@pytest.mark.parametrize("which", ["output", "a hidden layer", "gradient", "parameters"])
def test_sgd_towards_the_networks_own_buffers_is_refused(cpu, which):
    with cpu.matrix(3, 4) as x, small(cpu) as network, \
            nnfs.training_network(network, x) as training:
        y = {"output": training.output,
             "a hidden layer": training.layers[0].a.as_vector().as_matrix(2, 4),
             "gradient": training.gradient.as_matrix(2, 4),
             "parameters": network.parameters.as_matrix(2, 4)}[which]
        with pytest.raises(nnfs.NnfsValueError, match="sgd: y shares memory with"):
            nnfs.sgd(training, y, QC, 1, 0.1)


def test_a_training_input_that_is_the_networks_parameters_is_refused(cpu):
    with small(cpu) as network:
        x = network.parameters.as_matrix(3, 2)
        with pytest.raises(nnfs.NnfsValueError, match="training_network: x shares memory"):
            nnfs.training_network(network, x)


# --- 7. threads -----------------------------------------------------------------------------

def _in_threads(*targets):
    errors, threads = [], []
    for target in targets:
        def run(target=target):
            try:
                target()
            except BaseException as error:  # the test reads them
                errors.append(error)
        threads.append(threading.Thread(target=run))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


@pytest.mark.parametrize("second", ["sgd", "fit", "predict", "inference"])
def test_a_network_that_one_thread_trains_is_refused_to_another(cpu, second):
    rng = np.random.default_rng(4)
    x = cpu.matrix(3, 64, rng.uniform(-1, 1, (3, 64)))
    y = cpu.matrix(2, 64, rng.uniform(0.1, 0.9, (2, 64)))
    network = small(cpu)
    training = nnfs.training_network(network, x)
    X, Y = data()
    busy = threading.Event()

    def train():
        busy.set()
        nnfs.sgd(training, y, QC, 20_000, 0.01)

    def other():
        busy.wait(10)
        time.sleep(0.01)
        if second == "sgd":
            nnfs.sgd(training, y, QC, 1, 0.01)
        elif second == "fit":
            nnfs.fit(network, X, Y, epochs=1, quiet=True)
        elif second == "predict":
            nnfs.predict(network, X)
        else:
            network(x)

    errors = _in_threads(train, other)
    assert len(errors) == 1 and isinstance(errors[0], nnfs.InUseError), errors
    assert "the network is in use by thread" in str(errors[0])
    for thing in (training, network, x, y):
        thing.release()


def test_two_networks_on_one_factory_train_in_two_threads_as_they_would_alone():
    """Networks share a factory's scratch and queue; the factory lets one step run at a time,
    so two threads get the numbers they would get one after the other."""
    factory = cpu_factory("float64", threads=1)
    X, Y = data(n=256)

    def train(seed, out):
        with small(factory, seed=seed) as network:
            nnfs.fit(network, X, Y, epochs=20, batch_size=8, eta=0.1, seed=seed, quiet=True)
            out.append(nnfs.transfer(network.parameters))

    alone = [[], []]
    train(1, alone[0])
    train(2, alone[1])
    together = [[], []]
    errors = _in_threads(lambda: train(1, together[0]), lambda: train(2, together[1]))
    assert not errors, errors
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    factory.release()


# --- 8. memory the host does not have -------------------------------------------------------

PEAK = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import nnfs
    factory = nnfs.backend("cpu")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    network = nnfs.inference_network(factory, 5000, [nnfs.fully_connected(5000, "relu")],
                                     seed=0)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_kib": after - before, "parameters": network.parameters.nbytes}))
""")


def test_drawing_the_initial_weights_needs_little_more_than_the_weights():
    """A network of 95 MiB of float32 parameters used to add 539 MiB to the peak resident
    memory while its weights were drawn (float64 draws, a concatenation, a conversion)."""
    result = subprocess.run([sys.executable, "-c", PEAK], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    added = found["peak_kib"] * 1024
    assert added < found["parameters"] + 32 * 2**20, (
        f"building a network of {found['parameters']} bytes of parameters added {added} "
        "bytes to the peak")


def test_the_drawn_weights_are_those_of_one_whole_draw(cpu64, monkeypatch):
    """Cutting the draw into chunks changes no number: a seed gives the weights it gave."""
    from nnfs import network as network_module

    layers = [fully_connected(7, "relu"), fully_connected(3, "tanh")]
    whole = nnfs.inference_network(cpu64, 11, layers, seed=5)
    monkeypatch.setattr(network_module, "DRAW_CHUNK", 10)
    cut = nnfs.inference_network(cpu64, 11, layers, seed=5)
    np.testing.assert_array_equal(nnfs.transfer(whole.parameters), nnfs.transfer(cut.parameters))
    rng = np.random.default_rng(5)  # and they are Glorot and He as documented
    first = rng.normal(0.0, np.sqrt(2.0 / 11), size=(11, 7))
    np.testing.assert_array_equal(nnfs.transfer(whole.layers[0].weights), first.T)


def _fake_cgroups(tmp_path: Path, version: int, limit: int, used: int, inactive: int) -> Path:
    proc = tmp_path / "cgroup"
    if version == 2:
        folder = tmp_path / "root" / "job" / "step"
        folder.mkdir(parents=True)
        (folder / "memory.max").write_text(f"{limit}\n")
        (folder / "memory.current").write_text(f"{used}\n")
        (folder / "memory.stat").write_text(f"anon 1\ninactive_file {inactive}\nactive_file 2\n")
        (tmp_path / "root" / "job" / "memory.max").write_text("max\n")
        proc.write_text("0::/job/step\n")
    else:
        folder = tmp_path / "root" / "memory" / "slurm" / "job"
        folder.mkdir(parents=True)
        (folder / "memory.limit_in_bytes").write_text(f"{limit}\n")
        (folder / "memory.usage_in_bytes").write_text(f"{used}\n")
        (folder / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {inactive}\n")
        (tmp_path / "root" / "memory" / "memory.limit_in_bytes").write_text(
            "9223372036854771712\n")
        proc.write_text("12:memory:/slurm/job\n11:cpu,cpuacct:/\n0::/\n")
    return proc


@pytest.mark.parametrize("version", [1, 2])
def test_the_cpu_backend_counts_its_cgroups_limit(tmp_path, monkeypatch, version):
    from nnfs_cpu import device

    proc = _fake_cgroups(tmp_path, version, limit=1 << 30, used=700 << 20, inactive=100 << 20)
    assert device.cgroup_available(tmp_path / "root", proc) == (1 << 30) - (600 << 20)
    monkeypatch.setattr(device, "cgroup_available", lambda: 424 << 20)
    monkeypatch.setattr(device, "_meminfo_available", lambda: 20 << 30)
    factory = cpu_factory()
    assert factory.memory_limits().total_bytes == 424 << 20
    with pytest.raises(nnfs.OutOfDeviceMemory, match=r"424\.0 MiB"):
        nnfs.inference_network(factory, 10_000, [fully_connected(20_000, "relu")])
    assert factory.stats().bytes_in_use < 1 << 20, "it allocated before refusing"
    factory.release()


def test_no_cgroup_limit_leaves_the_system_figure(tmp_path):
    from nnfs_cpu import device

    proc = tmp_path / "cgroup"
    proc.write_text("0::/\n")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "memory.max").write_text("max\n")
    (tmp_path / "root" / "memory.current").write_text("123\n")
    assert device.cgroup_available(tmp_path / "root", proc) is None


REAL_CGROUP = Path("/sys/fs/cgroup/memory")

IN_CGROUP = textwrap.dedent("""
    import sys
    import nnfs
    factory = nnfs.backend("cpu")
    room = factory.memory_limits().total_bytes
    units = int(room * 2 // (4 * 5000))  # parameters twice what the cgroup leaves
    try:
        nnfs.inference_network(factory, 5000, [nnfs.fully_connected(units, "relu")])
    except nnfs.OutOfDeviceMemory as error:
        print("refused:", error)
        sys.exit(0)
    print("built a network larger than the cgroup allows")
    sys.exit(1)
""")


def test_a_network_too_big_for_a_real_cgroup_is_refused_not_killed(tmp_path):
    """In a memory cgroup of 400 MiB on a machine with far more, a network that "fits" the
    machine used to get the process killed; it must be refused before it is allocated."""
    if os.geteuid() != 0 or not REAL_CGROUP.is_dir():
        pytest.skip("making a memory cgroup needs root and cgroup v1's memory controller")
    group = REAL_CGROUP / f"nnfs-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(400 << 20))
    except OSError as error:
        pytest.skip(f"cannot make a memory cgroup here: {error}")
    try:
        child = subprocess.Popen([sys.executable, "-c", IN_CGROUP], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 preexec_fn=lambda: (group / "cgroup.procs").write_text(
                                     str(os.getpid())))
        out, err = child.communicate(timeout=300)
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    assert child.returncode == 0, f"exit {child.returncode} (-9: killed)\n{out}{err}"
    assert out.startswith("refused:") and "available" in out, out


def test_the_host_memory_module_is_the_backends_only_reader_of_proc_meminfo():
    source = (ROOT / "nnfs-cpu" / "src" / "nnfs_cpu" / "backend.py").read_text()
    assert "/proc/meminfo" not in source
