"""``nnfs bench``: the article's micro benchmark, measured against its own GEMM floor.

The workload is the article's: an input of ``in_dim × batch``, layers ``[tanh, sigmoid,
sigmoid]`` (the tiny preset: the article's 2-4-1 example), full-batch ``sgd`` with the quadratic
cost. nnfs times epochs (the median over repeats), and, in the same process on the same backend
and buffers, only the matrix products those epochs need: the **GEMM floor**. The ratio of the two
says what everything else costs (activations, biases, the cost, the update, Python).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

import nnfs

from .errors import NnfsValueError


@dataclass(frozen=True)
class Preset:
    in_dim: int
    batch: int
    layers: tuple[tuple[int, str], ...]
    epochs: int
    note: str = ""


PRESETS = {
    "article": Preset(10000, 10000, ((5000, "tanh"), (1000, "sigmoid"), (10, "sigmoid")), 10,
                      "the article: 68 s on a 4-core i7-4790k, 2.25 s on a GTX 1080 Ti"),
    "scaled": Preset(4000, 4000, ((2000, "tanh"), (400, "sigmoid"), (10, "sigmoid")), 10),
    "mid": Preset(784, 256, ((256, "sigmoid"), (64, "tanh"), (10, "sigmoid")), 200),
    "tiny": Preset(2, 2, ((4, "tanh"), (1, "sigmoid")), 20000, "the article's 2-4-1 example"),
}


def epoch_flops(preset: Preset) -> int:
    """Floating-point operations of the matrix products of one epoch (2 per multiply-add):
    forward W·a, gradient δ·aᵀ, and Wᵀ·δ for every layer but the first."""
    total, width = 0, preset.in_dim
    for i, (units, _) in enumerate(preset.layers):
        products = 3 if i > 0 else 2
        total += products * 2 * units * width * preset.batch
        width = units
    return total


@dataclass
class Result:
    preset: str
    backend: str
    dtype: str
    epochs: int
    repeats: int
    seconds_per_epoch: float
    floor_seconds_per_epoch: float
    ratio_to_floor: float
    gflops: float
    network_bytes: int
    allocations_during_timing: int
    cost: float


def _median_time(run: Callable[[], object], repeats: int, synchronize: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(preset_name: str, backend: str | None = None, dtype: str = "float32",
        epochs: int | None = None, repeats: int = 5, seed: int = 0) -> Result:
    """Build the preset's network, warm up, and time epochs and the GEMM floor."""
    if preset_name not in PRESETS:
        raise NnfsValueError(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    epochs = epochs or preset.epochs
    factory = nnfs.backend(backend, dtype)
    rng = np.random.default_rng(seed)
    layers = [nnfs.fully_connected(units, kind) for units, kind in preset.layers]
    out_dim = preset.layers[-1][0]
    with factory.matrix(preset.in_dim, preset.batch,
                        rng.uniform(0, 1, (preset.in_dim, preset.batch))) as x, \
            factory.matrix(out_dim, preset.batch) as y, \
            nnfs.inference_network(factory, preset.in_dim, layers, seed=seed) as inference, \
            nnfs.training_network(inference, x) as training:
        factory.fill(y, 0.33)  # the article's target
        held = (inference.parameters.nbytes + training.memory_bytes() + x.nbytes + y.nbytes)
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.05)  # warm up: kernels, caches
        gemms = training._gemm_ops()
        costs = []

        def train() -> None:
            costs.append(nnfs.sgd(training, y, nnfs.quadratic_cost, epochs, 0.05))

        def floor() -> None:
            for _ in range(epochs):
                for op in gemms:
                    op()

        before = factory.stats().allocations
        seconds = _median_time(train, repeats, factory.synchronize) / epochs
        floor_seconds = _median_time(floor, repeats, factory.synchronize) / epochs
        allocations = factory.stats().allocations - before
    return Result(preset_name, factory.name, dtype, epochs, repeats, seconds, floor_seconds,
                  seconds / floor_seconds, epoch_flops(preset) / seconds / 1e9, held, allocations,
                  costs[-1])


def _time_text(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.2f} µs"


def report(result: Result) -> str:
    preset = PRESETS[result.preset]
    shape = (f"input {preset.in_dim}×{preset.batch}, layers "
             + ", ".join(f"{units} {kind}" for units, kind in preset.layers))
    lines = [
        f"nnfs bench {result.preset} on {result.backend} {result.dtype}: {shape}",
        f"  per epoch (median of {result.repeats} runs of {result.epochs} epochs): "
        f"{_time_text(result.seconds_per_epoch)}",
        f"  GEMM floor (the epoch's matrix products alone): "
        f"{_time_text(result.floor_seconds_per_epoch)}   ratio to floor: "
        f"{result.ratio_to_floor:.3f}×",
        f"  {result.gflops:.2f} GFLOP/s counted in the matrix products",
        f"  network holds {result.network_bytes / 2**20:.2f} MiB; allocations during the timed "
        f"epochs: {result.allocations_during_timing}",
        f"  cost after the last epoch: {result.cost:.6g}",
    ]
    if preset.note:
        lines.append(f"  ({preset.note})")
    return "\n".join(lines)


def as_json(result: Result) -> str:
    return json.dumps(asdict(result), indent=2)
