"""What ``fit`` does between epochs: early stopping, and the figures it monitors.

``fit(..., validation=(Xv, yv), early_stopping=nnfs.EarlyStopping(patience=5))`` stops training
once the monitored figure has not improved for ``patience`` epochs, as Keras'
``EarlyStopping`` does, and with ``restore_best`` (the default) ends with the weights of the
best epoch, kept on the device in a copy allocated when training starts. ``History.best_epoch``
and ``History.stopped_epoch`` say what happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import _args
from .contract import Step, steps
from .errors import NnfsTypeError, NnfsValueError

if TYPE_CHECKING:
    from .arrays import Vector
    from .fit import History
    from .training import TrainingNetwork

#: The figures of a History that can be monitored, and whether lower is better.
MONITORS = {"cost": True, "validation_cost": True, "validation_accuracy": False}


def monitor_name(value: object, what: str) -> str:
    """A monitored figure's name, checked."""
    if value not in MONITORS:
        raise NnfsValueError(f"{what}: monitor must be one of {', '.join(MONITORS)}, "
                             f"got {value!r}")
    return str(value)


def needs_validation(monitor: str) -> bool:
    return monitor.startswith("validation_")


def monitored(history: History, monitor: str) -> float:
    """The last epoch's value of ``monitor``."""
    return float(getattr(history, monitor)[-1])


@dataclass(frozen=True)
class EarlyStopping:
    """Stop ``fit`` when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs in a row, as Keras' ``EarlyStopping``.

    * ``monitor`` — ``"validation_cost"`` (lower is better), ``"validation_accuracy"``
      (higher is better), both needing ``fit``'s ``validation``, or ``"cost"`` (the training
      cost);
    * ``restore_best`` — end with the weights of the best epoch (``History.best_epoch``),
      whether training stopped early or ran all its epochs; without it, the weights are those
      of the last epoch.
    """

    patience: int = 5
    min_delta: float = 0.0
    monitor: str = "validation_cost"
    restore_best: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "patience",
                           _args.count(self.patience, "EarlyStopping: patience", minimum=0))
        delta = _args.real(self.min_delta, "EarlyStopping: min_delta")
        if delta < 0:
            raise NnfsValueError(f"EarlyStopping: min_delta must be 0 or more, got {delta}")
        object.__setattr__(self, "min_delta", delta)
        object.__setattr__(self, "monitor", monitor_name(self.monitor, "EarlyStopping"))
        if not isinstance(self.restore_best, bool):
            raise NnfsTypeError(f"EarlyStopping: restore_best must be True or False, got "
                                f"{self.restore_best!r}")

    def improves(self, value: float, best: float) -> bool:
        """Whether ``value`` is better than ``best`` by more than ``min_delta``."""
        if math.isnan(best):
            return True
        if MONITORS[self.monitor]:
            return value < best - self.min_delta
        return value > best + self.min_delta


@dataclass(eq=False)
class EarlyStoppingState:
    """Early stopping while ``fit`` runs: the best value and epoch, the epochs since, and the
    best weights (a device vector allocated when training starts)."""

    rule: EarlyStopping
    best: float = math.nan
    best_epoch: int | None = None
    wait: int = 0
    weights: Vector | None = None  # with restore_best
    _keep: tuple[Step, ...] = ()
    _put_back: tuple[Step, ...] = ()
    kept: bool = field(default=False)

    @classmethod
    def start(cls, rule: EarlyStopping, training: TrainingNetwork) -> EarlyStoppingState:
        state = cls(rule)
        if rule.restore_best:
            factory = training.factory
            parameters = training.inference.parameters
            state.weights = factory.vector(parameters.size)
            backend = factory.backend
            state._keep = tuple(steps(backend.copy(parameters, state.weights)))
            state._put_back = tuple(steps(backend.copy(state.weights, parameters)))
        return state

    def observe(self, epoch: int, history: History) -> bool:
        """After ``epoch``: keep its weights if it is the best; True to stop."""
        value = monitored(history, self.rule.monitor)
        if not math.isnan(value) and self.rule.improves(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            for step in self._keep:
                step()
            self.kept = True
            return False
        self.wait += 1
        return self.wait >= self.rule.patience

    def finish(self) -> None:
        """At the end of training: the best epoch's weights back, with restore_best."""
        if self.kept:
            for step in self._put_back:
                step()

    def release(self) -> None:
        if self.weights is not None:
            self.weights.release()


__all__ = ["MONITORS", "EarlyStopping", "EarlyStoppingState", "monitor_name", "monitored"]
