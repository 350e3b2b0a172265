"""Data-parallel fit with every optimizer and with dropout (tests/mpi_jobs/fit_job.py under
``mpiexec -n 2``): the gradient is summed, every rank applies the same optimizer step to the
same state, and dropout's masks are drawn for each sample's place in the global batch, so two
ranks of batch b train as one process of batch 2b."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import nnfs
from test_mpi import JOB, assert_same_training, requires_mpi, run_job


def one_process(backend: str, dtype: str, optimizer: str, dropout: float, *, samples=49,
                batch_size=8, epochs=3, eta=0.3, layers="7:tanh,3:softmax", validation=11):
    """What fit_job.py trains with --optimizer and --dropout, in this process alone with
    batch N·b: (parameters, history)."""
    sys.path.insert(0, str(JOB.parent))
    from fit_job import architecture_of, data, optimizer_of

    X, y = data(samples, 1)
    Xv, yv = data(validation, 99)
    chosen = optimizer_of(optimizer, eta)
    factory = nnfs.backend(backend, dtype)
    with nnfs.inference_network(factory, X.shape[1], architecture_of(layers, dropout),
                                seed=10) as network:
        history = nnfs.fit(network, X, y, epochs=epochs, batch_size=batch_size,
                           eta=eta if chosen is None else None, optimizer=chosen, seed=7,
                           quiet=True, validation=(Xv, yv))
        return nnfs.transfer(network.parameters).astype(np.float64), history


@requires_mpi
@pytest.mark.parametrize("optimizer, dropout", [
    ("momentum", 0.0), ("nesterov", 0.0), ("adam", 0.0), ("adamw", 0.0), ("sgd", 0.3),
    ("adam", 0.3)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_ranks_train_as_one_process_with_every_optimizer_and_dropout(
        optimizer, dropout, dtype, tmp_path):
    """49 samples in global batches of 2 × 4: the last one has a single sample, so rank 1
    has no share of it; its zero gradient is summed and it still takes the step."""
    result, reports = run_job(tmp_path, "--backend", "cpu", "--dtype", dtype,
                              "--optimizer", optimizer, "--dropout", str(dropout))
    assert result.returncode == 0, result.stdout + result.stderr
    expected, history = one_process("cpu", dtype, optimizer, dropout)
    assert_same_training(tmp_path, reports, expected, history, dtype)


@requires_mpi
def test_a_data_parallel_run_stopped_and_resumed_trains_as_one_process(tmp_path):
    """Rank 0 writes the checkpoint; every rank resumes from it."""
    checkpoint = tmp_path / "run.npz"
    first = tmp_path / "first"
    first.mkdir()
    result, _ = run_job(first, "--optimizer", "adam", "--dropout", "0.3", "--dtype", "float64",
                        "--checkpoint", str(checkpoint), "--stop-after", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert checkpoint.exists()
    result, reports = run_job(tmp_path, "--optimizer", "adam", "--dropout", "0.3",
                              "--dtype", "float64", "--resume", str(checkpoint))
    assert result.returncode == 0, result.stdout + result.stderr
    expected, history = one_process("cpu", "float64", "adam", 0.3)
    assert_same_training(tmp_path, reports, expected, history, "float64")
