"""Long runs (issue #8): training for a long time, and building networks over and over, neither
allocates device memory nor grows the process, on every backend.

The measure is the process's resident memory (VmRSS of /proc/self/status), read after a
warm-up and then after every tenth of the run; it must stay within 1 MiB of the first reading,
and the factory's allocation counter must not move. Each test prints its figures (run pytest
with -s to see them; docs/guide/promises.md quotes them)."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

import nnfs
from conftest import backend_params, resident_bytes
from nnfs import fully_connected, sigmoid, tanh

pytestmark = pytest.mark.slow

MIB = 2**20


def one_dtype_each() -> list:
    """backend_params(), with the first dtype of each backend only: the longest runs do not
    depend on the dtype, and twice their time buys nothing."""
    seen, params = set(), []
    for param in backend_params():
        name = param.values[0][0]
        if name not in seen:
            seen.add(name)
            params.append(param)
    return params


class Watch:
    """Resident memory and the factory's counters, read at a baseline and then at each step."""

    def __init__(self, factory: nnfs.Factory):
        self.factory = factory
        gc.collect()
        self.resident = resident_bytes()
        self.stats = factory.stats()
        self.readings: list[int] = []
        self.started = time.perf_counter()

    def read(self) -> None:
        gc.collect()
        self.readings.append(resident_bytes() - self.resident)

    def check(self, what: str) -> str:
        stats = self.factory.stats()
        growth = max(self.readings)
        figures = (f"{what} on {self.factory.describe()}: resident memory after warm-up "
                   f"{self.resident / MIB:.1f} MiB, largest growth {growth / 1024:.0f} KiB "
                   f"(readings in KiB: {[r // 1024 for r in self.readings]}), allocations "
                   f"{stats.allocations - self.stats.allocations}, "
                   f"{time.perf_counter() - self.started:.1f} s")
        print(figures)
        assert stats.allocations == self.stats.allocations, figures
        assert stats.bytes_in_use == self.stats.bytes_in_use, figures
        assert growth < MIB, figures
        return figures


def train_in_tenths(factory, training, y, cost, epochs: int, eta: float, warm_up: int) -> Watch:
    nnfs.sgd(training, y, cost, warm_up, eta)
    watch = Watch(factory)
    for _ in range(10):
        value = nnfs.sgd(training, y, cost, epochs // 10, eta)
        watch.read()
    assert np.isfinite(value)
    return watch


@pytest.mark.parametrize("factory", one_dtype_each(), indirect=True)
def test_the_tiny_network_for_100000_epochs(factory):
    """The article's 2 → 4 tanh → 1 sigmoid network on its two samples."""
    with factory.matrix(2, 2, [[0.3, 0.3], [0.9, 0.9]]) as x, \
            factory.matrix(1, 2, [[0.5, 0.5]]) as y, \
            nnfs.inference_network(factory, 2, [fully_connected(4, tanh),
                                                fully_connected(1, sigmoid)], seed=0) as network, \
            nnfs.training_network(network, x) as training:
        watch = train_in_tenths(factory, training, y, nnfs.quadratic_cost, 100_000, 0.05, 2_000)
        watch.check("100,000 epochs of 2-4-1")
        assert np.array_equal(nnfs.transfer(x), np.array([[0.3, 0.3], [0.9, 0.9]],
                                                         factory.numpy_dtype))


def test_a_mid_size_network_for_2000_epochs(factory):
    """256 → 128 relu → 64 tanh → 10 sigmoid (41,600 weights) on a batch of 128."""
    rng = np.random.default_rng(0)
    with factory.matrix(256, 128, rng.uniform(0, 1, (256, 128))) as x, \
            factory.matrix(10, 128, np.eye(10)[:, rng.integers(0, 10, 128)]) as y, \
            nnfs.inference_network(factory, 256, [fully_connected(128, "relu"),
                                                  fully_connected(64, tanh),
                                                  fully_connected(10, sigmoid)],
                                   seed=0) as network, \
            nnfs.training_network(network, x) as training:
        watch = train_in_tenths(factory, training, y, nnfs.cross_entropy_cost, 2_000, 0.1, 100)
        watch.check("2,000 epochs of 256-128-64-10, batch 128")


def test_fit_for_200_epochs_of_mini_batches(factory):
    """fit's own loop: shuffling, short last batches, validation, every epoch."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1000, 20))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    with nnfs.inference_network(factory, 20, [fully_connected(32, "relu"),
                                              fully_connected(3, "softmax")], seed=0) as network:
        nnfs.fit(network, X, labels, epochs=20, batch_size=64, eta=0.1, seed=0, quiet=True,
                 validation=(X[:100], labels[:100]))
        watch = Watch(factory)
        for _ in range(10):
            history = nnfs.fit(network, X, labels, epochs=20, batch_size=64, eta=0.1, seed=0,
                               quiet=True, validation=(X[:100], labels[:100]))
            watch.read()
        # fit allocates its batch buffers at each call, and gives them all back
        allocations = factory.stats().allocations - watch.stats.allocations
        assert allocations % 10 == 0
        watch.stats = factory.stats()
        watch.check("200 epochs of fit, batches of 64")
        assert history.validation_accuracy[-1] > 0.8


@pytest.mark.parametrize("factory", one_dtype_each(), indirect=True)
def test_10000_networks_built_and_released_leak_nothing(factory):
    layers = [fully_connected(16, tanh), fully_connected(4, sigmoid)]
    buffers = len(factory._buffers)

    def build_and_release(count: int) -> None:
        for seed in range(count):
            with factory.matrix(8, 32) as x, \
                    nnfs.inference_network(factory, 8, layers, seed=seed) as network, \
                    nnfs.training_network(network, x) as training, \
                    factory.matrix(4, 32) as y:
                nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.1)

    build_and_release(1_000)  # warm-up
    watch = Watch(factory)
    for _ in range(10):
        build_and_release(1_000)
        watch.read()
    made = factory.stats().allocations - watch.stats.allocations
    assert made == 10_000 * 10, made  # x, parameters, y, and 7 of the training network
    watch.stats = factory.stats()
    watch.check("10,000 networks built, trained one epoch and released")
    assert len(factory._buffers) == buffers
