"""Stochastic gradient descent over a training network, and host transfer.

``sgd`` follows the article: each epoch runs the forward pass, the cost's derivative, the
backward pass and the update, on the whole batch the training network was built for. It returns
the cost measured in the last epoch's forward pass, or one such cost per (epochs, eta) pair of a
schedule.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Sequence

import numpy as np


from . import _checks as check
from .costs import Cost, cost as _cost
from .errors import NnfsTypeError, NnfsValueError, TrainingDiverged
from .arrays import Matrix, Vector
from .network import TrainingNetwork


def _schedule(epochs: object, eta: object) -> list[tuple[int, float]]:
    """The (epochs, eta) pairs of an sgd call, checked."""
    if eta is not None:
        return [(check.count(epochs, "sgd: epochs"), _eta(eta, "sgd: eta"))]
    if isinstance(epochs, (str, bytes)) or not isinstance(epochs, Sequence):
        raise NnfsTypeError(
            "sgd: give epochs and eta, as in sgd(training, y, cost, 20, 0.05), or a schedule of "
            f"(epochs, eta) pairs, as in sgd(training, y, cost, [(5, 0.05), (3, 0.01)]); "
            f"got epochs={epochs!r} and no eta"
        )
    if not epochs:
        raise NnfsValueError("sgd: the schedule is empty; give at least one (epochs, eta) pair")
    pairs = []
    for i, pair in enumerate(epochs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise NnfsTypeError(f"sgd: schedule[{i}] must be an (epochs, eta) pair, got {pair!r}")
        pairs.append((check.count(pair[0], f"sgd: schedule[{i}] epochs"),
                      _eta(pair[1], f"sgd: schedule[{i}] eta")))
    return pairs


def _eta(value: object, what: str) -> float:
    eta = check.real(value, what)
    if eta <= 0:
        raise NnfsValueError(f"{what} (the learning rate) must be positive, got {eta}")
    return eta


def sgd(training: TrainingNetwork, y: Matrix, cost: Cost, epochs: object,
        eta: float | None = None) -> float | list[float]:
    """Train ``training`` towards the outputs ``y`` by gradient descent on the whole batch.

    ``sgd(training, y, cost, epochs, eta)`` runs ``epochs`` epochs with learning rate ``eta`` and
    returns the cost of the last epoch's forward pass. ``sgd(training, y, cost, [(epochs, eta),
    ...])`` runs each pair in turn and returns one cost per pair.

    Each epoch updates every parameter by ``−(η/n)·Σ ∂ℓ/∂p`` (n: columns of the batch). The
    loop drains the device's queue every ``factory.sync_every`` epochs when the backend asks
    for it, and otherwise only where the cost is read.

    Ctrl-C stops sgd at the end of the epoch it arrives in (a second one at once), so the
    weights are always those of a whole epoch.

    If a cost becomes NaN or infinite, sgd raises :class:`nnfs.TrainingDiverged` naming the
    epoch and eta, with the weights of the epoch before, the last whose cost was finite (the
    weights sgd was called with, if the first epoch's cost was not finite).
    """
    if not isinstance(training, TrainingNetwork):
        raise NnfsTypeError(
            f"sgd: training must be made by nnfs.training_network, got {type(training).__name__}"
        )
    check.live(training, "sgd: training")
    check.live(training.input, "sgd: the training network's input")
    y = training.check_target(y, "sgd: y")
    cost = _cost(cost, "sgd: cost")
    cost.check_output(training.layers[-1].activation)
    pairs = _schedule(epochs, eta)
    with quiet_floating_point(), HeldCtrlC() as held:
        costs = _train(training, y, cost, pairs, held)
    return costs[0] if eta is not None else costs


class HeldCtrlC:
    """Ctrl-C while sgd or fit trains: the first one is held until the epoch (sgd) or batch
    (fit) being trained is done, so that training stops with the weights of a whole step,
    however the backend updates them (layer by layer, in halves...); a second one interrupts
    at once.

    Only where Python's own handler is in place, in the main thread (where signals arrive):
    a handler of the caller's is left alone."""

    def __init__(self) -> None:
        self.pending = False
        self.previous: object = None

    def __enter__(self) -> HeldCtrlC:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum: int, frame: object) -> None:
        self.pending = True
        signal.signal(signal.SIGINT, self.previous)  # the next one interrupts at once

    def __exit__(self, error_type: object, *exc_info: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.pending and error_type is None:  # held past the last batch: not lost
            raise KeyboardInterrupt


def quiet_floating_point() -> contextlib.AbstractContextManager:
    """Silence numpy's overflow and invalid-value warnings while training: a cost that stops
    being finite is reported by nnfs itself (``TrainingDiverged``), once, with the epoch."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


def _train(training: TrainingNetwork, y: Matrix, cost: Cost,
           pairs: list[tuple[int, float]], held: HeldCtrlC) -> list[float]:
    """The schedule ``pairs`` of checked arguments; the cost of each pair's last forward pass.

    The parameters are copied once, at the start, into the training network's backup. When an
    epoch's cost is not finite, they are restored from it and the epochs before the last
    finite one replayed, which gives back the weights of that epoch: the same operations on the
    same buffers give the same numbers, and no epoch pays for a copy.
    """
    factory = training.factory
    factory._copy(training.inference.parameters, training.backup)
    try:
        if factory.asynchronous and not factory.sync_every:
            return _queued(training, y, cost, pairs, held)
        return _checked(training, y, cost, pairs, held)
    except TrainingDiverged as diverged:
        _replay(training, y, cost, pairs, max(0, diverged.epoch - 2))
        raise


def _checked(training: TrainingNetwork, y: Matrix, cost: Cost,
             pairs: list[tuple[int, float]], held: HeldCtrlC) -> list[float]:
    """The schedule, each epoch's cost read and checked before its update."""
    costs, done = [], 0
    for epochs, eta in pairs:
        costs.append(_checked_epochs(training, y, cost, epochs, eta, done, held))
        done += epochs
    return costs


def _diverged(epoch: int, epochs: int, eta: float, value: float, done: int) -> TrainingDiverged:
    """``epoch`` of the ``epochs`` at ``eta``, which followed ``done`` epochs of the call."""
    where = f"epoch {epoch} of {epochs} at eta={eta}"
    if done:
        where = f"epoch {done + epoch} of the schedule ({where})"
    if done + epoch == 1:
        weights = "the weights are those sgd was called with"
    else:
        weights = f"the weights are those of epoch {done + epoch - 1}, the last with a finite cost"
    return TrainingDiverged(
        f"sgd: training diverged in {where}: the cost became {value}; {weights}. "
        "Try a smaller eta.",
        done + epoch, eta,
    )


def _checked_epochs(training: TrainingNetwork, y: Matrix, cost: Cost, epochs: int,
                    eta: float, done: int, held: HeldCtrlC) -> float:
    """Read every epoch's cost before its update, and stop at the first that is not finite.

    On a synchronous backend the read costs nothing; an asynchronous one that drains its queue
    every ``sync_every`` epochs waits there anyway.
    """
    factory = training.factory
    forward = training._forward_ops
    step = training._step_ops(y, cost, -eta / training.batch_size)
    measure = training._cost_op(y, cost)
    every = factory.sync_every
    value = math.nan
    for epoch in range(1, epochs + 1):
        for op in forward:
            op()
        value = measure()
        if not math.isfinite(value):
            raise _diverged(epoch, epochs, eta, value, done)
        for op in step:
            op()
        if every and epoch % every == 0:
            factory.synchronize()
        if held.pending:  # Ctrl-C came during this epoch: stop with its weights whole
            factory.synchronize()
            raise KeyboardInterrupt
    return value


def _queued(training: TrainingNetwork, y: Matrix, cost: Cost,
            pairs: list[tuple[int, float]], held: HeldCtrlC) -> list[float]:
    """Queue every epoch without reading anything back (the article's CUDA speed) but the cost
    at the end of each pair. If one is not finite, go back to the parameters of the start and
    run the schedule again one epoch at a time, reading each cost, to find the epoch."""
    costs = []
    for epochs, eta in pairs:
        ops = training._epoch_ops(y, cost, -eta / training.batch_size)
        for _ in range(epochs):
            for op in ops:
                op()
            if held.pending:  # Ctrl-C came during this epoch: stop with its weights whole
                training.factory.synchronize()
                raise KeyboardInterrupt
        costs.append(training._cost_op(y, cost)())
        if not math.isfinite(costs[-1]):
            training.factory._copy(training.backup, training.inference.parameters)  # restart
            return _checked(training, y, cost, pairs, held)
    return costs


def _replay(training: TrainingNetwork, y: Matrix, cost: Cost, pairs: list[tuple[int, float]],
            epochs: int) -> None:
    """Restore the parameters from the backup and run the first ``epochs`` epochs of the
    schedule again, reading nothing back."""
    factory = training.factory
    factory._copy(training.backup, training.inference.parameters)
    every, count = factory.sync_every, 0
    for pair_epochs, eta in pairs:
        ops = training._epoch_ops(y, cost, -eta / training.batch_size)
        for _ in range(min(pair_epochs, epochs - count)):
            for op in ops:
                op()
            count += 1
            if every and count % every == 0:
                factory.synchronize()


def transfer(source: object, destination: Matrix | Vector | None = None):
    """Move data between the host and a device, as the article's ``transfer!``/``transfer``.

    * ``transfer(data, destination)`` copies host data (nested lists or a numpy array, given row
      by row as on the host) or a matrix of any backend into ``destination``, and returns it.
    * ``transfer(matrix)`` returns a numpy copy of a matrix (rows × cols) or vector.
    """
    if destination is None:
        if not isinstance(source, (Matrix, Vector)):
            raise NnfsTypeError(
                "transfer: with one argument, source must be an nnfs Matrix or Vector to copy to "
                f"the host, got {type(source).__name__}; to copy host data to the device, give a "
                "destination: transfer(data, destination)"
            )
        check.live(source, "transfer: source")
        return source.factory.to_host(source)
    if not isinstance(destination, (Matrix, Vector)):
        raise NnfsTypeError(
            f"transfer: destination must be an nnfs Matrix or Vector, got {type(destination).__name__}"
        )
    check.live(destination, "transfer: destination")
    factory = destination.factory
    if isinstance(source, (Matrix, Vector)):
        check.live(source, "transfer: source")
        if source.shape != destination.shape:
            raise check.ShapeError(
                f"transfer: source is a {source.shape_text} but destination is a "
                f"{destination.shape_text}"
            )
        if source.factory is factory:
            return factory.copy(source, destination)
    host = check.host_array(source, destination.shape, factory.numpy_dtype, "transfer: source")
    factory._write(host, destination)
    return destination

