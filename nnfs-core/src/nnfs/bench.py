"""``nnfs bench``: a training workload, measured against its own GEMM floor.

Two kinds of workload:

* the article's micro benchmark (presets ``article``, ``scaled``, ``mid``, ``tiny``): an input
  of ``in_dim × batch``, layers ``[tanh, sigmoid, sigmoid]`` (the tiny preset: the article's
  2-4-1 example), full-batch ``sgd`` with the quadratic cost;
* mini-batch ``fit`` (preset ``fit``), where users train: a data set of ``samples`` rows,
  shuffled every epoch, in batches of ``batch`` (``--batch-size``), with the cross-entropy
  cost of a softmax output. The ``fit`` preset has Fashion-MNIST's shape: 60,000 samples of
  784 features, 784 → 256 relu → 10 softmax.

nnfs times epochs and, on the same backend and network, the matrix products those epochs need
alone: the **GEMM floor** (for fit: the five products of every batch, two forward and three
backward, on buffers of the batch's size). The ratio of the two says what everything else
costs (activations, biases, the cost, the update, moving batches, Python). The floor is timed
*interleaved* with the epochs, one floor after each timed run, so that a change of the
machine's load affects both alike; a ratio below 1 can only come from such a change (or from
a floor that is not the epoch's products), and is reported with a warning.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

import nnfs

from .contract import steps
from .errors import NnfsValueError


@dataclass(frozen=True)
class Preset:
    """A workload: ``in_dim`` inputs, ``layers`` of (units, activation), timed over runs of
    ``epochs`` epochs. Full-batch ``sgd`` on ``batch`` samples when ``samples`` is 0; else
    mini-batch ``fit`` on ``samples`` samples in batches of ``batch``."""

    in_dim: int
    batch: int
    layers: tuple[tuple[int, str], ...]
    epochs: int
    note: str = ""
    samples: int = 0

    @property
    def minibatch(self) -> bool:
        return self.samples > 0

    @property
    def samples_per_epoch(self) -> int:
        return self.samples if self.minibatch else self.batch

    def describe(self) -> str:
        layers = ", ".join(f"{units} {kind}" for units, kind in self.layers)
        if self.minibatch:
            return (f"fit on {self.samples}×{self.in_dim} (samples × features), batches of "
                    f"{self.batch}, shuffled; layers {layers}; cross-entropy")
        return f"input {self.in_dim}×{self.batch}, layers {layers}"


PRESETS = {
    "article": Preset(10000, 10000, ((5000, "tanh"), (1000, "sigmoid"), (10, "sigmoid")), 10,
                      "the article: 68 s on a 4-core i7-4790k, 2.25 s on a GTX 1080 Ti"),
    "scaled": Preset(4000, 4000, ((2000, "tanh"), (400, "sigmoid"), (10, "sigmoid")), 10),
    "mid": Preset(784, 256, ((256, "sigmoid"), (64, "tanh"), (10, "sigmoid")), 200),
    "tiny": Preset(2, 2, ((4, "tanh"), (1, "sigmoid")), 20000, "the article's 2-4-1 example"),
    "fit": Preset(784, 64, ((256, "relu"), (10, "softmax")), 1,
                  "Fashion-MNIST's shape; uniform random data and labels", samples=60000),
}

#: The learning rates of the workloads: the article's for sgd, a small one for fit (its data
#: is random, so nothing is learnt; the rate only keeps the weights where they were).
SGD_ETA = 0.05
FIT_ETA = 0.01


def preset(name: str, batch_size: int | None = None) -> Preset:
    """The preset ``name``, with its batch size replaced by ``batch_size`` (fit only)."""
    if name not in PRESETS:
        raise NnfsValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    found = PRESETS[name]
    if batch_size is None:
        return found
    if not found.minibatch:
        raise NnfsValueError(f"--batch-size is for the mini-batch preset 'fit'; the {name} "
                             f"preset trains on its whole batch of {found.batch}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
            or not 1 <= batch_size <= found.samples:
        raise NnfsValueError(f"--batch-size must be between 1 and {found.samples} (the "
                             f"samples), got {batch_size!r}")
    return replace(found, batch=batch_size)


def epoch_flops(preset: Preset) -> int:
    """Floating-point operations of the matrix products of one epoch (2 per multiply-add):
    forward W·a, gradient δ·aᵀ, and Wᵀ·δ for every layer but the first."""
    total, width = 0, preset.in_dim
    for i, (units, _) in enumerate(preset.layers):
        products = 3 if i > 0 else 2
        total += products * 2 * units * width * preset.samples_per_epoch
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
    batch_size: int = 0  # samples per step: the whole batch for sgd, fit's batch size
    #: each timed run and the floor timed right after it, per epoch, in seconds
    runs: list[tuple[float, float]] = field(default_factory=list)
    warning: str = ""
    #: the fastest run and the fastest floor, per epoch, and their ratio: on a machine that
    #: others share, load only ever slows a run down, so the fastest are the least disturbed
    best_seconds_per_epoch: float = 0.0
    best_floor_seconds_per_epoch: float = 0.0
    best_ratio_to_floor: float = 0.0


def ratio_warning(ratio: float, what: str = "the epoch") -> str:
    """The warning for a ratio to the floor below 1, or "" when it is not."""
    if ratio >= 1.0:
        return ""
    return (f"warning: {what} ran faster than its GEMM floor (ratio {ratio:.3f}×), which its "
            "products alone cannot do: the machine's load changed while it was measured (or "
            "the floor is not the epoch's products); run it again on a quieter machine")


def make_data(preset: Preset, dtype: np.dtype, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The workload's host data. sgd: x (in_dim × batch, columns are samples, uniform in
    [0, 1)) and its target y (all 0.33, the article's). fit: X (samples × in_dim, uniform) and
    integer labels, one per sample."""
    rng = np.random.default_rng(seed)
    if preset.minibatch:
        x = rng.uniform(0, 1, (preset.samples, preset.in_dim)).astype(dtype)
        return x, rng.integers(0, preset.layers[-1][0], preset.samples)
    x = rng.uniform(0, 1, (preset.in_dim, preset.batch)).astype(dtype)
    return x, np.full((preset.layers[-1][0], preset.batch), 0.33, dtype)


def network(factory: nnfs.Factory, preset: Preset, seed: int = 0) -> nnfs.InferenceNetwork:
    """The preset's network on ``factory``, its weights drawn from ``seed``."""
    layers = [nnfs.fully_connected(units, kind) for units, kind in preset.layers]
    return nnfs.inference_network(factory, preset.in_dim, layers, seed=seed)


def take_turns(runs: dict[str, Callable[[int], float | None]], repeats: int, epochs: int,
               synchronize: Callable[[], None]) -> dict[str, list[float]]:
    """Each run called ``repeats`` times with ``epochs``, taking turns (A B C A B C...), after
    one warm-up call of each with 1: the seconds per epoch of every call. A run may return the
    seconds it measured itself; None means the wall time of the call."""
    for run in runs.values():
        run(1)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            synchronize()
            start = time.perf_counter()
            own = run(epochs)
            synchronize()
            wall = time.perf_counter() - start
            times[name].append((wall if own is None else own) / epochs)
    return times


class SgdWorkload:
    """Full-batch ``sgd`` on the preset's batch (the article's benchmark), and the floor of
    its products on the training network's own buffers."""

    def __init__(self, factory: nnfs.Factory, preset: Preset, net: nnfs.InferenceNetwork,
                 x: np.ndarray, y: np.ndarray):
        self.factory, self.preset, self.network = factory, preset, net
        self.x = factory.matrix(preset.in_dim, preset.batch, x)
        self.y = factory.matrix(preset.layers[-1][0], preset.batch, y)
        self.training = nnfs.training_network(net, self.x)
        self.cost = float("nan")
        self.products = steps(self.training.products())

    def held_bytes(self) -> int:
        return (self.network.parameters.nbytes + self.training.memory_bytes() + self.x.nbytes
                + self.y.nbytes)

    def epochs(self, count: int) -> None:
        self.cost = nnfs.sgd(self.training, self.y, nnfs.quadratic_cost, count, SGD_ETA)

    def floor(self, count: int) -> None:
        products = self.products
        for _ in range(count):
            for op in products:
                op()

    def release(self) -> None:
        for thing in (self.training, self.x, self.y):
            thing.release()


class FitWorkload:
    """Mini-batch ``fit`` on the preset's data, and the floor of its products.

    The floor of one epoch is the products of a full batch ``samples // batch`` times and
    those of the short last batch once, on a training network of the batch's size that shares
    the network's weights (read, never written), its buffers given real values by one
    forward pass and gradient first.

    :meth:`take_turns` times fit's epochs from inside one long fit (``on_epoch``), so that
    what fit does once per call (checking the data, allocating) is left out, as in a long
    run, and other runs (the floor, peers) take turns with its epochs."""

    def __init__(self, factory: nnfs.Factory, preset: Preset, net: nnfs.InferenceNetwork,
                 x: np.ndarray, labels: np.ndarray, seed: int = 0):
        self.factory, self.preset, self.network = factory, preset, net
        self.x, self.labels, self.seed = x, labels, seed
        self.cost = float("nan")
        self.allocations = 0
        batch, out_dim = preset.batch, preset.layers[-1][0]
        self._x = factory.matrix(preset.in_dim, batch, np.ascontiguousarray(x[:batch].T))
        one_hot = np.zeros((out_dim, batch), factory.numpy_dtype)
        one_hot[labels[:batch], np.arange(batch)] = 1.0
        self._y = factory.matrix(out_dim, batch, one_hot)
        self._training = nnfs.training_network(net, self._x)
        step = self._training.step(self._y, nnfs.cross_entropy_cost, -FIT_ETA / batch,
                                   separate_update=True)
        step.forward_cost()
        for op in step.gradient:
            op()
        full, rest = divmod(preset.samples, batch)
        self.plans = [(steps(self._training.products()), full)]
        if rest:
            self.plans.append((steps(self._training.narrowed(rest).products()), 1))

    def held_bytes(self) -> int:
        preset, itemsize = self.preset, self.factory.itemsize
        batch_data = (preset.in_dim + preset.layers[-1][0]) * preset.batch * itemsize
        training = nnfs.TrainingNetwork.plan_bytes(self.network, preset.batch)[0]
        return self.network.parameters.nbytes + training + batch_data

    def floor(self, count: int) -> None:
        for _ in range(count):
            for products, times in self.plans:
                for _ in range(times):
                    for op in products:
                        op()

    def take_turns(self, runs: dict[str, Callable[[int], float | None]], repeats: int,
                   epochs: int) -> dict[str, list[float]]:
        """Like :func:`take_turns`, with ``"nnfs"`` (fit's epochs) first in every turn: one
        fit of ``1 + repeats·epochs`` epochs, the first a warm-up; after it and after every
        ``epochs`` epochs, each of ``runs`` is called (with 1 after the warm-up, then with
        ``epochs``) and timed, and fit's next epochs are timed from the end of the last."""
        factory = self.factory
        times: dict[str, list[float]] = {"nnfs": [], **{name: [] for name in runs}}
        state = {"start": 0.0, "allocations": 0}

        def between(epoch: int, history: nnfs.History) -> None:
            factory.synchronize()
            now = time.perf_counter()
            if epoch > 1 and (epoch - 1) % epochs:
                return
            count = 1 if epoch == 1 else epochs
            if epoch == 1:
                state["allocations"] = factory.stats().allocations
            else:
                times["nnfs"].append((now - state["start"]) / epochs)
            for name, run in runs.items():
                start = time.perf_counter()
                own = run(count)
                factory.synchronize()
                wall = time.perf_counter() - start
                if epoch > 1:
                    times[name].append((wall if own is None else own) / epochs)
            state["start"] = time.perf_counter()

        history = nnfs.fit(self.network, self.x, self.labels, epochs=1 + repeats * epochs,
                           batch_size=self.preset.batch, eta=FIT_ETA, shuffle=True,
                           seed=self.seed, quiet=True, on_epoch=between)
        self.allocations = factory.stats().allocations - int(state["allocations"])
        self.cost = history.cost[-1]
        return times

    def release(self) -> None:
        for thing in (self._training, self._x, self._y):
            thing.release()


def run(preset_name: str | Preset, backend: str | None = None, dtype: str = "float32",
        epochs: int | None = None, repeats: int = 5, seed: int = 0,
        batch_size: int | None = None, factory: nnfs.Factory | None = None,
        **options: object) -> Result:
    """Build the preset's network, warm up, and time runs of epochs, each followed by the
    floor of the same epochs (``options`` go to the backend; ``factory`` replaces
    ``backend``, ``dtype`` and ``options``). ``preset_name`` may be a :class:`Preset`."""
    if isinstance(preset_name, Preset):
        chosen, preset_name = preset_name, "custom"
    else:
        chosen = preset(preset_name, batch_size)
    epochs = epochs or chosen.epochs
    if factory is None:
        factory = nnfs.backend(backend, dtype, **options)
    x, y = make_data(chosen, factory.numpy_dtype, seed)
    with network(factory, chosen, seed) as net:
        work: FitWorkload | SgdWorkload
        if chosen.minibatch:
            work = FitWorkload(factory, chosen, net, x, y, seed)
            try:
                times = work.take_turns({"floor": work.floor}, repeats, epochs)
                allocations = work.allocations
            finally:
                work.release()
        else:
            work = SgdWorkload(factory, chosen, net, x, y)
            try:
                before = factory.stats().allocations
                times = take_turns({"nnfs": work.epochs, "floor": work.floor}, repeats, epochs,
                                   factory.synchronize)
                allocations = factory.stats().allocations - before
            finally:
                work.release()
        held = work.held_bytes()
    seconds = statistics.median(times["nnfs"])
    floor_seconds = statistics.median(times["floor"])
    ratio = seconds / floor_seconds
    best, best_floor = min(times["nnfs"]), min(times["floor"])
    return Result(preset_name, factory.name, factory.dtype, epochs, repeats, seconds,
                  floor_seconds, ratio, epoch_flops(chosen) / seconds / 1e9, held, allocations,
                  work.cost, factory.describe(), chosen.batch,
                  list(zip(times["nnfs"], times["floor"], strict=True)), ratio_warning(ratio),
                  best, best_floor, best / best_floor)


def _time_text(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.2f} µs"


def report(result: Result) -> str:
    chosen = PRESETS.get(result.preset)
    shape = "" if chosen is None else ": " + replace(chosen, batch=result.batch_size).describe()
    lines = [
        f"nnfs bench {result.preset} on {result.backend} {result.dtype}{shape}",
        *([f"  on {result.factory}"] if result.factory else []),
        f"  per epoch (median of {result.repeats} runs of {result.epochs} epoch"
        f"{'s' if result.epochs > 1 else ''}, each followed by its floor): "
        f"{_time_text(result.seconds_per_epoch)}",
        f"  GEMM floor (the epoch's matrix products alone): "
        f"{_time_text(result.floor_seconds_per_epoch)}   ratio to floor: "
        f"{result.ratio_to_floor:.3f}×",
        f"  fastest run {_time_text(result.best_seconds_per_epoch)}, fastest floor "
        f"{_time_text(result.best_floor_seconds_per_epoch)}: ratio "
        f"{result.best_ratio_to_floor:.3f}×",
        f"  {result.gflops:.2f} GFLOP/s counted in the matrix products",
        f"  network holds {result.network_bytes / 2**20:.2f} MiB; allocations during the timed "
        f"epochs: {result.allocations_during_timing}",
        f"  cost after the last epoch: {result.cost:.6g}",
    ]
    if chosen is not None and chosen.note:
        lines.append(f"  ({chosen.note})")
    if result.warning:
        lines.append(f"  {result.warning}")
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
    if preset.minibatch:
        raise NnfsValueError(f"the data-parallel benchmark times the full-batch presets "
                             f"({', '.join(n for n, p in PRESETS.items() if not p.minibatch)}); "
                             f"{preset_name} is a mini-batch fit")
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

        history = nnfs.fit(net, X, Y, epochs=epochs, on_epoch=mark,
                           data_parallel=world if parallel else None, **options)
        (start, reduced), (stop, reduced_end) = marks[0], marks[-1]
        return (stop - start) / (epochs - 1), (reduced_end - reduced) / (epochs - 1), \
            history.cost[-1]

    with nnfs.inference_network(factory, preset.in_dim, layers, seed=seed) as net:
        nnfs.fit(net, X, Y, epochs=1, data_parallel=world, **options)  # warm up
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
