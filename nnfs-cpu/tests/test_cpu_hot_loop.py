"""The CPU backend's hot loop creates no Python objects and no numpy buffers that outlive a
call by much: tracemalloc's peak over 30 epochs stays under 8 KiB, with one thread and with
two (the persistent workers), with numpy's BLAS and with MKL. Also: batches reach the device
through ``write_rows`` exactly as a gather would put them, shuffled or in order."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import nnfs
from nnfs_cpu.backend import _Lanes
from nnfs_cpu.blas import mkl_blas

#: The promise: what tracemalloc may see at most, above what was there before, over 30 epochs.
PEAK_BYTES = 8 * 1024

BLAS = [
    "numpy",
    pytest.param("mkl", marks=pytest.mark.skipif(
        isinstance(mkl_blas(), str), reason=f"no MKL here: {mkl_blas()}")),
]
THREADS = [1, 2]


def _network(factory, out_kind: str) -> nnfs.InferenceNetwork:
    # the 512-512-256-10 network whose epochs once made 38 to 71 KiB of futures
    # (relu first: it is shared among the threads with numpy's ufuncs whatever the BLAS)
    layers = [nnfs.fully_connected(512, "relu"), nnfs.fully_connected(256, "tanh"),
              nnfs.fully_connected(10, out_kind)]
    return nnfs.inference_network(factory, 512, layers, seed=0)


@pytest.mark.parametrize("blas", BLAS)
@pytest.mark.parametrize("threads", THREADS)
def test_a_full_batch_step_allocates_nothing_python_sees(threads, blas):
    """30 epochs of the training step sgd runs (forward, cost, gradient, update), on a batch
    large enough that elementwise work is shared among the threads."""
    factory = nnfs.backend("cpu", threads=threads, blas=blas)
    rng = np.random.default_rng(0)
    samples = 600  # 512 × 600 entries: above the size from which the threads share the work
    with factory.matrix(512, samples, rng.uniform(0, 1, (512, samples))) as x, \
            factory.matrix(10, samples) as y, _network(factory, "sigmoid") as network, \
            nnfs.training_network(network, x) as training:
        factory.fill(y, 0.33)
        step = training.step(y, nnfs.quadratic_cost, -0.05 / samples)
        operations = [*step.forward, step.cost, *step.gradient, *step.update]
        if threads > 1:  # the workers are really used
            assert any(isinstance(op, _Lanes) for op in operations)
        tracemalloc.start()
        try:  # 10 epochs first: what Python's free lists take once is not the loop's
            for _ in range(10):
                for op in operations:
                    op()
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(30):
                for op in operations:
                    op()
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak - before < PEAK_BYTES, f"peak {peak - before} bytes over 30 epochs"
    assert current - before < 512, "the epochs kept memory"


@pytest.mark.parametrize("blas", BLAS)
@pytest.mark.parametrize("threads", THREADS)
def test_fit_epochs_allocate_nothing_python_sees(threads, blas):
    """30 epochs of fit, shuffled mini-batches with a short last batch, measured from the end
    of the 11th epoch to the end of the 41st (fit's own set-up left out)."""
    factory = nnfs.backend("cpu", threads=threads, blas=blas)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (1500, 512)).astype(np.float32)
    labels = rng.integers(0, 10, 1500)
    seen: dict[str, int] = {}

    def watch(epoch: int, history: nnfs.History) -> None:
        if epoch == 1:  # 10 epochs under tracemalloc first, as above
            tracemalloc.start()
        elif epoch == 11:
            tracemalloc.reset_peak()
            seen["before"] = tracemalloc.get_traced_memory()[0]
        elif epoch == 41:
            seen["current"], seen["peak"] = tracemalloc.get_traced_memory()
            tracemalloc.stop()

    try:
        with _network(factory, "softmax") as network:
            nnfs.fit(network, x, labels, epochs=41, batch_size=600, eta=0.01, quiet=True,
                     on_epoch=watch)
    finally:
        tracemalloc.stop()
    assert seen["peak"] - seen["before"] < PEAK_BYTES, seen
    # what stays: the history's 30 costs and learning rates (floats, and their lists' growth)
    assert seen["current"] - seen["before"] < 4096, seen


@pytest.mark.parametrize("shuffle", [True, False])
def test_write_rows_puts_each_row_in_its_column(cpu, shuffle):
    """write_rows with an index (a shuffled batch) or a slice (rows in order), into a whole
    matrix and into a view of its first columns, as the default would through write_samples."""
    rng = np.random.default_rng(2)
    host = rng.uniform(-1, 1, (20, 3)).astype(cpu.numpy_dtype)
    rows = rng.permutation(20)[:7] if shuffle else np.arange(5, 12)
    given = rows if shuffle else slice(5, 12)
    staging = np.empty((7, 3), cpu.numpy_dtype)
    with cpu.matrix(3, 7) as x, cpu.matrix(3, 9) as wide:
        cpu.backend.write_rows(host, given, x, staging)
        np.testing.assert_array_equal(nnfs.transfer(x), host[rows].T)
        view = wide.columns(0, 7)
        cpu.backend.write_rows(host, given, view, staging)
        expected = np.zeros((3, 9), cpu.numpy_dtype)
        expected[:, :7] = host[rows].T
        np.testing.assert_array_equal(nnfs.transfer(wide), expected)
        # the contract's default, through the staging array, gives the same
        nnfs.backend_api.Backend.write_rows(cpu.backend, host, given, view, staging)
        np.testing.assert_array_equal(nnfs.transfer(wide), expected)


@pytest.fixture
def cpu():
    return nnfs.backend("cpu")


def test_released_workers_leave_plans_runnable_in_the_caller():
    """A threaded plan made before the backend's workers stopped runs all its lanes in the
    calling thread: it neither hangs nor skips a lane."""
    factory = nnfs.Factory(nnfs.backend("cpu").backend.__class__("float32", threads=2))
    size = 1 << 19
    with factory.vector(size, np.ones(size)) as x, factory.vector(size) as y:
        plan = nnfs.backend_api.steps(factory.backend.axpy(2.0, x, y))
        assert any(isinstance(op, _Lanes) for op in plan)
        nnfs.backend_api.run(plan)
        factory.backend.release()  # the workers stop; the buffers are still there
        nnfs.backend_api.run(plan)
        np.testing.assert_array_equal(nnfs.transfer(y), np.full(size, 4.0, np.float32))
    factory.release()
