"""Mini-batch training over host data: ``fit`` and ``predict``.

Host data follows numpy and scikit-learn: one sample per **row** (``X`` is samples × features).
That is the memory layout of the device matrices (one sample per column, stored column by
column), so a batch is gathered on the host into a preallocated array and copied to the device
as it is. Everything is allocated when ``fit`` starts: the training network for ``batch_size``
samples, its input and target matrices, and host batch arrays; the short last batch of an epoch
runs on a narrowed view of the same buffers. No batch allocates memory.
"""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import _checks as check
from .costs import Cost, cost as _cost, cross_entropy_cost, quadratic_cost
from .errors import (
    NnfsTypeError,
    NnfsValueError,
    ShapeError,
    TrainingDiverged,
    UnsupportedOperation,
)
from .kinds import ActivationKind
from .network import InferenceNetwork, TrainingNetwork, plan_memory
from .training import HeldCtrlC as _CtrlC, quiet_floating_point

#: Rows checked for NaN and infinity at a time (so the check needs no copy of the data).
_CHECK_ROWS = 65536


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


# --- checking host data -------------------------------------------------------------------------

def samples(data: object, what: str, features: int) -> np.ndarray:
    """``data`` as a 2-D float array of ``features`` columns, checked to be finite."""
    array = np.asarray(data) if not isinstance(data, np.ndarray) else data
    if array.dtype.kind not in "biuf":
        raise NnfsTypeError(f"{what} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 1 and features == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != features:
        raise ShapeError(
            f"{what} must have one sample per row and {features} columns (the network's "
            f"inputs), got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise NnfsValueError(f"{what} is empty: it has no samples; expected at least one sample")
    _check_finite(array, what)
    return array


def _check_finite(array: np.ndarray, what: str) -> None:
    if array.dtype.kind != "f":
        return
    for start in range(0, array.shape[0], _CHECK_ROWS):
        block = array[start:start + _CHECK_ROWS]
        bad = check.first_non_finite(block)
        if bad is not None:
            row, column = bad[0][0] + start, bad[0][1]
            raise NnfsValueError(f"{what} holds {bad[1]} in row {row}, column {column}; "
                                 "expected finite numbers")


@dataclass
class Targets:
    """Desired outputs: class labels (one-hot on the fly) or one row of outputs per sample."""

    labels: np.ndarray | None
    values: np.ndarray | None
    outputs: int
    #: One weight per sample, scaled to a mean of 1 (see :func:`sample_weights`), or None.
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels) if self.labels is not None else len(self.values)


def targets(data: object, what: str, outputs: int) -> Targets:
    """``data`` as targets for a network of ``outputs`` outputs.

    A 1-D array of integers is class labels when the network has several outputs (each in
    ``0 .. outputs-1``); otherwise one row of ``outputs`` values per sample.
    """
    array = np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise NnfsTypeError(f"{what} must hold numbers (labels or outputs), got dtype {array.dtype}")
    if array.ndim == 1 and outputs > 1:
        if array.dtype.kind == "f":
            _check_finite(array.reshape(-1, 1), what)
            if not np.all(array == np.round(array)):
                raise NnfsValueError(
                    f"{what} is 1-D, so it must hold class labels (whole numbers), but it holds "
                    f"fractions such as {float(array[array != np.round(array)][0])!r}"
                )
        labels = array.astype(np.int64)
        outside = (labels < 0) | (labels >= outputs)
        if outside.any():
            row = int(np.argmax(outside))
            raise NnfsValueError(
                f"{what} holds the label {labels[row]} in row {row}, but the network has "
                f"{outputs} outputs: labels must be 0 to {outputs - 1}"
            )
        return Targets(labels, None, outputs)
    if array.ndim == 1 and outputs == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != outputs:
        raise ShapeError(
            f"{what} must be class labels (1-D) or one row of {outputs} outputs per sample, "
            f"got shape {array.shape}"
        )
    _check_finite(array, what)
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    return Targets(None, array, outputs)


def sample_weights(data: object, what: str, n: int) -> np.ndarray | None:
    """``data`` as one weight per sample for ``n`` samples, scaled to a mean of 1 so that the
    learning rate keeps its meaning; None when every weight is the same (weighting by a constant
    is no weighting, and the unweighted path gives the very same numbers).

    A weight multiplies its sample's loss: a batch's update is ``−(η/b)·Σ wᵢ·∂ℓᵢ/∂p``, so a
    weight of 2 counts a sample as twice, 0 leaves it out."""
    array = np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise NnfsTypeError(f"{what} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != 1 or len(array) != n:
        raise ShapeError(f"{what} must be one weight per sample: 1-D of length {n}, got shape "
                         f"{array.shape}")
    array = array.astype(np.float64)
    _check_finite(array.reshape(-1, 1), what)
    if (array < 0).any():
        row = int(np.argmax(array < 0))
        raise NnfsValueError(f"{what} holds the negative weight {float(array[row])!r} in row "
                             f"{row}; expected weights of 0 or more")
    total = float(array.sum())
    if total == 0:
        raise NnfsValueError(f"{what} is zero for every sample: there is nothing to learn from; "
                             "expected at least one positive weight")
    if np.all(array == array[0]):
        return None
    return array * (n / total)


def accuracy(predicted: np.ndarray, expected: Targets, rows: slice | np.ndarray) -> int:
    """How many of the ``predicted`` rows (samples) are right: the largest output is the
    label's, or for one output, both sides of 0.5 agree."""
    if expected.labels is not None:
        return int(np.count_nonzero(predicted.argmax(axis=1) == expected.labels[rows]))
    values = expected.values[rows]
    if expected.outputs == 1:
        return int(np.count_nonzero((predicted[:, 0] > 0.5) == (values[:, 0] > 0.5)))
    return int(np.count_nonzero(predicted.argmax(axis=1) == values.argmax(axis=1)))


# --- the batch machinery ------------------------------------------------------------------------

class _Batches:
    """Preallocated host and device buffers that move batches of host data to the device."""

    def __init__(self, training: TrainingNetwork, y_device, batch_size: int,
                 arrays: list[np.ndarray], w_device=None):
        self.training = training
        self.factory = training.factory
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
        self.narrow: dict[int, tuple[TrainingNetwork, object]] = {batch_size: (training, y_device)}
        # sample weights: each sample's weight in every row of its column (out_dim × batch), so
        # that one elementwise product scales the output δ column by column
        self.w_device = w_device
        self.w_narrow = {batch_size: w_device}
        if w_device is not None:
            self.w_samples = np.empty(batch_size, np.float64)
            self.w_host = np.empty((batch_size, training.inference.out_dim), dtype)

    def network(self, count: int):
        """The training network and target matrix for a batch of ``count`` samples."""
        found = self.narrow.get(count)
        if found is None:
            found = (self.training.narrowed(count), self.y_device.columns(0, count))
            self.narrow[count] = found
        return found

    def weights(self, count: int):
        """The sample-weight matrix for a batch of ``count`` samples; None when unweighted."""
        if self.w_device is None:
            return None
        found = self.w_narrow.get(count)
        if found is None:
            found = self.w_narrow[count] = self.w_device.columns(0, count)
        return found

    def _gather(self, source: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
        if source.dtype == out.dtype:
            np.take(source, index, axis=0, out=out)
        else:
            raw = self.raw[(source.dtype, source.shape[1])][:len(index)]
            np.take(source, index, axis=0, out=raw)
            np.copyto(out, raw)

    def load(self, x: np.ndarray, target: Targets | None, index: np.ndarray, network, y) -> None:
        """Gather the samples ``index`` of ``x`` (and their targets) into the device matrices."""
        count = len(index)
        xs = self.x_host[:count]
        self._gather(x, index, xs)
        self.factory._write_samples(xs, network.input)
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
        self.factory._write_samples(ys, y)
        if target.weights is not None and self.w_device is not None:
            ws = self.w_host[:count]
            np.take(target.weights, index, out=self.w_samples[:count])
            ws[...] = self.w_samples[:count, None]
            self.factory._write_samples(ws, self.weights(count))


def _schedule(epochs: object, eta: object) -> list[tuple[int, float]]:
    """One (epochs, eta) pair, or the pairs of a schedule given as eta."""
    from .training import _eta

    if isinstance(eta, Sequence) and not isinstance(eta, (str, bytes)):
        from .training import _schedule as pairs_of

        pairs = pairs_of(eta, None)
        if epochs is not None and check.count(epochs, "fit: epochs") != sum(n for n, _ in pairs):
            raise NnfsValueError(
                f"fit: epochs is {epochs} but the schedule given as eta has "
                f"{sum(n for n, _ in pairs)} epochs; give one of them"
            )
        return pairs
    if epochs is None:
        raise NnfsTypeError("fit: give epochs (and eta), or a schedule of (epochs, eta) pairs as "
                            f"eta; got epochs=None and eta={eta!r}")
    return [(check.count(epochs, "fit: epochs"), _eta(eta, "fit: eta"))]


def _default_cost(inference: InferenceNetwork) -> Cost:
    last = inference.layers[-1].activation.kind
    sigmoid_or_softmax = last in (ActivationKind.SIGMOID, ActivationKind.SOFTMAX)
    return cross_entropy_cost if sigmoid_or_softmax else quadratic_cost


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
    cost is NaN or infinite, training stops with :class:`nnfs.TrainingDiverged`, with the
    weights of the last batch whose cost was finite (in one process; data-parallel training
    stops before the update of the batch whose summed cost is not finite).

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
    arguments = (inference, X, Y, epochs, batch_size, eta, cost, shuffle, seed, validation,
                 quiet, on_epoch, sample_weight)
    if data_parallel is None:
        return _fit(*_checked(*arguments))
    if sample_weight is not None:
        raise NnfsValueError("fit: sample_weight is not supported with data_parallel yet; "
                             "train in one process, or without sample weights")
    from .mpi import as_world

    world = as_world(data_parallel, "fit: data_parallel")
    checked = world.together("fit", lambda: _checked(*arguments))
    return _fit_data_parallel(world, *checked)


def _checked(inference, X, Y, epochs, batch_size, eta, cost, shuffle, seed, validation, quiet,
             on_epoch, sample_weight=None) -> tuple:
    """fit's arguments, checked and converted, in the order ``_fit`` takes them."""
    if not isinstance(inference, InferenceNetwork):
        raise NnfsTypeError(
            f"fit: inference must be made by nnfs.inference_network, got {type(inference).__name__}"
        )
    check.live(inference, "fit: inference")
    x = samples(X, "fit: X", inference.in_dim)
    target = targets(Y, "fit: Y", inference.out_dim)
    if len(target) != len(x):
        raise ShapeError(f"fit: X has {len(x)} samples (rows) but Y has {len(target)}; "
                         "they must have one row each per sample")
    if sample_weight is not None:
        target.weights = sample_weights(sample_weight, "fit: sample_weight", len(x))
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
    cost.check_output(inference.layers[-1].activation)
    pairs = _schedule(epochs, eta)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise NnfsTypeError(f"fit: seed must be an int or None, got {seed!r}")
    if seed is not None and seed < 0:
        raise NnfsValueError(f"fit: seed must be non-negative, got {seed}")
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
        xv = samples(validation[0], "fit: validation X", inference.in_dim)
        yv = targets(validation[1], "fit: validation Y", inference.out_dim)
        if len(xv) != len(yv):
            raise ShapeError(f"fit: validation X has {len(xv)} samples but validation Y has "
                             f"{len(yv)}; they must have one row each per sample")
        checked_validation = (xv, yv)
    # everything fit allocates, checked at once before any of it is allocated
    plan = plan_memory(inference.factory, inference.in_dim, inference.architecture, batch_size)
    weights_bytes = (0 if target.weights is None
                     else inference.out_dim * batch_size * inference.factory.itemsize)
    inference.factory.check_fits(plan.training + plan.batch_data + weights_bytes,
                                 max(plan.largest_allocation, weights_bytes),
                                 f"fit: training with batch_size {batch_size}")
    return (inference, x, target, pairs, batch_size, cost, bool(shuffle), seed,
            checked_validation, quiet, on_epoch)


def _progress(total: int, quiet: bool):
    if quiet:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the progress extra is not installed: train without a bar
        return None
    # disable=None: no bar when stderr is not a terminal, so logs get no carriage returns
    return tqdm(total=total, unit="epoch", disable=None, leave=False, dynamic_ncols=True)


def _fit(inference, x, target, pairs, batch_size, cost, shuffle, seed, validation, quiet,
         on_epoch) -> History:
    factory = inference.factory
    history = History()
    started = time.perf_counter()
    n = len(x)
    weighted = target.weights is not None
    with factory.matrix(inference.in_dim, batch_size) as x_device, \
            factory.matrix(inference.out_dim, batch_size) as y_device, \
            (factory.matrix(inference.out_dim, batch_size) if weighted
             else contextlib.nullcontext()) as w_device, \
            TrainingNetwork(inference, x_device) as training, quiet_floating_point(), \
            _CtrlC() as ctrl_c:
        arrays = [x] + ([] if target.values is None else [target.values])
        if validation is not None:
            arrays += [validation[0]] + ([] if validation[1].values is None else [validation[1].values])
        batches = _Batches(training, y_device, batch_size, arrays, w_device)
        order = np.arange(n)
        previous = _Epoch(order.copy(), 0.0)  # the epoch before, to roll back into
        rng = np.random.default_rng(seed)
        bar = _progress(sum(epochs for epochs, _ in pairs), quiet)
        epoch = 0
        try:
            for epochs, eta in pairs:
                for _ in range(epochs):
                    epoch += 1
                    if shuffle:
                        rng.shuffle(order)
                    total = 0.0
                    for number, start in enumerate(range(0, n, batch_size)):
                        index = order[start:start + batch_size]
                        network, y = batches.network(len(index))
                        batches.load(x, target, index, network, y)
                        value = _forward_cost(network, y, cost)
                        if not math.isfinite(value):
                            raise _roll_back(batches, x, target, cost, _Epoch(order, eta),
                                             previous, epoch, number, value)
                        if number == 0:  # weights whose cost is known to be finite
                            factory._copy(inference.parameters, training.backup)
                        _step(network, y, cost, eta, batches.weights(len(index)))
                        total += len(index) * value
                        if ctrl_c.pending:
                            raise KeyboardInterrupt
                    np.copyto(previous.order, order)
                    previous.eta = eta
                    history.cost.append(total / n)
                    history.eta.append(eta)
                    if validation is not None:
                        cost_value, right = _evaluate(batches, cost, *validation)
                        history.validation_cost.append(cost_value)
                        history.validation_accuracy.append(right)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(_postfix(history), refresh=False)
                    if on_epoch is not None:
                        on_epoch(epoch, history)
                    if ctrl_c.pending:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            factory.synchronize()  # the last update queued completes; the weights stay whole
            raise
        finally:
            if bar is not None:
                bar.close()
        factory.synchronize()
    history.seconds = time.perf_counter() - started
    return history


def _postfix(history: History) -> dict[str, str]:
    shown = {"cost": f"{history.cost[-1]:.4g}"}
    if history.validation_accuracy:
        shown["val_acc"] = f"{history.validation_accuracy[-1]:.4f}"
    return shown


def _forward_cost(network: TrainingNetwork, y, cost: Cost) -> float:
    """The forward pass of the batch loaded into ``network``; returns the batch's cost."""
    for op in network._forward_ops:
        op()
    return network._cost_op(y, cost)()


def _step(network: TrainingNetwork, y, cost: Cost, eta: float, weights=None) -> None:
    """After the forward pass: the gradient of the batch (each sample's weighted by its column
    of ``weights``, when given), and the update."""
    for op in network._step_ops(y, cost, -eta / network.batch_size, weights):
        op()


@dataclass
class _Epoch:
    """The order in which an epoch visits the samples, and its learning rate."""

    order: np.ndarray
    eta: float


def _roll_back(batches: _Batches, x: np.ndarray, target: Targets, cost: Cost, current: _Epoch,
               previous: _Epoch, epoch: int, number: int, value: float) -> TrainingDiverged:
    """Batch ``number`` (from 0) of ``epoch`` has a cost that is not finite: put back the
    weights of the last batch whose cost was finite, and return the error to raise.

    The training network's backup holds the weights of the start of the epoch (of the epoch
    before, when the first batch diverged: the backup is taken after that batch's cost is
    known to be finite). Replaying the batches from there up to the last finite one gives its
    weights back: the same operations on the same buffers give the same numbers."""
    training, factory = batches.training, batches.factory
    size = training.batch_size
    batches_per_epoch = -(-len(x) // size)
    if number > 0:
        replay, count, where = current, number - 1, f"batch {number} of epoch {epoch}"
    elif epoch > 1:
        replay, count = previous, batches_per_epoch - 1
        where = f"batch {batches_per_epoch} of epoch {epoch - 1}"
    else:
        replay, count, where = None, 0, ""
    if replay is not None:
        factory._copy(training.backup, training.inference.parameters)
        for start in range(0, count * size, size):
            index = replay.order[start:start + size]
            network, y = batches.network(len(index))
            batches.load(x, target, index, network, y)
            _forward_cost(network, y, cost)
            _step(network, y, cost, replay.eta, batches.weights(len(index)))
        factory.synchronize()
    weights = (f"the weights are those of {where}, the last batch whose cost was finite"
               if where else "the weights are those fit was called with")
    return TrainingDiverged(
        f"fit: training diverged in epoch {epoch} at learning rate eta={current.eta}: the cost "
        f"of batch {number + 1} of {batches_per_epoch} is {value}; {weights}. Try a smaller eta.",
        epoch, current.eta,
    )


# --- data-parallel ------------------------------------------------------------------------------

#: Rows of the data whose checksum the ranks compare (evenly spaced, so the check is cheap).
_FINGERPRINT_ROWS = 64


def _fingerprint(array: np.ndarray) -> int:
    """A checksum of a few evenly spaced rows, the same for equal data in any dtype."""
    rows = np.unique(np.linspace(0, len(array) - 1, _FINGERPRINT_ROWS).astype(np.int64))
    return zlib.crc32(np.ascontiguousarray(array[rows], dtype=np.float64).tobytes())


def _facts(inference: InferenceNetwork, x: np.ndarray, target: Targets, pairs, batch_size: int,
           cost: Cost, shuffle: bool, seed, validation) -> dict[str, object]:
    """What every rank of a data-parallel fit must have the same of."""
    labels = target.labels is not None
    return {
        "network": f"{inference.in_dim} → " + " → ".join(
            f"{layer.out_dim} {layer.activation.kind}" for layer in inference.layers),
        "dtype": inference.factory.dtype,
        "samples": len(x),
        "features": x.shape[1],
        "data checksum": _fingerprint(x),
        "targets": f"{'labels' if labels else 'values'} for {target.outputs} outputs",
        "targets checksum": _fingerprint(target.labels.reshape(-1, 1) if labels else target.values),
        "batch_size": batch_size,
        "schedule": [(int(n), float(rate)) for n, rate in pairs],
        "cost": cost.name,
        "shuffle": shuffle,
        "seed": None if seed is None else int(seed),
        "validation samples": None if validation is None else len(validation[0]),
    }


def _share(count: int, ranks: int, rank: int) -> tuple[int, int]:
    """Where rank ``rank``'s share of ``count`` consecutive samples starts, and its length:
    ``count`` split into ``ranks`` shares as even as can be, in rank order."""
    each, extra = divmod(count, ranks)
    return rank * each + min(rank, extra), each + (1 if rank < extra else 0)


def _fit_data_parallel(world, inference, x, target, pairs, batch_size, cost, shuffle, seed,
                       validation, quiet, on_epoch) -> History:
    """fit across the ranks of ``world``, of arguments each rank has checked (see fit)."""
    from . import mpi

    world.same_everywhere("fit: data-parallel training", _facts(
        inference, x, target, pairs, batch_size, cost, shuffle, seed, validation))
    n, ranks = len(x), world.size
    if n < ranks:
        raise NnfsValueError(
            f"fit: X has {n} samples but the data-parallel job has {ranks} ranks: every rank "
            "needs at least one sample; give more data or start fewer ranks")
    if batch_size * ranks > n:
        raise NnfsValueError(
            f"fit: batch_size is {batch_size} per rank, {batch_size * ranks} per step over "
            f"{ranks} ranks, but X has only {n} samples; give batch_size at most {n // ranks}")
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
        arrays = [x] + ([] if target.values is None else [target.values])
        if validation is not None:
            xv, yv = validation
            arrays += [xv] + ([] if yv.values is None else [yv.values])
        bar = None
        try:  # from here on, a rank that fails alone ends the job (the others wait for it)
            batches = _Batches(training, y_device, batch_size, arrays)
            summed.broadcast(inference.parameters)
            bar = _progress(sum(epochs for epochs, _ in pairs), quiet or world.rank != 0)
            _data_parallel_epochs(world, batches, summed, x, target, pairs, cost, shuffle, seed,
                                  validation, history, bar, on_epoch)
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


def _data_parallel_epochs(world, batches, summed, x, target, pairs, cost, shuffle, seed,
                          validation, history, bar, on_epoch) -> None:
    """The epochs of a data-parallel fit: per global batch of ``ranks × batch`` samples, this
    rank's share forward and backward, the gradients and costs summed, the same update."""
    training = batches.training
    factory = training.factory
    gradient, apply = training.gradient, training.apply  # the update alone
    rank, ranks = world.rank, world.size
    n = len(x)
    step = training.batch_size * ranks
    order = np.arange(n)
    rng = np.random.default_rng(seed)
    scores = np.zeros(2)  # validation: summed cost, right answers
    epoch = 0
    for epochs, eta in pairs:
        for _ in range(epochs):
            epoch += 1
            if shuffle:
                rng.shuffle(order)
            total = 0.0
            for start in range(0, n, step):
                size = min(step, n - start)
                first, count = _share(size, ranks, rank)
                if count:
                    network, y = batches.network(count)
                    batches.load(x, target, order[start + first:start + first + count], network, y)
                    local = count * _forward_cost(network, y, cost)
                    for op in network._gradient_ops(y, cost, -eta / size):
                        op()  # gradient · (−η / samples of the whole global batch)
                else:  # a short last batch with fewer samples than ranks
                    factory._fill(gradient, 0.0)
                    local = 0.0
                batch_cost = summed(local)
                if not math.isfinite(batch_cost):
                    raise TrainingDiverged(
                        f"training diverged in epoch {epoch} at learning rate eta={eta}: a "
                        f"batch's cost, summed over the {ranks} ranks, is {batch_cost}; the "
                        "weights are those before that batch. Try a smaller eta.", epoch, eta)
                apply()
                total += batch_cost
            history.cost.append(total / n)
            history.eta.append(eta)
            if validation is not None:
                xv, yv = validation
                first, count = _share(len(xv), ranks, rank)
                scores[:] = 0.0
                if count:
                    scores[:] = _evaluate_sums(batches, cost, xv, yv, first, first + count)
                world.comm.Allreduce(world._mpi.IN_PLACE, scores, op=world._mpi.SUM)
                history.validation_cost.append(float(scores[0]) / len(xv))
                history.validation_accuracy.append(float(scores[1]) / len(xv))
            summed.check_same(training.inference.parameters, f"after epoch {epoch}")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(_postfix(history), refresh=False)
            if on_epoch is not None:
                on_epoch(epoch, history)


def _evaluate(batches: _Batches, cost: Cost, x: np.ndarray, target: Targets) -> tuple[float, float]:
    """Mean cost and accuracy of the network on ``x``, through the training buffers."""
    total, right = _evaluate_sums(batches, cost, x, target, 0, len(x))
    return total / len(x), right / len(x)


def _evaluate_sums(batches: _Batches, cost: Cost, x: np.ndarray, target: Targets, first: int,
                   stop: int) -> tuple[float, int]:
    """Summed cost and right answers of the network on the samples ``first`` to ``stop − 1``
    of ``x``."""
    factory = batches.factory
    batch_size = batches.training.batch_size
    outputs = np.empty((batch_size, target.outputs), factory.numpy_dtype)
    total, right = 0.0, 0
    index = np.arange(first, stop)
    for start in range(0, len(index), batch_size):
        rows = index[start:start + batch_size]
        network, y = batches.network(len(rows))
        batches.load(x, target, rows, network, y)
        total += len(rows) * _forward_cost(network, y, cost)
        predicted = outputs[:len(rows)]
        factory._read_samples(network.output, predicted)
        right += accuracy(predicted, target, rows)
    return total, right


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
    x = samples(X, "predict: X", inference.in_dim)
    batch_size = min(check.count(batch_size, "predict: batch_size"), len(x))
    factory = inference.factory
    result = np.empty((len(x), inference.out_dim), factory.numpy_dtype)
    host = np.empty((batch_size, inference.in_dim), factory.numpy_dtype)
    with factory.matrix(inference.in_dim, batch_size) as x_device, \
            factory.matrix(inference.out_dim, batch_size) as out_device, quiet_floating_point():
        work = inference._work(batch_size)
        try:
            for start in range(0, len(x), batch_size):
                count = min(batch_size, len(x) - start)
                xs, out = x_device, out_device
                if count < batch_size:
                    xs, out = x_device.columns(0, count), out_device.columns(0, count)
                np.copyto(host[:count], x[start:start + count])
                factory._write_samples(host[:count], xs)
                inference._run(xs, out, work)
                factory._read_samples(out, result[start:start + count])
        finally:
            for matrix in work:
                matrix.release()
    return result
