"""Learning-rate schedules: the learning rate of each epoch, for any optimizer.

``fit(network, X, y, optimizer=Adam(1e-3), schedule=Cosine(), epochs=20)`` trains epoch e at
the rate the schedule gives; the optimizer's own ``eta`` is the base rate the schedules below
scale (as ``torch.optim.lr_scheduler`` does with the optimizer's initial ``lr``). A schedule is
stepped once per epoch, and the rate reaches the device through the optimizer step's host
array, so it changes without a new plan or an allocation.

* ``Piecewise([(epochs, eta), ...])`` — the given rates, pair after pair (today's
  ``eta=[(5, 0.05), (3, 0.01)]``);
* ``StepDecay(every, factor=0.1)`` — the base rate times ``factor`` every ``every`` epochs
  (``torch``'s ``StepLR``);
* ``Cosine(epochs=None, eta_min=0.0)`` — from the base rate down to ``eta_min`` along half a
  cosine over ``epochs`` (default: fit's), as ``CosineAnnealingLR``;
* ``ReduceOnPlateau(factor=0.1, patience=10, threshold=1e-4, cooldown=0, min_eta=0.0,
  monitor="validation_cost")`` — the rate times ``factor`` when the monitored figure has not
  improved (relatively, by ``threshold``) for more than ``patience`` epochs, as
  ``ReduceLROnPlateau``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import _args
from .callbacks import MONITORS, monitor_name, monitored
from .errors import NnfsTypeError, NnfsValueError

if TYPE_CHECKING:
    from .fit import History


def _factor(value: object, what: str) -> float:
    factor = _args.real(value, what)
    if not 0.0 < factor < 1.0:
        raise NnfsValueError(f"{what} must be in (0, 1), got {factor}")
    return factor


class Schedule:
    """A learning-rate schedule; :meth:`start` gives the running one for a fit."""

    #: The epochs the schedule itself lasts, or None when fit's ``epochs`` decides.
    epochs: int | None = None
    #: Whether the schedule reads the history (and so needs its monitored figure).
    monitor: str | None = None

    def start(self, base: float, epochs: int) -> ScheduleRun:
        """The running schedule for a fit of ``epochs`` epochs at base rate ``base``."""
        raise NotImplementedError


class ScheduleRun:
    """A schedule while fit runs: :meth:`eta` of each epoch, :meth:`observe` after it."""

    def eta(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (from 1)."""
        raise NotImplementedError

    def observe(self, epoch: int, history: History) -> None:
        """After ``epoch``, with its figures in ``history``."""

    def state(self) -> dict[str, float]:
        """What the schedule carries from epoch to epoch (for checkpoints)."""
        return {}

    def load(self, state: dict[str, float]) -> None:
        """Continue from :meth:`state`."""


# --- piecewise: the rates as given ------------------------------------------------------------

@dataclass(frozen=True)
class Piecewise(Schedule):
    """The given rates, one (epochs, eta) pair after another."""

    pairs: tuple[tuple[int, float], ...]

    def __post_init__(self) -> None:
        pairs = self.pairs
        if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
            raise NnfsTypeError(f"Piecewise: give (epochs, eta) pairs such as [(5, 0.05), "
                                f"(3, 0.01)], got {pairs!r}")
        if not pairs:
            raise NnfsValueError("Piecewise: the schedule is empty; give at least one "
                                 "(epochs, eta) pair")
        checked = []
        for i, pair in enumerate(pairs):
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) \
                    or len(pair) != 2:
                raise NnfsTypeError(f"Piecewise: schedule[{i}] must be an (epochs, eta) pair, "
                                    f"got {pair!r}")
            checked.append((_args.count(pair[0], f"schedule[{i}] epochs"),
                            _args.learning_rate(pair[1], f"schedule[{i}] eta")))
        object.__setattr__(self, "pairs", tuple(checked))

    @property
    def epochs(self) -> int:  # type: ignore[override]
        return sum(n for n, _ in self.pairs)

    def start(self, base: float, epochs: int) -> ScheduleRun:
        return _PiecewiseRun([eta for n, eta in self.pairs for _ in range(n)])


@dataclass
class _PiecewiseRun(ScheduleRun):
    rates: list[float]

    def eta(self, epoch: int) -> float:
        return self.rates[min(epoch, len(self.rates)) - 1]


@dataclass(frozen=True)
class Constant(Schedule):
    """The base rate at every epoch (what ``fit`` uses without a schedule)."""

    def start(self, base: float, epochs: int) -> ScheduleRun:
        return _PiecewiseRun([base])


# --- step decay and cosine: functions of the epoch --------------------------------------------

@dataclass(frozen=True)
class StepDecay(Schedule):
    """The base rate times ``factor`` every ``every`` epochs: ``η·factor^⌊(e − 1)/every⌋``
    for epoch e (from 1), as ``torch.optim.lr_scheduler.StepLR(step_size=every,
    gamma=factor)`` stepped once per epoch."""

    every: int
    factor: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "every", _args.count(self.every, "StepDecay: every"))
        object.__setattr__(self, "factor", _factor(self.factor, "StepDecay: factor"))

    def start(self, base: float, epochs: int) -> ScheduleRun:
        return _FunctionRun(lambda e: base * self.factor ** ((e - 1) // self.every))


@dataclass(frozen=True)
class Cosine(Schedule):
    """Half a cosine from the base rate η down to ``eta_min`` over ``epochs`` epochs (fit's
    when None): ``eta_min + (η − eta_min)·(1 + cos(π·(e − 1)/epochs))/2`` for epoch e, as
    ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=epochs, eta_min=eta_min)`` stepped
    once per epoch."""

    epochs: int | None = None
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs is not None:
            object.__setattr__(self, "epochs", _args.count(self.epochs, "Cosine: epochs"))
        low = _args.real(self.eta_min, "Cosine: eta_min")
        if low < 0:
            raise NnfsValueError(f"Cosine: eta_min must be 0 or more, got {low}")
        object.__setattr__(self, "eta_min", low)

    def start(self, base: float, epochs: int) -> ScheduleRun:
        if self.eta_min >= base:
            raise NnfsValueError(f"Cosine: eta_min ({self.eta_min}) must be below the "
                                 f"optimizer's learning rate ({base})")
        period, low = self.epochs or epochs, self.eta_min
        return _FunctionRun(
            lambda e: low + (base - low) * (1 + math.cos(math.pi * (e - 1) / period)) / 2)


@dataclass
class _FunctionRun(ScheduleRun):
    function: Callable[[int], float]

    def eta(self, epoch: int) -> float:
        return float(self.function(epoch))


# --- reduce on plateau: reads the history -----------------------------------------------------

@dataclass(frozen=True)
class ReduceOnPlateau(Schedule):
    """The rate times ``factor`` (but not below ``min_eta``) once ``monitor`` has not
    improved for more than ``patience`` epochs, then ``cooldown`` epochs of rest, as
    ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (threshold mode ``rel``) stepped after
    each epoch: a cost improves when below ``best·(1 − threshold)``, an accuracy when above
    ``best·(1 + threshold)``."""

    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    cooldown: int = 0
    min_eta: float = 0.0
    monitor: str = "validation_cost"

    def __post_init__(self) -> None:
        object.__setattr__(self, "factor", _factor(self.factor, "ReduceOnPlateau: factor"))
        for name in ("patience", "cooldown"):
            object.__setattr__(self, name, _args.count(getattr(self, name),
                                                       f"ReduceOnPlateau: {name}", minimum=0))
        for name in ("threshold", "min_eta"):
            value = _args.real(getattr(self, name), f"ReduceOnPlateau: {name}")
            if value < 0:
                raise NnfsValueError(f"ReduceOnPlateau: {name} must be 0 or more, got {value}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "monitor", monitor_name(self.monitor, "ReduceOnPlateau"))

    def start(self, base: float, epochs: int) -> ScheduleRun:
        return _PlateauRun(self, base)


#: Changes of the rate smaller than this are ignored (torch's ``eps``).
_PLATEAU_EPS = 1e-8


@dataclass
class _PlateauRun(ScheduleRun):
    rule: ReduceOnPlateau
    rate: float
    best: float = field(default=math.inf)
    bad: int = 0
    cooling: int = 0

    def __post_init__(self) -> None:
        if not MONITORS[self.rule.monitor]:
            self.best = -math.inf

    def eta(self, epoch: int) -> float:
        return self.rate

    def _better(self, value: float) -> bool:
        if MONITORS[self.rule.monitor]:
            return value < self.best * (1.0 - self.rule.threshold)
        return value > self.best * (1.0 + self.rule.threshold)

    def observe(self, epoch: int, history: History) -> None:
        value = monitored(history, self.rule.monitor)
        if self._better(value):
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        if self.cooling > 0:
            self.cooling -= 1
            self.bad = 0
        if self.bad > self.rule.patience:
            lower = max(self.rate * self.rule.factor, self.rule.min_eta)
            if self.rate - lower > _PLATEAU_EPS:
                self.rate = lower
            self.cooling, self.bad = self.rule.cooldown, 0

    def state(self) -> dict[str, float]:
        return {"rate": self.rate, "best": self.best, "bad": self.bad, "cooling": self.cooling}

    def load(self, state: dict[str, float]) -> None:
        self.rate, self.best = float(state["rate"]), float(state["best"])
        self.bad, self.cooling = int(state["bad"]), int(state["cooling"])


def schedule(value: object, what: str) -> Schedule:
    """A schedule object, or (epochs, eta) pairs as a :class:`Piecewise` schedule."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return Piecewise(tuple(value))
    raise NnfsTypeError(f"{what}: schedule must be a nnfs.schedules object such as "
                        f"nnfs.schedules.Cosine(), or (epochs, eta) pairs, got "
                        f"{type(value).__name__} {value!r}")


__all__ = ["Constant", "Cosine", "Piecewise", "ReduceOnPlateau", "Schedule", "ScheduleRun",
           "StepDecay", "schedule"]
