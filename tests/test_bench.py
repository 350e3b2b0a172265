"""nnfs bench's measuring code: the fit workload against its floor, timed in turns, and the
warning for a ratio below 1. Figures are printed, never judged: these tests check what is
measured and reported, not how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnfs
from nnfs import bench

SMALL_FIT = bench.Preset(20, 16, ((8, "relu"), (3, "softmax")), 1, samples=100)


def test_the_fit_workload_times_each_epoch_and_its_floor_in_turns():
    result = bench.run(SMALL_FIT, "cpu", repeats=3)
    assert len(result.runs) == 3  # one (epoch, floor) pair per timed run
    assert all(epoch > 0 and floor > 0 for epoch, floor in result.runs)
    assert result.seconds_per_epoch == pytest.approx(np.median([r[0] for r in result.runs]))
    assert result.allocations_during_timing == 0
    assert result.batch_size == 16 and np.isfinite(result.cost)
    assert result.warning == bench.ratio_warning(result.ratio_to_floor)


def test_the_floor_is_every_batch_of_an_epoch():
    """100 samples in batches of 16: six full batches and one of four, each five products."""
    factory = nnfs.backend("cpu")
    x, labels = bench.make_data(SMALL_FIT, factory.numpy_dtype)
    with bench.network(factory, SMALL_FIT) as net:
        work = bench.FitWorkload(factory, SMALL_FIT, net, x, labels)
        try:
            assert [(len(products), count) for products, count in work.plans] == [(5, 6), (5, 1)]
            before = nnfs.transfer(net.parameters).copy()
            work.floor(2)
            np.testing.assert_array_equal(nnfs.transfer(net.parameters), before)  # read only
        finally:
            work.release()


def test_peers_see_fit_s_batches_in_fit_s_order():
    """The order a peer trains in is fit's: one seeded generator, a new shuffle each epoch."""
    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, folder)
    try:
        import peers
    finally:
        sys.path.remove(folder)
    rng = np.random.default_rng(7)
    order = np.arange(10)
    orders = peers.batch_orders(10, 7)
    for _ in range(3):
        rng.shuffle(order)
        np.testing.assert_array_equal(next(orders), order)


def test_a_ratio_below_one_is_reported_with_a_warning():
    assert bench.ratio_warning(1.0) == ""
    text = bench.ratio_warning(0.203)
    assert text.startswith("warning:") and "0.203×" in text and "load" in text


def test_batch_size_is_for_the_fit_preset_only():
    assert bench.preset("fit", 256).batch == 256
    with pytest.raises(nnfs.NnfsValueError, match="--batch-size is for the mini-batch preset"):
        bench.preset("mid", 64)
    with pytest.raises(nnfs.NnfsValueError, match="between 1 and 60000"):
        bench.preset("fit", 0)


def test_the_command_takes_a_batch_size_and_a_backend_s_options():
    command = [sys.executable, "-m", "nnfs", "bench", "tiny", "--epochs", "20", "--repeats",
               "2", "--backend", "cpu:threads=1,blas=numpy", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert "1 thread" in figures["factory"] and len(figures["runs"]) == 2
    bad = subprocess.run([sys.executable, "-m", "nnfs", "bench", "mid", "--batch-size", "8"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--batch-size is for the mini-batch preset" in bad.stderr
