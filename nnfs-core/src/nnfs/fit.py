"""Mini-batch training over host data: ``fit`` and ``predict``.

Host data follows numpy and scikit-learn: one sample per **row** (``X`` is samples × features).
That is the memory layout of the device matrices (one sample per column, stored column by
column), so a batch is gathered on the host into a preallocated array and copied to the device
as it is. Everything is allocated when ``fit`` starts: the training network for ``batch_size``
samples, its input and target matrices, and host batch arrays; the short last batch of an epoch
runs on a narrowed view of the same buffers. No batch allocates memory.

One epoch driver runs both single-process and data-parallel training: it visits the batches
of each epoch and asks its *stepper* to train on each. The local stepper runs a
:class:`nnfs.TrainingStep` on the batch; the data-parallel stepper runs this rank's share of it,
sums the gradients across the ranks, then updates. The step's update is plain SGD inside the
products (``eta=``), or an optimizer's fused step (:mod:`nnfs.optimizers`), whose state is
allocated with the other buffers; a schedule (:mod:`nnfs.schedules`) sets each epoch's rate.
Between epochs the driver measures the validation data, steps the schedule, asks early
stopping (:class:`nnfs.EarlyStopping`) and ``on_epoch`` whether to go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _checks as check, checkpoints as _checkpoints
from .arrays import Matrix
from .callbacks import EarlyStopping, EarlyStoppingState, needs_validation
from .contract import steps
from .costs import Cost, cost as _cost, cross_entropy_cost, quadratic_cost
from .errors import (
    NnfsTypeError,
    NnfsValueError,
    ShapeError,
    TrainingDiverged,
    UnsupportedOperation,
)
from .hostdata import (
    Targets,
    accuracy,
    check_cross_entropy,
    fingerprint,
    sample_weights,
    samples,
    targets,
)
from .kinds import ActivationKind
from .network import InferenceNetwork, plan_memory
from .optimizers import SGD, Optimizer, OptimizerState, optimizer as _optimizer, state_sizes
from .schedules import Constant, Piecewise, Schedule, ScheduleRun, schedule as _schedule_of

if TYPE_CHECKING:
    from . import mpi
from .training import (
    HeldCtrlC,
    Releases,
    Rollback,
    TrainingNetwork,
    TrainingStep,
    dropout_seed,
    entropy as _entropy,
    learning_rate,
    quiet_floating_point,
    schedule_pairs,
)


@dataclass
class History:
    """What ``fit`` measured, one entry per epoch.

    ``cost``: the mean training cost of the epoch's batches (each measured in its forward pass,
    before its update). ``validation_cost`` and ``validation_accuracy``: on the validation data
    after the epoch, when it was given. ``eta``: the learning rate used. ``best_epoch``: the
    epoch (from 1) early stopping found best, when it was asked for. ``stopped_epoch``: the
    epoch after which training stopped before its last one (early stopping, or ``on_epoch``
    returning False), else None.
    """

    cost: list[float] = field(default_factory=list)
    validation_cost: list[float] = field(default_factory=list)
    validation_accuracy: list[float] = field(default_factory=list)
    eta: list[float] = field(default_factory=list)
    seconds: float = 0.0
    #: Processes that trained together (1, or the ranks of a data-parallel job).
    ranks: int = 1
    #: Of ``seconds``, the time this rank spent summing gradients across the ranks.
    allreduce_seconds: float = 0.0
    best_epoch: int | None = None
    stopped_epoch: int | None = None

    @property
    def epochs(self) -> int:
        return len(self.cost)

    def as_dict(self) -> dict[str, object]:
        return {"cost": self.cost, "validation_cost": self.validation_cost,
                "validation_accuracy": self.validation_accuracy, "eta": self.eta,
                "seconds": self.seconds, "ranks": self.ranks,
                "allreduce_seconds": self.allreduce_seconds, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch}


# --- fit's arguments, checked -------------------------------------------------------------------

@dataclass(frozen=True)
class FitArguments:
    """fit's arguments, checked and converted, before anything is allocated."""

    network: InferenceNetwork
    x: np.ndarray
    target: Targets
    epochs: int
    optimizer: Optimizer
    schedule: Schedule
    batch_size: int
    cost: Cost
    shuffle: bool
    seed: int | None
    validation: tuple[np.ndarray, Targets] | None
    quiet: bool
    on_epoch: Callable[[int, History], object] | None
    early_stopping: EarlyStopping | None = None
    checkpoint: _checkpoints.Checkpoints | None = None
    resume: _checkpoints.Resume | None = None

    @property
    def weighted(self) -> bool:
        return self.target.weights is not None

    @property
    def fused(self) -> bool:
        """Plain SGD at rates known beforehand: each distinct rate gets its own prepared
        step, whose update runs inside the products (as sgd's). Otherwise the optimizer's
        fused step runs after the gradient, reading each epoch's rate from its host array."""
        return self.optimizer.plain and isinstance(self.schedule, (Piecewise, Constant))

    def start_schedule(self) -> ScheduleRun:
        return self.schedule.start(self.optimizer.eta, self.epochs)

    def dropout_key(self, seed: int | None) -> int:
        """The key of dropout's masks: the checkpoint's when resuming, else from ``seed``."""
        if self.resume is not None:
            return int(self.resume.entries["checkpoint_seeds"][1])
        return dropout_seed(seed, "fit")

    def host_arrays(self) -> list[np.ndarray]:
        """Every host array batches are gathered from."""
        arrays = [self.x] + ([] if self.target.values is None else [self.target.values])
        if self.validation is not None:
            xv, yv = self.validation
            arrays += [xv] + ([] if yv.values is None else [yv.values])
        return arrays


#: The learning rate of plain SGD when fit is given neither eta nor an optimizer.
DEFAULT_ETA = 0.1


def _training_plan(epochs: object, eta: object, optimizer: object,
                   schedule: object) -> tuple[int, Optimizer, Schedule]:
    """The epochs, the optimizer and the schedule that fit's arguments ask for: ``eta`` (a
    rate, or (epochs, eta) pairs) is the shorthand of plain SGD; an optimizer carries its own
    rate, which a schedule may then change epoch by epoch."""
    if optimizer is not None:
        optimizer = _optimizer(optimizer, "fit: optimizer")
        if eta is not None:
            raise NnfsValueError(
                f"fit: give the learning rate once: in the optimizer ({type(optimizer).__name__}"
                f"(eta=...)), or as a schedule (schedule=...), not also as eta={eta!r}")
    given = None if schedule is None else _schedule_of(schedule, "fit")
    if isinstance(eta, Sequence) and not isinstance(eta, (str, bytes)):
        if given is not None:
            raise NnfsValueError("fit: give one schedule: (epochs, eta) pairs as eta, or "
                                 "schedule=...; not both")
        given = Piecewise(tuple(schedule_pairs(eta, None, "fit")))
        eta, source = None, "the schedule given as eta"
    else:
        source = "the schedule"
    if optimizer is None:
        if eta is None:
            eta = given.pairs[0][1] if isinstance(given, Piecewise) else DEFAULT_ETA
        optimizer = SGD(learning_rate(eta, "fit: eta"))
    given = given if given is not None else Constant()
    if given.epochs is not None and not isinstance(given, Piecewise) and epochs is None:
        epochs = given.epochs
    if isinstance(given, Piecewise):
        if epochs is not None and check.count(epochs, "fit: epochs") != given.epochs:
            raise NnfsValueError(
                f"fit: epochs is {epochs} but {source} has {given.epochs} epochs; give "
                "one of them")
        epochs = given.epochs
    if epochs is None:
        raise NnfsTypeError("fit: give epochs (and eta), or a schedule of (epochs, eta) pairs as "
                            f"eta; got epochs=None and eta={eta!r}")
    epochs = check.count(epochs, "fit: epochs")
    given.start(optimizer.eta, epochs)  # refuses what cannot run (a cosine floor above eta)
    return epochs, optimizer, given


def _default_cost(inference: InferenceNetwork) -> Cost:
    last = inference.layers[-1].activation.kind
    sigmoid_or_softmax = last in (ActivationKind.SIGMOID, ActivationKind.SOFTMAX)
    return cross_entropy_cost if sigmoid_or_softmax else quadratic_cost


def _check_seed(seed: object, what: str) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise NnfsTypeError(f"{what}: seed must be an int or None, got {seed!r}")
    if seed is not None and seed < 0:
        raise NnfsValueError(f"{what}: seed must be non-negative, got {seed}")
    return None if seed is None else int(seed)


def _checked(inference: Any, X: Any, Y: Any, epochs: Any, batch_size: Any, eta: Any, cost: Any,
             shuffle: Any, seed: Any, validation: Any, quiet: Any, on_epoch: Any,
             sample_weight: Any, optimizer: Any = None, schedule: Any = None,
             early_stopping: Any = None, checkpoint: Any = None,
             resume: Any = None) -> FitArguments:
    """fit's arguments, checked and converted."""
    if not isinstance(inference, InferenceNetwork):
        raise NnfsTypeError(
            f"fit: inference must be made by nnfs.inference_network, got {type(inference).__name__}"
        )
    check.live(inference, "fit: inference")
    dtype = inference.factory.numpy_dtype
    x = samples(X, "fit: X", inference.in_dim, dtype)
    target = targets(Y, "fit: Y", inference.out_dim, dtype)
    if len(target) != len(x):
        raise ShapeError(f"fit: X has {len(x)} samples (rows) but Y has {len(target)}; "
                         "they must have one row each per sample")
    if sample_weight is not None:
        target = dataclasses.replace(
            target, weights=sample_weights(sample_weight, "fit: sample_weight", len(x)))
        if target.weights is not None and "mul" in inference.factory.unsupported:
            raise UnsupportedOperation(
                f"fit: sample_weight needs the elementwise product (mul), which the "
                f"{inference.factory.name} backend declares unsupported")
    batch_size = check.count(batch_size, "fit: batch_size")
    if batch_size > len(x):
        raise NnfsValueError(
            f"fit: batch_size is {batch_size} but X has only {len(x)} samples; "
            f"give at most {len(x)}"
        )
    cost = _default_cost(inference) if cost is None else _cost(cost, "fit: cost")
    output = inference.layers[-1].activation
    cost.check_output(output)
    if cost is cross_entropy_cost:
        check_cross_entropy(target, output.kind, "fit: Y")
    epochs, optimizer, schedule = _training_plan(epochs, eta, optimizer, schedule)
    seed = _check_seed(seed, "fit")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise NnfsTypeError(f"fit: early_stopping must be nnfs.EarlyStopping(...), got "
                            f"{type(early_stopping).__name__} {early_stopping!r}")
    for user, what in ((early_stopping, "early stopping"), (schedule, "the schedule")):
        monitor = getattr(user, "monitor", None)
        if monitor is not None and needs_validation(monitor) and validation is None:
            raise NnfsValueError(
                f"fit: {what} monitors {monitor}, which needs validation data: give "
                f"validation=(Xv, yv), or monitor='cost' (the training cost)")
    if on_epoch is not None and not callable(on_epoch):
        raise NnfsTypeError("fit: on_epoch must be a function called as on_epoch(epoch, "
                            f"history), got {type(on_epoch).__name__} {on_epoch!r}")
    checked_validation = None
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise NnfsTypeError(f"fit: validation must be a pair (Xv, Yv), got "
                                f"{type(validation).__name__}"
                                + (f" of {len(validation)}" if isinstance(validation, (tuple, list))
                                   else ""))
        xv = samples(validation[0], "fit: validation X", inference.in_dim, dtype)
        yv = targets(validation[1], "fit: validation Y", inference.out_dim, dtype)
        if len(xv) != len(yv):
            raise ShapeError(f"fit: validation X has {len(xv)} samples but validation Y has "
                             f"{len(yv)}; they must have one row each per sample")
        if cost is cross_entropy_cost:
            check_cross_entropy(yv, output.kind, "fit: validation Y")
        checked_validation = (xv, yv)
    checkpoint = _checkpoints.checkpoints(checkpoint)
    if checkpoint is not None:
        from .io import check_writable

        check_writable(checkpoint.path, "fit: checkpoint")
    arguments = FitArguments(inference, x, target, epochs, optimizer, schedule, batch_size, cost,
                             bool(shuffle), seed, checked_validation, bool(quiet), on_epoch,
                             early_stopping, checkpoint)
    factory = inference.factory
    lacking = sorted({"dropout_mask", "mul"} & factory.unsupported)
    if lacking and any(layer.dropout for layer in inference.layers):
        raise UnsupportedOperation(
            f"fit: the {factory.name} backend does not provide {', '.join(lacking)}, which "
            "dropout needs (declared unsupported): dropout needs dropout_mask and mul; train "
            "without dropout on it, or choose another backend")
    if not arguments.fused and "optimizer_step" in factory.unsupported:
        raise UnsupportedOperation(
            f"fit: the {factory.name} backend does not provide optimizer_step, which the "
            f"{optimizer.kind} optimizer (or a schedule other than (epochs, eta) pairs) needs; "
            "train with plain SGD (eta=...) on it, or choose another backend")
    # everything fit allocates, checked at once before any of it is allocated
    plan = plan_memory(factory, inference.in_dim, inference.architecture, batch_size)
    itemsize = factory.itemsize
    extra = [] if target.weights is None else [inference.out_dim * batch_size]
    if not arguments.fused:
        extra += state_sizes(optimizer, inference.parameter_count)
    if early_stopping is not None and early_stopping.restore_best:
        extra.append(inference.parameter_count)
    factory.check_fits(plan.training + plan.batch_data + sum(extra) * itemsize,
                       max(plan.largest_allocation, max(extra, default=0) * itemsize),
                       f"fit: training with batch_size {batch_size}")
    if resume is not None:  # read and checked against this fit before anything is allocated
        arguments = dataclasses.replace(arguments, resume=_checkpoints.read(resume, arguments))
    return arguments


# --- moving batches to the device ---------------------------------------------------------------

def _in_order(arguments: FitArguments, order: np.ndarray) -> bool:
    """Whether every batch will be consecutive rows of the data: no shuffling, and the order
    (a resumed run's, from its checkpoint) the data's own."""
    return not arguments.shuffle and bool(np.array_equal(order, np.arange(len(order))))


class _Batches:
    """Preallocated host and device buffers that move batches of host data to the device.

    A batch's rows go to the device with the backend's ``write_rows``: gathered straight into
    the device matrix where the device's memory is host memory (the CPU backend), else through
    one host staging array. When the batches are consecutive rows (``in_order``: an epoch in
    the data's own order, and validation), the rows are written as they are, with no gather.
    Class labels become one-hot columns the same way, as rows of an identity matrix. Arrays of
    another dtype than the network's, or not C-ordered, are gathered and converted on the host
    first. Nothing here allocates once it is built."""

    def __init__(self, training: TrainingNetwork, y_device: Matrix, cost: Cost,
                 arrays: list[np.ndarray], w_device: Matrix | None = None,
                 in_order: bool = False):
        self.training = training
        self.factory = training.factory
        self.backend = training.factory.backend
        self.cost = cost
        self.in_order = in_order
        batch_size = training.batch_size
        dtype = self.factory.numpy_dtype
        out_dim = training.inference.out_dim
        self.x_host = np.empty((batch_size, training.inference.in_dim), dtype)
        self.y_host = np.empty((batch_size, out_dim), dtype)
        #: one-hot rows: row k is the target of label k
        self.identity = np.eye(out_dim, dtype=dtype)
        # arrays of another dtype (or layout) are gathered into these, then converted into the
        # above; the others go to write_rows as they are
        self.raw: dict[tuple[Any, ...], np.ndarray] = {}
        self.direct: dict[int, bool] = {}
        for array in arrays:
            direct = array.dtype == dtype and array.flags.c_contiguous
            self.direct[id(array)] = direct
            if not direct:
                self.raw.setdefault((array.dtype, array.shape[1]),
                                    np.empty((batch_size, array.shape[1]), array.dtype))
        self.labels = np.empty(batch_size, np.int64)
        self.y_device = y_device
        # per batch size: the training network and the target and weight matrices
        self._networks: dict[int, tuple[TrainingNetwork, Matrix, Matrix | None]] = {}
        self._steps: dict[tuple[Any, ...], TrainingStep] = {}
        # sample weights: each sample's weight in every row of its column (out_dim × batch), so
        # that one elementwise product scales the output δ column by column
        self.w_device = w_device
        if w_device is not None:
            self.w_samples = np.empty(batch_size, np.float64)
            self.w_host = np.empty((batch_size, out_dim), dtype)

    def _buffers(self, count: int) -> tuple[TrainingNetwork, Matrix, Matrix | None]:
        """The training network, target and weight matrices of a batch of ``count``."""
        found = self._networks.get(count)
        if found is None:
            whole = count == self.training.batch_size
            y = self.y_device if whole else self.y_device.columns(0, count)
            w = self.w_device
            if w is not None and not whole:
                w = w.columns(0, count)
            found = self._networks[count] = (self.training.narrowed(count), y, w)
        return found

    def network(self, count: int) -> tuple[TrainingNetwork, Matrix]:
        """The training network and target matrix for a batch of ``count`` samples."""
        network, y, _ = self._buffers(count)
        return network, y

    def weights(self, count: int) -> Matrix | None:
        """The sample-weight matrix for a batch of ``count`` samples; None when unweighted."""
        return self._buffers(count)[2]

    def step(self, count: int, scale: float, separate_update: bool = False,
             weighted: bool = True, optimizer: OptimizerState | None = None) -> TrainingStep:
        """The training step of a batch of ``count`` samples whose gradient is scaled by
        ``scale`` (and each sample's by its weight, when the data has weights and
        ``weighted``), updated by ``optimizer``'s step when given."""
        key = (count, scale, separate_update, weighted, optimizer)
        found = self._steps.get(key)
        if found is None:
            network, y, w = self._buffers(count)
            found = self._steps[key] = network.step(
                y, self.cost, scale, separate_update=separate_update,
                weights=w if weighted else None, optimizer=optimizer)
        return found

    def _write(self, source: np.ndarray, index: np.ndarray, rows: np.ndarray | slice,
               staging: np.ndarray, matrix: Matrix) -> None:
        """Rows ``index`` of ``source`` (``rows``: the same, as a slice when consecutive)
        into ``matrix``, through ``staging`` where they must be converted."""
        if self.direct.get(id(source), False):
            self.backend.write_rows(source, rows, matrix, staging)
            return
        raw = self.raw[(source.dtype, source.shape[1])][:len(index)]
        if isinstance(rows, slice):
            np.copyto(raw, source[rows])
        else:
            source.take(index, axis=0, out=raw, mode="wrap")
        np.copyto(staging, raw)
        self.backend.write_samples(staging, matrix)

    def load(self, x: np.ndarray, target: Targets | None, index: np.ndarray,
             consecutive: bool | None = None) -> None:
        """Copy the samples ``index`` of ``x`` (and their targets) into the device matrices of
        a batch of ``len(index)``. ``consecutive``: whether ``index`` is consecutive rows
        (default: the batches' ``in_order``)."""
        count = len(index)
        network, y, w = self._buffers(count)
        if consecutive is None:
            consecutive = self.in_order
        # the rows as a slice when consecutive: written as they are, with no gather
        rows = slice(int(index[0]), int(index[0]) + count) if consecutive else index
        self._write(x, index, rows, self.x_host[:count], network.input)
        if target is None:
            return
        if target.labels is not None:  # one-hot: the labels' rows of the identity
            if consecutive:
                labels = target.labels[rows]
            else:
                labels = self.labels[:count]
                target.labels.take(index, out=labels, mode="wrap")
            self.backend.write_rows(self.identity, labels, y, self.y_host[:count])
        else:
            assert target.values is not None  # a target is labels or values
            self._write(target.values, index, rows, self.y_host[:count], y)
        if target.weights is not None and w is not None:
            ws = self.w_host[:count]
            target.weights.take(index, out=self.w_samples[:count], mode="wrap")
            ws[...] = self.w_samples[:count, None]
            self.backend.write_samples(ws, w)

    def evaluate(self, x: np.ndarray, target: Targets, first: int,
                 stop: int) -> tuple[float, int]:
        """Summed cost and right answers of the network on the samples ``first`` to
        ``stop − 1`` of ``x``, through the training buffers."""
        backend = self.factory.backend
        batch_size = self.training.batch_size
        outputs = np.empty((batch_size, target.outputs), self.factory.numpy_dtype)
        total, right = 0.0, 0
        index = np.arange(first, stop)
        for start in range(0, len(index), batch_size):
            rows = index[start:start + batch_size]
            self.load(x, target, rows, consecutive=True)
            step = self.step(len(rows), 1.0, weighted=False)
            for op in step.network.evaluation_plan:  # without dropout
                op()
            total += len(rows) * step.cost()
            predicted = outputs[:len(rows)]
            backend.read_samples(step.network.output, predicted)
            right += accuracy(predicted, target, rows)
        return total, right


# --- where a fit stands between epochs -----------------------------------------------------------

@dataclass(eq=False)
class _Progress:
    """What a fit carries from epoch to epoch, beside the weights: the epochs and steps done
    (the step numbers dropout's masks are drawn for), the visiting order and the generator
    that shuffles it, the running schedule, the optimizer's state and early stopping's."""

    epoch: int
    steps: int
    order: np.ndarray
    rng: np.random.Generator
    schedule: ScheduleRun
    optimizer: OptimizerState | None
    stopping: EarlyStoppingState | None
    #: Writes the checkpoint of the fit as it stands (set when fit writes checkpoints).
    write_checkpoint: Callable[[], object] | None = None

    @classmethod
    def start(cls, arguments: FitArguments, training: TrainingNetwork, seed: int | None,
              stack: contextlib.ExitStack) -> _Progress:
        """The progress of a fit about to start, its device state allocated (and released
        by ``stack``)."""
        optimizer = stopping = None
        if not arguments.fused:
            optimizer = OptimizerState.start(arguments.optimizer, training)
            stack.callback(optimizer.release)
        if arguments.early_stopping is not None:
            stopping = EarlyStoppingState.start(arguments.early_stopping, training)
            stack.callback(stopping.release)
        return cls(0, 0, np.arange(len(arguments.x)), np.random.default_rng(seed),
                   arguments.start_schedule(), optimizer, stopping)

    def resume(self, arguments: FitArguments, training: TrainingNetwork,
               history: History) -> None:
        """Continue from the checkpoint fit was asked to resume, if any."""
        if arguments.resume is not None:
            _checkpoints.restore(arguments.resume, arguments, training, self, history)


# --- steppers: what one batch of training is, in one process or across ranks -------------------

class _LocalStepper:
    """Training in one process: each batch's cost is read in its forward pass and checked
    before its update.

    Divergence: when a batch's cost is not finite, the update before it made the weights bad,
    so the weights put back are those the batch before it was trained on. The checkpoint is
    taken at each epoch's first batch, once its cost is known to be finite, and the batches
    from there are replayed (:class:`nnfs.training.Rollback`, which also puts back the
    optimizer's state)."""

    ranks = 1

    def __init__(self, arguments: FitArguments, batches: _Batches, progress: _Progress):
        self.arguments = arguments
        self.batches = batches
        self.progress = progress
        self.optimizer = progress.optimizer
        self.rollback = Rollback(batches.training, self.optimizer)
        # (order, eta, steps done) of the backup
        self.checkpoint: tuple[np.ndarray, float, int] | None = None
        self._checkpoint_order = np.empty(len(arguments.x), np.int64)

    def start_epoch(self, eta: float) -> None:
        """Before an epoch at learning rate ``eta``."""
        if self.optimizer is not None:
            self.optimizer.eta = eta

    def _step(self, count: int, eta: float) -> TrainingStep:
        """The step of a batch of ``count``: plain SGD at ``eta`` inside the products, or the
        gradient of the mean loss and the optimizer's step."""
        if self.optimizer is None:
            return self.batches.step(count, -eta / count)
        return self.batches.step(count, 1.0 / count, optimizer=self.optimizer)

    def batch(self, epoch: int, number: int, index: np.ndarray, order: np.ndarray,
              eta: float) -> float:
        """Train on the batch ``index`` (batch ``number`` of ``epoch``); its summed cost."""
        batches, count = self.batches, len(index)
        batches.load(self.arguments.x, self.arguments.target, index)
        batches.training.set_dropout_step(self.progress.steps)
        step = self._step(count, eta)
        value = step.forward_cost()
        if not math.isfinite(value):
            raise self._diverged(epoch, number, eta, value)
        if number == 0:  # weights whose cost is known to be finite
            self.rollback.save()
            np.copyto(self._checkpoint_order, order)
            self.checkpoint = (self._checkpoint_order, eta, self.progress.steps)
        step.descend()
        self.progress.steps += 1
        return count * value

    def _redo(self, i: int) -> None:
        assert self.checkpoint is not None  # a backup was taken before any batch
        order, eta, first_step = self.checkpoint
        size = self.arguments.batch_size
        index = order[i * size:(i + 1) * size]
        self.batches.load(self.arguments.x, self.arguments.target, index)
        self.batches.training.set_dropout_step(first_step + i)
        self.start_epoch(eta)
        self._step(len(index), eta).run()

    def _batches_per_epoch(self) -> int:
        return -(-len(self.arguments.x) // self.arguments.batch_size)

    def _diverged(self, epoch: int, number: int, eta: float, value: float) -> TrainingDiverged:
        per_epoch = self._batches_per_epoch()
        if number > 0:  # back to batch number − 1 of this epoch
            self.rollback.replay(number - 1, self._redo)
            where = f"batch {number} of epoch {epoch}"
        elif self.checkpoint is not None:  # back to the last batch of the epoch before
            self.rollback.replay(per_epoch - 1, self._redo)
            where = f"batch {per_epoch} of epoch {epoch - 1}"
        else:
            where = ""
        if where:
            self.batches.factory.synchronize()
        weights = (f"the weights are those of {where}, the last batch whose cost was finite"
                   if where else "the weights are those fit was called with")
        return TrainingDiverged(
            f"fit: training diverged in epoch {epoch} at learning rate eta={eta}: the cost "
            f"of batch {number + 1} of {per_epoch} is {value}; {weights}. Try a smaller eta.",
            epoch, eta,
        )

    def evaluate(self, x: np.ndarray, target: Targets) -> tuple[float, float]:
        total, right = self.batches.evaluate(x, target, 0, len(x))
        return total / len(x), right / len(x)

    def end_epoch(self, epoch: int) -> None:
        """After an epoch: nothing to compare in one process."""

    def finish(self, epoch: int, eta: float) -> None:
        """After the last batch: its update is checked by no later forward pass."""
        if not self.rollback.parameters_finite():
            per_epoch = self._batches_per_epoch()
            self.rollback.replay(per_epoch - 1, self._redo)
            raise TrainingDiverged(
                f"fit: training diverged in epoch {epoch} at learning rate eta={eta}: the "
                f"update of its last batch left parameters that are not finite; the weights "
                f"are those of batch {per_epoch} of epoch {epoch}, the last batch whose cost "
                "was finite. Try a smaller eta.", epoch, eta)


class _DataParallelStepper:
    """Training across the ranks of an MPI job: each global batch of ``ranks × batch_size``
    samples is split into consecutive shares; this rank computes the gradient of its share,
    one allreduce sums gradients and costs, and every rank applies the same update (plain
    SGD's, or the same optimizer step on the same state), unless the summed cost is not
    finite: then training stops before that update, on every rank. Dropout's masks are drawn
    for each sample's place in the global batch, so they are those of one process."""

    def __init__(self, arguments: FitArguments, batches: _Batches, world: Any, summed: Any,
                 progress: _Progress):
        self.arguments = arguments
        self.batches = batches
        self.world = world
        self.summed = summed
        self.ranks = world.size
        self.progress = progress
        self.optimizer = progress.optimizer
        self.rollback = Rollback(batches.training, self.optimizer)
        training = batches.training
        backend = training.factory.backend
        self._zero = tuple(steps(backend.fill(training.gradient, 0.0)))
        if self.optimizer is None:
            self._update = tuple(steps(backend.axpy(1.0, training.gradient,
                                                    training.inference.parameters)))
        else:
            self._update = self.optimizer.steps()
        self.scores = np.zeros(2)  # validation: summed cost, right answers
        self._last: tuple[np.ndarray, float, int] | None = None  # the last epoch's order, eta
        self._last_order = np.empty(len(arguments.x), np.int64)

    def start_epoch(self, eta: float) -> None:
        if self.optimizer is not None:
            self.optimizer.eta = eta

    def batch(self, epoch: int, number: int, index: np.ndarray, order: np.ndarray,
              eta: float) -> float:
        """This rank's share of the global batch ``index``; the cost summed over the ranks."""
        if number == 0:
            self.rollback.save()
            np.copyto(self._last_order, order)
            self._last = (self._last_order, eta, self.progress.steps)
        batch_cost = self.summed(self._gradient(index, eta, self.progress.steps))
        if not math.isfinite(batch_cost):
            raise TrainingDiverged(
                f"training diverged in epoch {epoch} at learning rate eta={eta}: a "
                f"batch's cost, summed over the {self.ranks} ranks, is {batch_cost}; the "
                "weights are those before that batch. Try a smaller eta.", epoch, eta)
        for op in self._update:
            op()
        self.progress.steps += 1
        return batch_cost

    def _gradient(self, index: np.ndarray, eta: float, step_number: int) -> float:
        """This rank's share of a global batch: forward and gradient into the gradient
        vector; its cost sum."""
        size = len(index)
        first, count = _share(size, self.ranks, self.world.rank)
        if not count:  # a short last batch with fewer samples than ranks
            for op in self._zero:
                op()
            return 0.0
        batches = self.batches
        batches.load(self.arguments.x, self.arguments.target, index[first:first + count])
        batches.training.set_dropout_step(step_number, first)
        # gradient · (−η / samples of the whole global batch), or of the mean loss of it
        if self.optimizer is None:
            step = batches.step(count, -eta / size, separate_update=True)
        else:
            step = batches.step(count, 1.0 / size, separate_update=True,
                                optimizer=self.optimizer)
        local = count * step.forward_cost()
        for op in step.gradient:
            op()
        return local

    def evaluate(self, x: np.ndarray, target: Targets) -> tuple[float, float]:
        first, count = _share(len(x), self.ranks, self.world.rank)
        self.scores[:] = 0.0
        if count:
            self.scores[:] = self.batches.evaluate(x, target, first, first + count)
        self.world.comm.Allreduce(self.world._mpi.IN_PLACE, self.scores, op=self.world._mpi.SUM)
        return float(self.scores[0]) / len(x), float(self.scores[1]) / len(x)

    def end_epoch(self, epoch: int) -> None:
        self.summed.check_same(self.batches.training.inference.parameters,
                               f"after epoch {epoch}")

    def _redo(self, i: int) -> None:
        assert self._last is not None  # an epoch started before any batch
        order, eta, first_step = self._last
        step = self.arguments.batch_size * self.ranks
        self.start_epoch(eta)
        self.summed(self._gradient(order[i * step:(i + 1) * step], eta, first_step + i))
        for op in self._update:
            op()

    def finish(self, epoch: int, eta: float) -> None:
        """After the last batch: its update is checked by no later forward pass. Every rank
        holds the same parameters, so every rank decides the same."""
        if not self.rollback.parameters_finite():
            per_epoch = -(-len(self.arguments.x) // (self.arguments.batch_size * self.ranks))
            self.rollback.replay(per_epoch - 1, self._redo)
            raise TrainingDiverged(
                f"training diverged in epoch {epoch} at learning rate eta={eta}: the update "
                "of its last batch left parameters that are not finite; the weights are those "
                "before that update. Try a smaller eta.", epoch, eta)


# --- the epoch driver ---------------------------------------------------------------------------

def _progress_bar(total: int, quiet: bool) -> Any:  # a tqdm bar, or None
    if quiet:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the progress extra is not installed: train without a bar
        return None
    # disable=None: no bar when stderr is not a terminal, so logs get no carriage returns
    return tqdm(total=total, unit="epoch", disable=None, leave=False, dynamic_ncols=True)


def _postfix(history: History) -> dict[str, str]:
    shown = {"cost": f"{history.cost[-1]:.4g}"}
    if history.validation_accuracy:
        shown["val_acc"] = f"{history.validation_accuracy[-1]:.4f}"
    return shown


def _write_checkpoint(stepper: _LocalStepper | _DataParallelStepper,
                      progress: _Progress) -> None:
    """Write the checkpoint, unless the last update left weights that are not finite: that
    divergence is found when the stepper finishes (or at the next batch), and the file keeps
    the last checkpoint whose weights were finite (nnfs.load refuses others)."""
    if stepper.rollback.parameters_finite():
        assert progress.write_checkpoint is not None  # set whenever checkpoints are written
        progress.write_checkpoint()


def _epochs(arguments: FitArguments, stepper: _LocalStepper | _DataParallelStepper,
            history: History, bar: Any, held: HeldCtrlC, progress: _Progress) -> None:
    """Every epoch from where ``progress`` stands: the learning rate from the schedule, the
    batches in a (shuffled) order, each trained by the stepper; then validation, the
    schedule's and early stopping's look at the history, the progress bar, ``on_epoch`` and
    Ctrl-C. Early stopping or ``on_epoch`` returning False ends training after the epoch."""
    n = len(arguments.x)
    step = arguments.batch_size * stepper.ranks
    order, rng = progress.order, progress.rng
    releases = Releases(stepper.batches.training, "fit")
    lock = releases.lock
    epoch, eta = None, 0.0
    for epoch in range(progress.epoch + 1, arguments.epochs + 1):
        eta = progress.schedule.eta(epoch)
        stepper.start_epoch(eta)
        if arguments.shuffle:
            rng.shuffle(order)
        total = 0.0
        for number, start in enumerate(range(0, n, step)):
            with lock:
                releases.check()
                total += stepper.batch(epoch, number, order[start:start + step], order, eta)
            if held.pending:
                raise KeyboardInterrupt
        history.cost.append(total / n)
        history.eta.append(eta)
        if arguments.validation is not None:
            with lock:
                releases.check()
                cost_value, right = stepper.evaluate(*arguments.validation)
            history.validation_cost.append(cost_value)
            history.validation_accuracy.append(right)
        stepper.end_epoch(epoch)
        progress.schedule.observe(epoch, history)
        stop = False
        if progress.stopping is not None:
            with lock:  # keeping the best weights is a copy on the device
                releases.check()
                stop = progress.stopping.observe(epoch, history)
            history.best_epoch = progress.stopping.best_epoch
        progress.epoch = epoch
        writes = arguments.checkpoint is not None and (
            epoch % arguments.checkpoint.every == 0 or stop or epoch == arguments.epochs)
        if writes:
            with lock:
                releases.check()
                _write_checkpoint(stepper, progress)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(_postfix(history), refresh=False)
        if arguments.on_epoch is not None and arguments.on_epoch(epoch, history) is False:
            stop = True
            if arguments.checkpoint is not None and not writes:
                with lock:
                    releases.check()
                    _write_checkpoint(stepper, progress)
        if held.pending:
            raise KeyboardInterrupt
        if stop:
            history.stopped_epoch = epoch
            break
    with lock:
        releases.check()
        if epoch is not None:
            stepper.finish(epoch, eta)
        if progress.stopping is not None:
            progress.stopping.finish()


def fit(inference: InferenceNetwork, X: object, Y: object, *, epochs: int | None = None,
        batch_size: int = 32, eta: float | Sequence[tuple[int, float]] | None = None,
        optimizer: Optimizer | None = None, schedule: object = None,
        cost: Cost | str | None = None, shuffle: bool = True, seed: int | None = None,
        validation: tuple[object, object] | None = None, quiet: bool = False,
        on_epoch: Callable[[int, History], object] | None = None,
        early_stopping: EarlyStopping | None = None,
        checkpoint: str | os.PathLike[str] | _checkpoints.Checkpoints | None = None,
        resume: object = None, data_parallel: object = None,
        sample_weight: object = None) -> History:
    """Train ``inference`` by mini-batch gradient descent on host data; return the history.

    Args:
        X: samples × inputs (numpy and scikit-learn's convention), any size.
        Y: class labels (1-D integers, for a network of several outputs) or samples × outputs.
        epochs, eta: epochs at one learning rate of plain SGD (0.1 when neither eta nor an
            optimizer is given), or ``eta=[(epochs, eta), ...]``, a schedule as in ``sgd``.
        optimizer: an optimizer of :mod:`nnfs.optimizers` (``SGD(0.1, momentum=0.9)``,
            ``Adam()``, ``AdamW()``), which carries its own learning rate; its state is
            allocated with the other buffers, and each step is one fused pass of the backend.
        schedule: the learning rate of each epoch, for any optimizer: (epochs, eta) pairs,
            or a :mod:`nnfs.schedules` object (``StepDecay``, ``Cosine``,
            ``ReduceOnPlateau``) scaling the optimizer's rate.
        batch_size: samples per update; the last batch of an epoch may be shorter.
        cost: ``cross_entropy_cost`` by default for sigmoid and softmax outputs, else
            ``quadratic_cost``.
        shuffle, seed: visit the samples in a new random order each epoch (reproducible with
            a seed), or in their order. The seed also keys dropout's masks.
        validation: ``(Xv, Yv)`` measured after every epoch (cost and accuracy), without
            dropout.
        quiet: no progress bar (there is none either when stderr is not a terminal).
        on_epoch: called as ``on_epoch(epoch, history)`` after each epoch (epoch from 1);
            returning False stops training there, with the history so far.
        early_stopping: :class:`nnfs.EarlyStopping`, stopping once its monitored figure has
            not improved for ``patience`` epochs (and restoring the best epoch's weights);
            ``History.best_epoch`` and ``History.stopped_epoch`` say what happened.
        checkpoint: a file path, or ``nnfs.checkpoints.Checkpoints(path, every=N)``: after
            every epoch (every N, and the last), the weights, the optimizer's state, the
            schedule's position, the epoch, the shuffling state, early stopping's state and
            the history so far, written whole or not at all (see :mod:`nnfs.checkpoints`).
        resume: a checkpoint to continue from: the run goes on from its epoch to ``epochs``
            and ends as the uninterrupted run would (bit for bit on the cpu backend); the
            history includes its epochs. A checkpoint of another architecture, dtype,
            optimizer, schedule, early stopping, batch size or data is refused before any
            work.
        data_parallel: ``nnfs.mpi.world()`` (or True) to train across the ranks of an MPI job,
            each on its own share of every batch (see below).
        sample_weight: one weight (0 or more) per sample of X, multiplying its loss; scaled to
            a mean of 1, so that ``η`` keeps its meaning. The output δ of each batch is scaled
            column by column (one elementwise product with a matrix of the weights, allocated
            with the other buffers); the costs in the history stay unweighted. Not with
            ``data_parallel`` yet.

    With plain SGD each batch updates every parameter by ``−(η/b)·Σ ∂ℓ/∂p`` over its b
    samples; an optimizer takes the gradient of the batch's mean loss, ``(1/b)·Σ ∂ℓ/∂p``, as
    ``torch.optim`` does. When a batch's cost is NaN or infinite, or the last update leaves a
    parameter that is not finite, training stops with :class:`nnfs.TrainingDiverged`, with
    the weights (and optimizer state) of the last batch whose cost was finite (in one
    process; data-parallel training stops before the update of the batch whose summed cost is
    not finite).

    Ctrl-C (``KeyboardInterrupt``) stops training at the end of the batch it arrives in: the
    network holds the weights of the last whole batch, and inference and training work on from
    there. A second Ctrl-C interrupts at once.

    **Data-parallel.** Started on N ranks (``mpiexec -n N python train.py``), with the whole
    data set and the same arguments on every rank, ``fit(..., data_parallel=world)`` trains as
    one process would with ``batch_size`` N·b: every epoch visits the samples in one order
    shared by all ranks (the seed is rank 0's), each global batch of N·b samples is split into
    N consecutive shares, each rank computes the gradient of its own share only (batches read
    only those rows of X, so X can be a memory-mapped ``.npy`` file), one allreduce per batch
    sums the gradients and the costs, and every rank applies the same update (any optimizer:
    each rank holds the same state). Rank 0's weights are given to every rank first; after each
    epoch the ranks check that they still hold the same weights. The history is the same on
    every rank; the progress bar shows on rank 0.
    """
    def checked() -> FitArguments:
        return _checked(inference, X, Y, epochs, batch_size, eta, cost, shuffle, seed,
                        validation, quiet, on_epoch, sample_weight, optimizer, schedule,
                        early_stopping, checkpoint, resume)

    if data_parallel is None:
        with inference.in_use("fit") if isinstance(inference, InferenceNetwork) \
                else contextlib.nullcontext():
            return _fit_local(checked())
    if sample_weight is not None:
        raise NnfsValueError("fit: sample_weight is not supported with data_parallel yet; "
                             "train in one process, or without sample weights")
    from .mpi import as_world

    world = as_world(data_parallel, "fit: data_parallel")
    arguments = world.together("fit", checked)
    with arguments.network.in_use("fit"):
        return _fit_data_parallel(world, arguments)


def _fit_local(arguments: FitArguments) -> History:
    inference = arguments.network
    factory = inference.factory
    history = History()
    started = time.perf_counter()
    with factory.matrix(inference.in_dim, arguments.batch_size) as x_device, \
            factory.matrix(inference.out_dim, arguments.batch_size) as y_device, \
            (factory.matrix(inference.out_dim, arguments.batch_size) if arguments.weighted
             else contextlib.nullcontext()) as w_device, \
            TrainingNetwork(inference, x_device, seed=arguments.dropout_key(arguments.seed)) \
            as training, contextlib.ExitStack() as stack, quiet_floating_point(), \
            HeldCtrlC() as held:
        progress = _Progress.start(arguments, training, arguments.seed, stack)
        progress.resume(arguments, training, history)
        if arguments.checkpoint is not None:
            progress.write_checkpoint = functools.partial(
                _checkpoints.write, arguments.checkpoint, arguments, training, progress,
                history)
        batches = _Batches(training, y_device, arguments.cost, arguments.host_arrays(),
                           w_device, in_order=_in_order(arguments, progress.order))
        bar = _progress_bar(arguments.epochs - progress.epoch, arguments.quiet)
        try:
            _epochs(arguments, _LocalStepper(arguments, batches, progress), history, bar, held,
                    progress)
        except KeyboardInterrupt:
            factory.synchronize()  # the last update queued completes; the weights stay whole
            raise
        finally:
            if bar is not None:
                bar.close()
        factory.synchronize()
    history.seconds = time.perf_counter() - started
    return history


# --- data-parallel ------------------------------------------------------------------------------

_fingerprint = fingerprint  # the ranks compare their data by it


def _targets_fingerprint(target: Targets) -> int:
    if target.labels is not None:
        return _fingerprint(target.labels.reshape(-1, 1))
    assert target.values is not None  # a target is labels or values
    return _fingerprint(target.values)


def _facts(arguments: FitArguments) -> dict[str, object]:
    """What every rank of a data-parallel fit must have the same of."""
    inference, target = arguments.network, arguments.target
    labels = target.labels is not None
    validation = arguments.validation
    return {
        "network": f"{inference.in_dim} → " + " → ".join(
            f"{layer.out_dim} {layer.activation.kind}"
            + (f" dropout {layer.dropout}" if layer.dropout else "")
            for layer in inference.layers),
        "dtype": inference.factory.dtype,
        "samples": len(arguments.x),
        "features": arguments.x.shape[1],
        "data checksum": _fingerprint(arguments.x),
        "targets": f"{'labels' if labels else 'values'} for {target.outputs} outputs",
        "targets checksum": _targets_fingerprint(target),
        "batch_size": arguments.batch_size,
        "epochs": arguments.epochs,
        "optimizer": f"{arguments.optimizer.kind} {arguments.optimizer.settings()}",
        "schedule": repr(arguments.schedule),
        "early stopping": repr(arguments.early_stopping),
        "resumed from": None if arguments.resume is None else _checkpoints.describe_progress(
            arguments.resume.entries),
        "cost": arguments.cost.name,
        "shuffle": arguments.shuffle,
        "seed": arguments.seed,
        "validation samples": None if validation is None else len(validation[0]),
        "validation checksum": None if validation is None else (
            _fingerprint(validation[0]), _targets_fingerprint(validation[1])),
    }


def _share(count: int, ranks: int, rank: int) -> tuple[int, int]:
    """Where rank ``rank``'s share of ``count`` consecutive samples starts, and its length:
    ``count`` split into ``ranks`` shares as even as can be, in rank order."""
    each, extra = divmod(count, ranks)
    return rank * each + min(rank, extra), each + (1 if rank < extra else 0)


def _fit_data_parallel(world: mpi.World, arguments: FitArguments) -> History:
    """fit across the ranks of ``world``, of arguments each rank has checked (see fit)."""
    from . import mpi

    world.same_everywhere("fit: data-parallel training", _facts(arguments))
    inference = arguments.network
    n, ranks, batch_size = len(arguments.x), world.size, arguments.batch_size
    if n < ranks:
        raise NnfsValueError(
            f"fit: X has {n} samples but the data-parallel job has {ranks} ranks: every rank "
            "needs at least one sample; give more data or start fewer ranks")
    if batch_size * ranks > n:
        raise NnfsValueError(
            f"fit: batch_size is {batch_size} per rank, {batch_size * ranks} per step over "
            f"{ranks} ranks, but X has only {n} samples; give batch_size at most {n // ranks}")
    seed = arguments.seed
    if seed is None:  # one shuffled order for all: rank 0's
        seed = world.comm.bcast(
            _entropy() % 2**63 if world.rank == 0 else None, root=0)
    device = mpi.device_collective(world, inference.factory)
    factory = inference.factory
    history = History(ranks=ranks)
    started = time.perf_counter()
    before = world.stats().allreduce_seconds
    with contextlib.ExitStack() as stack, quiet_floating_point():
        def allocate() -> tuple[TrainingNetwork, Matrix, mpi.GradientSum, _Progress]:
            x_device = stack.enter_context(factory.matrix(inference.in_dim, batch_size))
            y_device = stack.enter_context(factory.matrix(inference.out_dim, batch_size))
            training = stack.enter_context(
                TrainingNetwork(inference, x_device, seed=arguments.dropout_key(seed)))
            progress = _Progress.start(arguments, training, seed, stack)
            progress.resume(arguments, training, history)
            return training, y_device, mpi.GradientSum(world, training.gradient, device), \
                progress

        training, y_device, summed, progress = world.together(
            "fit: allocating the training buffers", allocate)
        checkpoint_target = arguments.checkpoint
        if checkpoint_target is not None:  # written by rank 0; every rank learns how it went
            def write_checkpoint() -> None:
                world.together("fit: writing the checkpoint", lambda: _checkpoints.write(
                    checkpoint_target, arguments, training, progress, history)
                    if world.is_root else None)

            progress.write_checkpoint = write_checkpoint
        bar = None
        try:  # from here on, a rank that fails alone ends the job (the others wait for it)
            batches = _Batches(training, y_device, arguments.cost, arguments.host_arrays(),
                               in_order=_in_order(arguments, progress.order))
            summed.broadcast(inference.parameters)
            bar = _progress_bar(arguments.epochs - progress.epoch,
                                arguments.quiet or world.rank != 0)
            stepper = _DataParallelStepper(arguments, batches, world, summed, progress)
            with HeldCtrlC() as held:
                _epochs(arguments, stepper, history, bar, held, progress)
            factory.synchronize()
        except BaseException as error:
            if not mpi.collective_error(error):
                world.abort("data-parallel training (nnfs.fit)", error)
            raise
        finally:
            if bar is not None:
                bar.close()
    history.seconds = time.perf_counter() - started
    history.allreduce_seconds = world.stats().allreduce_seconds - before
    return history


# --- predict ------------------------------------------------------------------------------------

def predict(inference: InferenceNetwork, X: object, *, batch_size: int = 256) -> np.ndarray:
    """The network's outputs for host samples ``X`` (one per row), as a samples × outputs
    numpy array. Works through batches of ``batch_size`` samples, allocated once.

    Outputs that overflow are inf or nan, as the device computes them, on every backend
    alike (numpy's warnings about them are silenced)."""
    if not isinstance(inference, InferenceNetwork):
        raise NnfsTypeError(
            "predict: inference must be made by nnfs.inference_network, "
            f"got {type(inference).__name__}"
        )
    check.live(inference, "predict: inference")
    factory = inference.factory
    x = samples(X, "predict: X", inference.in_dim, factory.numpy_dtype)
    batch_size = min(check.count(batch_size, "predict: batch_size"), len(x))
    backend = factory.backend
    result = np.empty((len(x), inference.out_dim), factory.numpy_dtype)
    host = np.empty((batch_size, inference.in_dim), factory.numpy_dtype)
    with inference.in_use("predict"), \
            factory.matrix(inference.in_dim, batch_size) as x_device, \
            factory.matrix(inference.out_dim, batch_size) as out_device, \
            inference.forward_pass(x_device, out_device) as whole, quiet_floating_point():
        short = None
        try:
            for start in range(0, len(x), batch_size):
                count = min(batch_size, len(x) - start)
                xs, out, forward = x_device, out_device, whole
                if count < batch_size:  # the last batch, once
                    xs, out = x_device.columns(0, count), out_device.columns(0, count)
                    short = forward = inference.forward_pass(xs, out)
                np.copyto(host[:count], x[start:start + count])
                with factory._lock:
                    check.live(inference, "predict: the network")
                    backend.write_samples(host[:count], xs)
                    forward()
                    backend.read_samples(out, result[start:start + count])
        finally:
            if short is not None:
                short.release()
    return result
