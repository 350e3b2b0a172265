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
sums the gradients across the ranks, then updates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _checks as check
from .arrays import Matrix
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
    sample_weights,
    samples,
    targets,
)
from .kinds import ActivationKind
from .network import InferenceNetwork, plan_memory
from .training import (
    HeldCtrlC,
    Releases,
    Rollback,
    TrainingNetwork,
    TrainingStep,
    learning_rate,
    quiet_floating_point,
    schedule_pairs,
)


@dataclass
class History:
    """What ``fit`` measured, one entry per epoch.

    ``cost``: the mean training cost of the epoch's batches (each measured in its forward pass,
    before its update). ``validation_cost`` and ``validation_accuracy``: on the validation data
    after the epoch, when it was given. ``eta``: the learning rate used.
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

    @property
    def epochs(self) -> int:
        return len(self.cost)

    def as_dict(self) -> dict[str, object]:
        return {"cost": self.cost, "validation_cost": self.validation_cost,
                "validation_accuracy": self.validation_accuracy, "eta": self.eta,
                "seconds": self.seconds, "ranks": self.ranks,
                "allreduce_seconds": self.allreduce_seconds}


# --- fit's arguments, checked -------------------------------------------------------------------

@dataclass(frozen=True)
class FitArguments:
    """fit's arguments, checked and converted, before anything is allocated."""

    network: InferenceNetwork
    x: np.ndarray
    target: Targets
    schedule: tuple[tuple[int, float], ...]
    batch_size: int
    cost: Cost
    shuffle: bool
    seed: int | None
    validation: tuple[np.ndarray, Targets] | None
    quiet: bool
    on_epoch: Callable[[int, History], object] | None

    @property
    def epochs(self) -> int:
        return sum(epochs for epochs, _ in self.schedule)

    @property
    def weighted(self) -> bool:
        return self.target.weights is not None

    def learning_rates(self) -> Iterator[tuple[int, float]]:
        """(epoch from 1, eta) for every epoch of the schedule."""
        epoch = 0
        for epochs, eta in self.schedule:
            for _ in range(epochs):
                epoch += 1
                yield epoch, eta

    def host_arrays(self) -> list[np.ndarray]:
        """Every host array batches are gathered from."""
        arrays = [self.x] + ([] if self.target.values is None else [self.target.values])
        if self.validation is not None:
            xv, yv = self.validation
            arrays += [xv] + ([] if yv.values is None else [yv.values])
        return arrays


def _schedule(epochs: object, eta: object) -> list[tuple[int, float]]:
    """One (epochs, eta) pair, or the pairs of a schedule given as eta."""
    if isinstance(eta, Sequence) and not isinstance(eta, (str, bytes)):
        pairs = schedule_pairs(eta, None, "fit")
        if epochs is not None and check.count(epochs, "fit: epochs") != sum(n for n, _ in pairs):
            raise NnfsValueError(
                f"fit: epochs is {epochs} but the schedule given as eta has "
                f"{sum(n for n, _ in pairs)} epochs; give one of them"
            )
        return pairs
    if epochs is None:
        raise NnfsTypeError("fit: give epochs (and eta), or a schedule of (epochs, eta) pairs as "
                            f"eta; got epochs=None and eta={eta!r}")
    return [(check.count(epochs, "fit: epochs"), learning_rate(eta, "fit: eta"))]


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


def _checked(inference, X, Y, epochs, batch_size, eta, cost, shuffle, seed, validation, quiet,
             on_epoch, sample_weight) -> FitArguments:
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
            f"fit: batch_size is {batch_size} but X has only {len(x)} samples; give at most {len(x)}"
        )
    cost = _default_cost(inference) if cost is None else _cost(cost, "fit: cost")
    output = inference.layers[-1].activation
    cost.check_output(output)
    if cost is cross_entropy_cost:
        check_cross_entropy(target, output.kind, "fit: Y")
    pairs = _schedule(epochs, eta)
    seed = _check_seed(seed, "fit")
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
    # everything fit allocates, checked at once before any of it is allocated
    plan = plan_memory(inference.factory, inference.in_dim, inference.architecture, batch_size)
    weights_bytes = (0 if target.weights is None
                     else inference.out_dim * batch_size * inference.factory.itemsize)
    inference.factory.check_fits(plan.training + plan.batch_data + weights_bytes,
                                 max(plan.largest_allocation, weights_bytes),
                                 f"fit: training with batch_size {batch_size}")
    return FitArguments(inference, x, target, tuple(pairs), batch_size, cost, bool(shuffle),
                        seed, checked_validation, bool(quiet), on_epoch)


# --- moving batches to the device ---------------------------------------------------------------

class _Batches:
    """Preallocated host and device buffers that move batches of host data to the device."""

    def __init__(self, training: TrainingNetwork, y_device: Matrix, cost: Cost,
                 arrays: list[np.ndarray], w_device: Matrix | None = None):
        self.training = training
        self.factory = training.factory
        self.cost = cost
        batch_size = training.batch_size
        dtype = self.factory.numpy_dtype
        self.x_host = np.empty((batch_size, training.inference.in_dim), dtype)
        self.y_host = np.empty((batch_size, training.inference.out_dim), dtype)
        # arrays of another dtype are gathered into these, then converted into the above
        self.raw: dict[tuple, np.ndarray] = {}
        for array in arrays:
            if array.dtype != dtype:
                self.raw.setdefault((array.dtype, array.shape[1]),
                                    np.empty((batch_size, array.shape[1]), array.dtype))
        self.labels = np.empty(batch_size, np.int64)
        self.rows = np.arange(batch_size)
        self.y_device = y_device
        self._targets: dict[int, Matrix] = {batch_size: y_device}
        # sample weights: each sample's weight in every row of its column (out_dim × batch), so
        # that one elementwise product scales the output δ column by column
        self.w_device = w_device
        self._weights: dict[int, Matrix | None] = {batch_size: w_device}
        if w_device is not None:
            self.w_samples = np.empty(batch_size, np.float64)
            self.w_host = np.empty((batch_size, training.inference.out_dim), dtype)

    def network(self, count: int) -> tuple[TrainingNetwork, Matrix]:
        """The training network and target matrix for a batch of ``count`` samples."""
        y = self._targets.get(count)
        if y is None:
            y = self._targets[count] = self.y_device.columns(0, count)
        return self.training.narrowed(count), y

    def weights(self, count: int) -> Matrix | None:
        """The sample-weight matrix for a batch of ``count`` samples; None when unweighted."""
        if self.w_device is None:
            return None
        found = self._weights.get(count)
        if found is None:
            found = self._weights[count] = self.w_device.columns(0, count)
        return found

    def step(self, count: int, scale: float, separate_update: bool = False,
             weighted: bool = True) -> TrainingStep:
        """The training step of a batch of ``count`` samples whose gradient is scaled by
        ``scale`` (and each sample's by its weight, when the data has weights and
        ``weighted``)."""
        network, y = self.network(count)
        return network.step(y, self.cost, scale, separate_update=separate_update,
                            weights=self.weights(count) if weighted else None)

    def _gather(self, source: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
        if source.dtype == out.dtype:
            np.take(source, index, axis=0, out=out)
        else:
            raw = self.raw[(source.dtype, source.shape[1])][:len(index)]
            np.take(source, index, axis=0, out=raw)
            np.copyto(out, raw)

    def load(self, x: np.ndarray, target: Targets | None, index: np.ndarray) -> None:
        """Gather the samples ``index`` of ``x`` (and their targets) into the device matrices
        of a batch of ``len(index)``."""
        count = len(index)
        network, y = self.network(count)
        backend = self.factory.backend
        xs = self.x_host[:count]
        self._gather(x, index, xs)
        backend.write_samples(xs, network.input)
        if target is None:
            return
        ys = self.y_host[:count]
        if target.labels is not None:
            labels = self.labels[:count]
            np.take(target.labels, index, out=labels)
            ys.fill(0.0)
            ys[self.rows[:count], labels] = 1.0
        else:
            self._gather(target.values, index, ys)
        backend.write_samples(ys, y)
        if target.weights is not None and self.w_device is not None:
            ws = self.w_host[:count]
            np.take(target.weights, index, out=self.w_samples[:count])
            ws[...] = self.w_samples[:count, None]
            backend.write_samples(ws, self.weights(count))

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
            self.load(x, target, rows)
            step = self.step(len(rows), 1.0, weighted=False)
            total += len(rows) * step.forward_cost()
            predicted = outputs[:len(rows)]
            backend.read_samples(step.network.output, predicted)
            right += accuracy(predicted, target, rows)
        return total, right


# --- steppers: what one batch of training is, in one process or across ranks -------------------

class _LocalStepper:
    """Training in one process: each batch's cost is read in its forward pass and checked
    before its update.

    Divergence: when a batch's cost is not finite, the update before it made the weights bad,
    so the weights put back are those the batch before it was trained on. The checkpoint is
    taken at each epoch's first batch, once its cost is known to be finite, and the batches
    from there are replayed (:class:`nnfs.training.Rollback`)."""

    ranks = 1

    def __init__(self, arguments: FitArguments, batches: _Batches):
        self.arguments = arguments
        self.batches = batches
        self.rollback = Rollback(batches.training)
        self.checkpoint: tuple[np.ndarray, float] | None = None  # (order, eta) of the backup
        self._checkpoint_order = np.empty(len(arguments.x), np.int64)

    def batch(self, epoch: int, number: int, index: np.ndarray, order: np.ndarray,
              eta: float) -> float:
        """Train on the batch ``index`` (batch ``number`` of ``epoch``); its summed cost."""
        batches, count = self.batches, len(index)
        batches.load(self.arguments.x, self.arguments.target, index)
        step = batches.step(count, -eta / count)
        value = step.forward_cost()
        if not math.isfinite(value):
            raise self._diverged(epoch, number, eta, value)
        if number == 0:  # weights whose cost is known to be finite
            self.rollback.save()
            np.copyto(self._checkpoint_order, order)
            self.checkpoint = (self._checkpoint_order, eta)
        step.descend()
        return count * value

    def _redo(self, i: int) -> None:
        order, eta = self.checkpoint
        size = self.arguments.batch_size
        index = order[i * size:(i + 1) * size]
        self.batches.load(self.arguments.x, self.arguments.target, index)
        self.batches.step(len(index), -eta / len(index)).run()

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
    one allreduce sums gradients and costs, and every rank applies the same update, unless
    the summed cost is not finite: then training stops before that update, on every rank."""

    def __init__(self, arguments: FitArguments, batches: _Batches, world: Any, summed: Any):
        self.arguments = arguments
        self.batches = batches
        self.world = world
        self.summed = summed
        self.ranks = world.size
        self.rollback = Rollback(batches.training)
        training = batches.training
        backend = training.factory.backend
        self._zero = tuple(steps(backend.fill(training.gradient, 0.0)))
        self._update = tuple(steps(backend.axpy(1.0, training.gradient,
                                                training.inference.parameters)))
        self.scores = np.zeros(2)  # validation: summed cost, right answers
        self._last: tuple[np.ndarray, float] | None = None  # the last epoch's order and eta
        self._last_order = np.empty(len(arguments.x), np.int64)

    def batch(self, epoch: int, number: int, index: np.ndarray, order: np.ndarray,
              eta: float) -> float:
        """This rank's share of the global batch ``index``; the cost summed over the ranks."""
        if number == 0:
            self.rollback.save()
            np.copyto(self._last_order, order)
            self._last = (self._last_order, eta)
        batch_cost = self.summed(self._gradient(index, eta))
        if not math.isfinite(batch_cost):
            raise TrainingDiverged(
                f"training diverged in epoch {epoch} at learning rate eta={eta}: a "
                f"batch's cost, summed over the {self.ranks} ranks, is {batch_cost}; the "
                "weights are those before that batch. Try a smaller eta.", epoch, eta)
        for op in self._update:
            op()
        return batch_cost

    def _gradient(self, index: np.ndarray, eta: float) -> float:
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
        # gradient · (−η / samples of the whole global batch)
        step = batches.step(count, -eta / size, separate_update=True)
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
        order, eta = self._last
        step = self.arguments.batch_size * self.ranks
        self.summed(self._gradient(order[i * step:(i + 1) * step], eta))
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

def _progress(total: int, quiet: bool):
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


def _epochs(arguments: FitArguments, stepper: _LocalStepper | _DataParallelStepper,
            history: History, bar, held: HeldCtrlC, seed: int | None) -> None:
    """Every epoch of the schedule: the batches in a (shuffled) order, each trained by the
    stepper; then validation, the progress bar, ``on_epoch`` and Ctrl-C."""
    n = len(arguments.x)
    step = arguments.batch_size * stepper.ranks
    order = np.arange(n)
    rng = np.random.default_rng(seed)
    releases = Releases(stepper.batches.training, "fit")
    lock = releases.lock
    epoch, eta = 0, 0.0
    for epoch, eta in arguments.learning_rates():
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
        if bar is not None:
            bar.update(1)
            bar.set_postfix(_postfix(history), refresh=False)
        if arguments.on_epoch is not None:
            arguments.on_epoch(epoch, history)
        if held.pending:
            raise KeyboardInterrupt
    with lock:
        releases.check()
        stepper.finish(epoch, eta)


def fit(inference: InferenceNetwork, X: object, Y: object, *, epochs: int | None = None,
        batch_size: int = 32, eta: float | Sequence[tuple[int, float]] = 0.1,
        cost: Cost | str | None = None, shuffle: bool = True, seed: int | None = None,
        validation: tuple[object, object] | None = None, quiet: bool = False,
        on_epoch: Callable[[int, History], object] | None = None,
        data_parallel: object = None, sample_weight: object = None) -> History:
    """Train ``inference`` by mini-batch gradient descent on host data; return the history.

    Args:
        X: samples × inputs (numpy and scikit-learn's convention), any size.
        Y: class labels (1-D integers, for a network of several outputs) or samples × outputs.
        epochs, eta: epochs at one learning rate, or ``eta=[(epochs, eta), ...]``, a schedule
            as in ``sgd``.
        batch_size: samples per update; the last batch of an epoch may be shorter.
        cost: ``cross_entropy_cost`` by default for sigmoid and softmax outputs, else
            ``quadratic_cost``.
        shuffle, seed: visit the samples in a new random order each epoch (reproducible with
            a seed), or in their order.
        validation: ``(Xv, Yv)`` measured after every epoch (cost and accuracy).
        quiet: no progress bar (there is none either when stderr is not a terminal).
        on_epoch: called as ``on_epoch(epoch, history)`` after each epoch (epoch from 1).
        data_parallel: ``nnfs.mpi.world()`` (or True) to train across the ranks of an MPI job,
            each on its own share of every batch (see below).
        sample_weight: one weight (0 or more) per sample of X, multiplying its loss; scaled to
            a mean of 1, so that ``η`` keeps its meaning. The output δ of each batch is scaled
            column by column (one elementwise product with a matrix of the weights, allocated
            with the other buffers); the costs in the history stay unweighted. Not with
            ``data_parallel`` yet.

    Each batch updates every parameter by ``−(η/b)·Σ ∂ℓ/∂p`` over its b samples. When a batch's
    cost is NaN or infinite, or the last update leaves a parameter that is not finite,
    training stops with :class:`nnfs.TrainingDiverged`, with the weights of the last batch
    whose cost was finite (in one process; data-parallel training stops before the update of
    the batch whose summed cost is not finite).

    Ctrl-C (``KeyboardInterrupt``) stops training at the end of the batch it arrives in: the
    network holds the weights of the last whole batch, and inference and training work on from
    there. A second Ctrl-C interrupts at once.

    **Data-parallel.** Started on N ranks (``mpiexec -n N python train.py``), with the whole
    data set and the same arguments on every rank, ``fit(..., data_parallel=world)`` trains as
    one process would with ``batch_size`` N·b: every epoch visits the samples in one order
    shared by all ranks (the seed is rank 0's), each global batch of N·b samples is split into
    N consecutive shares, each rank computes the gradient of its own share only (batches read
    only those rows of X, so X can be a memory-mapped ``.npy`` file), one allreduce per batch
    sums the gradients and the costs, and every rank applies the same update. Rank 0's weights
    are given to every rank first; after each epoch the ranks check that they still hold the
    same weights. The history is the same on every rank; the progress bar shows on rank 0.
    """
    def checked() -> FitArguments:
        return _checked(inference, X, Y, epochs, batch_size, eta, cost, shuffle, seed,
                        validation, quiet, on_epoch, sample_weight)

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
            TrainingNetwork(inference, x_device) as training, quiet_floating_point(), \
            HeldCtrlC() as held:
        batches = _Batches(training, y_device, arguments.cost, arguments.host_arrays(),
                           w_device)
        bar = _progress(arguments.epochs, arguments.quiet)
        try:
            _epochs(arguments, _LocalStepper(arguments, batches), history, bar, held,
                    arguments.seed)
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

#: Rows of the data whose checksum the ranks compare (evenly spaced, so the check is cheap).
_FINGERPRINT_ROWS = 64


def _fingerprint(array: np.ndarray) -> int:
    """A checksum of a few evenly spaced rows, the same for equal data in any dtype."""
    rows = np.unique(np.linspace(0, len(array) - 1, _FINGERPRINT_ROWS).astype(np.int64))
    return zlib.crc32(np.ascontiguousarray(array[rows], dtype=np.float64).tobytes())


def _targets_fingerprint(target: Targets) -> int:
    labels = target.labels is not None
    return _fingerprint(target.labels.reshape(-1, 1) if labels else target.values)


def _facts(arguments: FitArguments) -> dict[str, object]:
    """What every rank of a data-parallel fit must have the same of."""
    inference, target = arguments.network, arguments.target
    labels = target.labels is not None
    validation = arguments.validation
    return {
        "network": f"{inference.in_dim} → " + " → ".join(
            f"{layer.out_dim} {layer.activation.kind}" for layer in inference.layers),
        "dtype": inference.factory.dtype,
        "samples": len(arguments.x),
        "features": arguments.x.shape[1],
        "data checksum": _fingerprint(arguments.x),
        "targets": f"{'labels' if labels else 'values'} for {target.outputs} outputs",
        "targets checksum": _targets_fingerprint(target),
        "batch_size": arguments.batch_size,
        "schedule": [(int(n), float(rate)) for n, rate in arguments.schedule],
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


def _fit_data_parallel(world, arguments: FitArguments) -> History:
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
            int(np.random.SeedSequence().entropy % 2**63) if world.rank == 0 else None, root=0)
    device = mpi.device_collective(world, inference.factory)
    factory = inference.factory
    history = History(ranks=ranks)
    started = time.perf_counter()
    before = world.stats().allreduce_seconds
    with contextlib.ExitStack() as stack, quiet_floating_point():
        def allocate():
            x_device = stack.enter_context(factory.matrix(inference.in_dim, batch_size))
            y_device = stack.enter_context(factory.matrix(inference.out_dim, batch_size))
            training = stack.enter_context(TrainingNetwork(inference, x_device))
            return training, y_device, mpi.GradientSum(world, training.gradient, device)

        training, y_device, summed = world.together("fit: allocating the training buffers",
                                                    allocate)
        bar = None
        try:  # from here on, a rank that fails alone ends the job (the others wait for it)
            batches = _Batches(training, y_device, arguments.cost, arguments.host_arrays())
            summed.broadcast(inference.parameters)
            bar = _progress(arguments.epochs, arguments.quiet or world.rank != 0)
            stepper = _DataParallelStepper(arguments, batches, world, summed)
            with HeldCtrlC() as held:
                _epochs(arguments, stepper, history, bar, held, seed)
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
            f"predict: inference must be made by nnfs.inference_network, got {type(inference).__name__}"
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
