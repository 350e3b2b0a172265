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
    factory: str = ""  # the factory's own description: device, library, threads



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
        gemms = training.products()
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
                  costs[-1], factory.describe())


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
        *([f"  on {result.factory}"] if result.factory else []),
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


def as_json(result: Result | ParallelResult) -> str:
    return json.dumps(asdict(result), indent=2)


# --- data-parallel: the preset's batch split across the ranks of an MPI job ---------------------


def parameter_count(preset: Preset) -> int:
    total, width = 0, preset.in_dim
    for units, _ in preset.layers:
        total += units * (width + 1)
        width = units
    return total


@dataclass
class ParallelResult:
    preset: str
    backend: str
    dtype: str
    ranks: int
    library: str
    epochs: int
    repeats: int
    batch_per_rank: int
    seconds_per_epoch: float
    allreduce_seconds_per_epoch: float
    allreduce_share: float
    allreduce_alone_seconds: float
    gradient_sum: str
    bytes_per_step: int
    ring_bytes_per_rank_per_step: float
    single_process_seconds_per_epoch: float | None
    cost: float


def run_parallel(preset_name: str, world, backend: str | None = None, dtype: str = "float32",
                 epochs: int | None = None, repeats: int = 5, seed: int = 0) -> ParallelResult:
    """The preset's workload as a data-parallel ``fit`` on every rank of ``world``: the
    preset's batch split evenly across the ranks, one step per epoch, the quadratic cost.

    Times epochs from the second to the last of each run (``on_epoch`` timestamps, so the
    setup of fit is left out), and the part of them spent summing gradients, which includes
    waiting for the slowest rank to get there. Then times the gradient exchange alone, every
    rank starting it together (after a barrier). With one rank it also times the same fit in
    this process alone, without MPI.
    """
    from . import mpi

    if preset_name not in PRESETS:
        raise NnfsValueError(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    epochs = max(2, epochs or preset.epochs)
    if preset.batch % world.size:
        raise NnfsValueError(f"the {preset_name} batch of {preset.batch} does not split evenly "
                             f"over {world.size} ranks")
    per_rank = preset.batch // world.size
    factory = nnfs.backend(backend, dtype)
    rng = np.random.default_rng(seed)  # the same data on every rank: each uses its share
    X = rng.uniform(0, 1, (preset.batch, preset.in_dim)).astype(factory.numpy_dtype)
    Y = np.full((preset.batch, preset.layers[-1][0]), 0.33, dtype=factory.numpy_dtype)
    layers = [nnfs.fully_connected(units, kind) for units, kind in preset.layers]
    options = dict(batch_size=per_rank, eta=0.05, cost=nnfs.quadratic_cost, shuffle=False,
                   quiet=True)

    def timed(parallel: bool) -> tuple[float, float, float]:
        marks: list[tuple[float, float]] = []

        def mark(epoch: int, history) -> None:
            factory.synchronize()
            marks.append((time.perf_counter(), world.stats().allreduce_seconds))

        history = nnfs.fit(network, X, Y, epochs=epochs, on_epoch=mark,
                           data_parallel=world if parallel else None, **options)
        (start, reduced), (stop, reduced_end) = marks[0], marks[-1]
        return (stop - start) / (epochs - 1), (reduced_end - reduced) / (epochs - 1), \
            history.cost[-1]

    with nnfs.inference_network(factory, preset.in_dim, layers, seed=seed) as network:
        nnfs.fit(network, X, Y, epochs=1, data_parallel=world, **options)  # warm up
        runs = [timed(True) for _ in range(repeats)]
        alone = None
        if world.size == 1:
            alone = statistics.median(timed(False)[0] for _ in range(repeats))
    device = mpi.device_collective(world, factory)
    with factory.vector(parameter_count(preset)) as gradient:
        exchange = mpi.GradientSum(world, gradient, device)
        times = []
        for _ in range(max(20, epochs // 10)):  # the exchange alone, every rank there first
            world.barrier()
            started = time.perf_counter()
            exchange(0.0)
            factory.synchronize()
            times.append(time.perf_counter() - started)
    seconds = statistics.median(run[0] for run in runs)
    reducing = statistics.median(run[1] for run in runs)
    return ParallelResult(
        preset_name, factory.name, dtype, world.size, world.library, epochs, repeats, per_rank,
        seconds, reducing, reducing / seconds, statistics.median(times),
        "on the device" if device else "through host buffers", exchange.nbytes,
        2 * (world.size - 1) / world.size * exchange.nbytes, alone, runs[-1][2])


def _bytes_text(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count:.0f} B"


def report_parallel(result: ParallelResult) -> str:
    preset = PRESETS[result.preset]
    shape = (f"input {preset.in_dim}×{preset.batch}, layers "
             + ", ".join(f"{units} {kind}" for units, kind in preset.layers))
    lines = [
        f"nnfs bench {result.preset} data-parallel on {result.ranks} rank"
        f"{'s' if result.ranks > 1 else ''} ({result.library}), {result.backend} "
        f"{result.dtype}: {shape}, {result.batch_per_rank} samples per rank",
        f"  per epoch (one step; median of {result.repeats} runs of {result.epochs} epochs): "
        f"{_time_text(result.seconds_per_epoch)}",
        f"  summing gradients ({result.gradient_sum}): "
        f"{_time_text(result.allreduce_seconds_per_epoch)} per step, "
        f"{result.allreduce_share:.1%} of the time (waiting for the slowest rank included); "
        f"the exchange alone, all ranks ready: {_time_text(result.allreduce_alone_seconds)}",
        f"  allreduce payload per step: {_bytes_text(result.bytes_per_step)} per rank "
        f"({parameter_count(preset)} parameters and the cost); a ring moves "
        f"{_bytes_text(result.ring_bytes_per_rank_per_step)} over each rank's link",
    ]
    if result.single_process_seconds_per_epoch is not None:
        lines.append(f"  the same fit in one process without MPI: "
                     f"{_time_text(result.single_process_seconds_per_epoch)} per epoch")
    lines.append(f"  cost after the last epoch: {result.cost:.6g}")
    lines.append("  (what the exchange would cost on a cluster's links: python "
                 "benchmarks/cost_models.py)")
    return "\n".join(lines)
