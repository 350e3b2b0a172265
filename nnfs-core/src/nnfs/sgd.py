"""Stochastic gradient descent over a training network, as in the article.

``sgd`` runs epochs of one :class:`nnfs.TrainingStep` each — the forward pass, the cost's
derivative, the backward pass and the update — on the whole batch the training network was
built for. It returns the cost measured in the last epoch's forward pass, or one such cost per
(epochs, eta) pair of a schedule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import overload

from . import _checks as check
from .arrays import Matrix
from .costs import Cost, cost as _cost
from .errors import NnfsTypeError, TrainingDiverged
from .training import (
    HeldCtrlC,
    Releases,
    Rollback,
    TrainingNetwork,
    TrainingStep,
    quiet_floating_point,
    schedule_pairs,
)


@overload
def sgd(training: TrainingNetwork, y: Matrix, cost: Cost | str, epochs: int,
        eta: float) -> float: ...


@overload
def sgd(training: TrainingNetwork, y: Matrix, cost: Cost | str,
        epochs: Sequence[tuple[int, float]], eta: None = None) -> list[float]: ...


def sgd(training: TrainingNetwork, y: Matrix, cost: Cost | str,
        epochs: int | Sequence[tuple[int, float]],
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

    Layers with dropout draw new masks each epoch: epoch k of a call is step ``s + k − 1`` of
    the training network's ``dropout_counter``, s where the previous call ended.

    If a cost becomes NaN or infinite, or the last update leaves a parameter that is not
    finite, sgd raises :class:`nnfs.TrainingDiverged` naming the epoch and eta, with the
    weights of the last epoch whose cost was finite (the weights sgd was called with, if the
    first epoch's cost was not finite).
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
    pairs = schedule_pairs(epochs, eta, "sgd")
    with training.inference.in_use("sgd"), quiet_floating_point(), HeldCtrlC() as held:
        costs = _Run(training, y, cost, pairs, held).train()
    return costs[0] if eta is not None else costs


#: How long sgd holds its factory's lock at a time: a release from another thread waits at
#: most about this long, and an epoch of microseconds pays for the lock once per many epochs.
RUN_SECONDS = 1e-3


def _runs(first: int, stop: int) -> Iterator[range]:
    """The epochs ``first`` to ``stop − 1`` in runs of about :data:`RUN_SECONDS` each (the
    first run is one epoch, which times them)."""
    size, start = 1, first
    while start < stop:
        began = time.perf_counter()
        run = range(start, min(start + size, stop))
        yield run
        spent = time.perf_counter() - began
        per_epoch = spent / len(run) if spent > 0 else RUN_SECONDS
        size = max(1, min(4096, int(RUN_SECONDS / per_epoch)))
        start = run.stop


class _Run:
    """One call of sgd, of checked arguments: its schedule's steps, and the rollback."""

    def __init__(self, training: TrainingNetwork, y: Matrix, cost: Cost,
                 pairs: list[tuple[int, float]], held: HeldCtrlC):
        self.training = training
        self.factory = training.factory
        self.pairs = pairs
        self.held = held
        n = training.batch_size
        self.steps = [training.step(y, cost, -eta / n) for _, eta in pairs]
        self.rollback = Rollback(training)
        self.releases = Releases(training, "sgd", (y, "y"))
        self.good_epochs = 0
        #: Dropout's step number of this call's first epoch (each epoch is one step; a later
        #: call goes on from where this one ends), or None without dropout.
        self.first_step = (int(training.dropout_counter[0]) if training.has_dropout
                           else None)

    def at_epoch(self, epoch: int) -> None:
        """Draw dropout's masks for epoch ``epoch`` (from 1) of this call."""
        if self.first_step is not None:
            self.training.dropout_counter[0] = self.first_step + epoch - 1

    def step_of(self, epoch: int) -> TrainingStep:
        """The step of epoch ``epoch`` (from 0) of the schedule."""
        for (epochs, _), step in zip(self.pairs, self.steps, strict=True):
            if epoch < epochs:
                return step
            epoch -= epochs
        raise IndexError(epoch)

    def train(self) -> list[float]:
        """The schedule; the cost of each pair's last forward pass.

        The parameters are copied once, at the start, into the training network's backup:
        a divergence replays the epochs from there (see :class:`nnfs.training.Rollback`).
        """
        with self.releases.lock:
            self.rollback.save()
        try:
            costs = self._queued() if self.factory.asynchronous else self._checked()
            total = sum(epochs for epochs, _ in self.pairs)
            with self.releases.lock:
                self.releases.check()
                finite = self.rollback.parameters_finite()
            if not finite:  # no forward pass checks the last update
                raise self._diverged(total, self.pairs[-1][1], math.nan, update=True)
        except TrainingDiverged:
            with self.releases.lock:
                self.releases.check()
                self.rollback.replay(self.good_epochs, self._redo)
            raise
        self.at_epoch(total + 1)  # the next call's first epoch
        return costs

    def _redo(self, epoch: int) -> None:
        """Epoch ``epoch`` (from 0) again, with its masks."""
        self.at_epoch(epoch + 1)
        self.step_of(epoch).run()

    def _checked(self) -> list[float]:
        """Every epoch's cost read before its update; stop at the first that is not finite.

        On a synchronous backend the read costs nothing; an asynchronous one comes here only
        to find the epoch whose cost stopped being finite."""
        costs, done, every = [], 0, self.factory.sync_every
        factory, held, releases = self.factory, self.held, self.releases
        isfinite = math.isfinite
        for (epochs, eta), step in zip(self.pairs, self.steps, strict=True):
            forward, measure = step.forward, step.cost
            backward = step.gradient + step.update
            value = math.nan
            for run in _runs(done + 1, done + epochs + 1):
                with releases.lock:  # a run of epochs: see _runs
                    releases.check()
                    for epoch in run:
                        self.at_epoch(epoch)
                        for op in forward:
                            op()
                        value = measure()
                        if not isfinite(value):
                            raise self._diverged(epoch, eta, value)
                        for op in backward:
                            op()
                        if every and epoch % every == 0:
                            factory.synchronize()
                        if held.pending:  # Ctrl-C came during this epoch: stop with it whole
                            factory.synchronize()
                            raise KeyboardInterrupt
            costs.append(value)
            done += epochs
        return costs

    def _queued(self) -> list[float]:
        """Queue every epoch without reading anything back (the article's CUDA speed) but the
        cost at the end of each pair, draining the queue every ``sync_every`` epochs of a pair
        where the backend declares it (so that no more work than that is ever queued). If a
        cost is not finite, go back to the parameters of the start and run the schedule again
        one epoch at a time, reading each cost, to find the epoch."""
        costs, every, done = [], self.factory.sync_every, 0
        lock, releases, held = self.releases.lock, self.releases, self.held
        for (epochs, _), step in zip(self.pairs, self.steps, strict=True):
            ops = step.forward + step.gradient + step.update
            for run in _runs(1, epochs + 1):
                with lock:
                    releases.check()
                    for epoch in run:
                        self.at_epoch(done + epoch)
                        for op in ops:
                            op()
                        if every and epoch % every == 0:
                            self.factory.synchronize()
                        if held.pending:  # Ctrl-C came during this epoch: stop with it whole
                            self.factory.synchronize()
                            raise KeyboardInterrupt
            with lock:
                releases.check()
                costs.append(step.cost())
            done += epochs
            if not math.isfinite(costs[-1]):
                self.rollback.restore()
                return self._checked()
        return costs

    def _diverged(self, epoch: int, eta: float, value: float,
                  update: bool = False) -> TrainingDiverged:
        """The error for epoch ``epoch`` (from 1) of the schedule: its cost was ``value``, or,
        with ``update``, its update left parameters that are not finite."""
        done = 0
        for epochs, _ in self.pairs:
            if epoch <= done + epochs:
                break
            done += epochs
        where = f"epoch {epoch - done} of {epochs} at eta={eta}"
        if len(self.pairs) > 1:
            where = f"epoch {epoch} of the schedule ({where})"
        # the weights of epoch k are those its forward pass used: after k − 1 updates. A cost
        # that is not finite condemns the update before it; a bad update only itself.
        last_good = epoch if update else epoch - 1
        #: Updates to replay from the start: those that gave the weights of ``last_good``.
        self.good_epochs = max(0, last_good - 1)
        what = ("its update left parameters that are not finite" if update
                else f"the cost became {value}")
        if self.good_epochs == 0:
            weights = "the weights are those sgd was called with"
        else:
            weights = f"the weights are those of epoch {last_good}, the last with a finite cost"
        return TrainingDiverged(
            f"sgd: training diverged in {where}: {what}; {weights}. Try a smaller eta.",
            epoch, eta)
