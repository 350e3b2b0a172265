"""Optimizers: SGD (with momentum, Nesterov and weight decay), Adam and AdamW.

An optimizer is a small frozen record of its settings, checked when it is made; ``fit`` takes
one (``nnfs.fit(network, X, y, optimizer=nnfs.optimizers.Adam(), epochs=10)``) and, when
training starts, allocates its state on the device with every other buffer. Each step is then
one fused pass of the backend over the flat parameter, gradient and state vectors
(``Backend.optimizer_step``): nothing is allocated per step, and a learning rate that changes
(a schedule, see :mod:`nnfs.schedules`) or Adam's bias corrections reach the backend through a
small host array rewritten in place.

The update rules are ``torch.optim``'s (see :class:`nnfs.kinds.OptimizerKind`):

* ``SGD(eta, momentum=0.0, nesterov=False, weight_decay=0.0)`` — ``torch.optim.SGD`` with
  dampening 0: weight decay is added to the gradient, ``u ← μu + g``, ``p ← p − ηu`` (Nesterov:
  ``p ← p − η(g + μu)``);
* ``Adam(eta=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)`` — weight decay added to
  the gradient (L2), bias-corrected moments;
* ``AdamW(eta=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)`` — weight decay
  decoupled from the gradient: ``p ← p − ηλp`` before the Adam step.

**Weight decay applies to weights, not biases.** PyTorch decays every parameter it is given
unless the biases are put in a parameter group of their own; nnfs decays the weights only, as
Keras' kernel regularizers and scikit-learn's ``alpha`` do. The gradient is that of the mean
loss of a batch, as in PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import numpy as np

from . import _args
from .arrays import Vector
from .contract import Step, steps
from .errors import NnfsTypeError, NnfsValueError, OutOfDeviceMemory, UnsupportedOperation
from .kinds import HYPER_SIZE, Hyper, Operation, OptimizerKind

if TYPE_CHECKING:
    from .network import InferenceNetwork
    from .training import TrainingNetwork


def _fraction(value: object, what: str) -> float:
    """A number in [0, 1): a momentum or a beta."""
    number = _args.real(value, what)
    if not 0.0 <= number < 1.0:
        raise NnfsValueError(f"{what} must be in [0, 1), got {number}")
    return number


def _decay(value: object, what: str) -> float:
    number = _args.real(value, what)
    if number < 0:
        raise NnfsValueError(f"{what} must be 0 or more, got {number}")
    return number


def _eps(value: object, what: str) -> float:
    number = _args.real(value, what)
    if number <= 0:
        raise NnfsValueError(f"{what} must be positive, got {number}")
    return number


def _betas(value: object, what: str) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise NnfsTypeError(f"{what} must be a pair (beta1, beta2) such as (0.9, 0.999), "
                            f"got {value!r}")
    return (_fraction(value[0], f"{what}[0] (beta1)"), _fraction(value[1], f"{what}[1] (beta2)"))


class Optimizer:
    """What every optimizer has: a learning rate ``eta``, a ``weight_decay`` and a
    :class:`nnfs.kinds.OptimizerKind`. Make one of :class:`SGD`, :class:`Adam` or
    :class:`AdamW`."""

    eta: float
    weight_decay: float

    @property
    def kind(self) -> OptimizerKind:
        raise NotImplementedError

    @property
    def plain(self) -> bool:
        """Plain gradient descent: no state, no weight decay (training then updates the
        weights inside the products that make their gradient, where the backend can)."""
        return self.kind == OptimizerKind.SGD and self.weight_decay == 0.0

    def constants(self) -> dict[Hyper, float]:
        """The numbers of the step that do not change from step to step."""
        return {Hyper.WEIGHT_DECAY: self.weight_decay}

    def settings(self) -> dict[str, float]:
        """The settings as plain numbers, for checkpoints and messages."""
        raise NotImplementedError


@dataclass(frozen=True)
class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD`` (dampening 0): momentum μ in
    [0, 1), Nesterov's momentum (needs μ > 0), and weight decay λ ≥ 0 on the weights."""

    eta: float
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "eta", _args.learning_rate(self.eta, "SGD: eta"))
        object.__setattr__(self, "momentum", _fraction(self.momentum, "SGD: momentum"))
        if not isinstance(self.nesterov, (bool, np.bool_)):
            raise NnfsTypeError(f"SGD: nesterov must be True or False, got {self.nesterov!r}")
        object.__setattr__(self, "nesterov", bool(self.nesterov))
        if self.nesterov and self.momentum == 0.0:
            raise NnfsValueError("SGD: nesterov=True needs a momentum above 0 (Nesterov's "
                                 "momentum looks ahead along the velocity), got momentum=0.0")
        object.__setattr__(self, "weight_decay", _decay(self.weight_decay, "SGD: weight_decay"))

    @property
    def kind(self) -> OptimizerKind:
        if self.momentum == 0.0:
            return OptimizerKind.SGD
        return OptimizerKind.NESTEROV if self.nesterov else OptimizerKind.MOMENTUM

    def constants(self) -> dict[Hyper, float]:
        return {**super().constants(), Hyper.MOMENTUM: self.momentum}

    def settings(self) -> dict[str, float]:
        return {"eta": self.eta, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (no amsgrad): weight decay λ is added to the gradient
    (L2 regularisation, on the weights)."""

    eta: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    #: Weight decay added to the gradient (False) or decoupled from it (AdamW: True).
    decoupled = False

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "eta", _args.learning_rate(self.eta, f"{name}: eta"))
        object.__setattr__(self, "betas", _betas(self.betas, f"{name}: betas"))
        object.__setattr__(self, "eps", _eps(self.eps, f"{name}: eps"))
        object.__setattr__(self, "weight_decay",
                           _decay(self.weight_decay, f"{name}: weight_decay"))

    @property
    def kind(self) -> OptimizerKind:
        return OptimizerKind.ADAMW if self.decoupled else OptimizerKind.ADAM

    def constants(self) -> dict[Hyper, float]:
        beta1, beta2 = self.betas
        return {**super().constants(), Hyper.BETA1: beta1, Hyper.BETA2: beta2,
                Hyper.EPS: self.eps}

    def settings(self) -> dict[str, float]:
        return {"eta": self.eta, "beta1": self.betas[0], "beta2": self.betas[1],
                "eps": self.eps, "weight_decay": self.weight_decay}


@dataclass(frozen=True)
class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: weight decay decoupled from the gradient
    (``p ← p − ηλp`` on the weights, then Adam's step)."""

    weight_decay: float = 0.01
    decoupled = True


def optimizer(value: object, what: str = "optimizer") -> Optimizer:
    """``value`` as an optimizer: an :class:`Optimizer`, or a name (``"sgd"`` needs a learning
    rate, so names are for the command line, which gives one)."""
    if isinstance(value, Optimizer):
        return value
    raise NnfsTypeError(f"{what} must be an optimizer such as nnfs.optimizers.Adam() or "
                        f"nnfs.optimizers.SGD(0.1, momentum=0.9), got {type(value).__name__} "
                        f"{value!r}")



#: The optimizers by name (``nnfs train --optimizer``, the estimators' ``optimizer=``), and the
#: learning rate each starts from when none is given: 0.05 for SGD with or without momentum,
#: 0.003 for Adam and AdamW (which reaches 98% on the digits in 20 epochs).
RATES = {"sgd": 0.05, "momentum": 0.05, "nesterov": 0.05, "adam": 3e-3, "adamw": 3e-3}


def named(name: object, eta: float | None = None, *, momentum: float | None = None,
          weight_decay: float | None = None, what: str = "optimizer") -> Optimizer:
    """The optimizer called ``name`` (one of :data:`RATES`), at ``eta`` (default: its rate in
    :data:`RATES`). ``momentum`` (default 0.9) is for ``"momentum"`` and ``"nesterov"`` only;
    ``weight_decay`` defaults to each optimizer's own (0, and 0.01 for AdamW)."""
    if not isinstance(name, str) or name not in RATES:
        raise NnfsValueError(f"{what} must be one of {', '.join(RATES)}, got {name!r}")
    if momentum is not None and name not in ("momentum", "nesterov"):
        raise NnfsValueError(f"momentum is for the optimizers momentum and nesterov, not {name}")
    rate = RATES[name] if eta is None else eta
    if name in ("sgd", "momentum", "nesterov"):
        return SGD(rate, momentum=0.0 if name == "sgd" else (0.9 if momentum is None else momentum),
                   nesterov=name == "nesterov", weight_decay=weight_decay or 0.0)
    if name == "adam":
        return Adam(rate, weight_decay=weight_decay or 0.0)
    return AdamW(rate, weight_decay=0.01 if weight_decay is None else weight_decay)

# --- the optimizer while training: its state on the device -------------------------------------

@dataclass(eq=False)
class OptimizerState:
    """An optimizer bound to a training network: its state vectors on the device (allocated
    here, once, when training starts), the decay mask, the host array of the step's numbers,
    and the step count. :meth:`steps` is the prepared update that a
    :class:`nnfs.TrainingStep` runs after the gradient; ``eta`` is the learning rate of the
    next step, which a schedule sets."""

    optimizer: Optimizer
    training: TrainingNetwork
    eta: float = 0.0
    #: Updates done so far (Adam's t is this plus one during a step).
    step: int = 0
    vectors: tuple[Vector, ...] = ()
    backups: tuple[Vector, ...] = ()
    decay: Vector | None = None
    hyper: np.ndarray = field(default_factory=lambda: np.zeros(HYPER_SIZE))
    _plan: tuple[Step, ...] = ()
    _copies: tuple[Sequence[Step], Sequence[Step]] = ((), ())
    _saved_step: int = 0

    @classmethod
    def start(cls, optimizer: Optimizer, training: TrainingNetwork) -> OptimizerState:
        """Allocate the state of ``optimizer`` for ``training`` (zeros), all or nothing."""
        factory = training.factory
        if Operation.OPTIMIZER_STEP in factory.unsupported:
            raise UnsupportedOperation(
                f"the {factory.name} backend does not provide optimizer_step, which the "
                f"{optimizer.kind} optimizer needs (declared unsupported); train with plain "
                "SGD (eta=...) on it, or choose another backend")
        parameters = training.inference.parameters
        count = parameters.size
        sizes = state_sizes(optimizer, count)
        nbytes = sum(sizes) * factory.itemsize
        factory.check_fits(nbytes, max(sizes, default=0) * factory.itemsize,
                           f"the state of the {optimizer.kind} optimizer")
        state = cls(optimizer, training, optimizer.eta)
        owned: list[Vector] = []
        try:
            for _ in range(2 * optimizer.kind.state_size):
                owned.append(factory.vector(count))
            if optimizer.weight_decay > 0.0:
                state.decay = factory.vector(count, decay_mask(training.inference))
                owned.append(state.decay)
        except BaseException as error:
            for vector in owned:
                vector.release()
            if isinstance(error, OutOfDeviceMemory):
                raise OutOfDeviceMemory(f"the state of the {optimizer.kind} optimizer: {error}",
                                        error.requested, error.available) from None
            raise
        size = optimizer.kind.state_size
        state.vectors, state.backups = tuple(owned[:size]), tuple(owned[size:2 * size])
        for slot, value in optimizer.constants().items():
            state.hyper[slot] = value
        state._plan = tuple(steps(factory.backend.optimizer_step(
            optimizer.kind, parameters, training.gradient, state.vectors, state.decay,
            state.hyper)))
        state._copies = (
            [s for v, b in zip(state.vectors, state.backups, strict=True) for s in steps(
                factory.backend.copy(v, b))],
            [s for v, b in zip(state.vectors, state.backups, strict=True) for s in steps(
                factory.backend.copy(b, v))])
        return state

    def advance(self) -> None:
        """Count the step and write its numbers into the host array: η, and for Adam the
        step size η/(1 − β₁ᵗ) and √(1 − β₂ᵗ)."""
        self.step += 1
        hyper, eta = self.hyper, self.eta
        hyper[Hyper.ETA] = eta
        if self.optimizer.kind in (OptimizerKind.ADAM, OptimizerKind.ADAMW):
            beta1, beta2 = cast(Adam, self.optimizer).betas
            hyper[Hyper.STEP_SIZE] = eta / (1.0 - beta1 ** self.step)
            hyper[Hyper.ROOT_CORRECTION] = math.sqrt(1.0 - beta2 ** self.step)

    def steps(self) -> tuple[Step, ...]:
        """The update of one step: :meth:`advance`, then the backend's fused pass."""
        return (self.advance, *self._plan)

    # --- rolling back (nnfs.training.Rollback) and checkpoints ---------------------------

    def save(self) -> None:
        """Copy the state into its backup (with the parameters' checkpoint)."""
        for step in self._copies[0]:
            step()
        self._saved_step = self.step

    def restore(self) -> None:
        """Put the backup's state back."""
        for step in self._copies[1]:
            step()
        self.step = self._saved_step

    def release(self) -> None:
        for vector in (*self.vectors, *self.backups):
            vector.release()
        if self.decay is not None:
            self.decay.release()
        self._plan = ()

    def __repr__(self) -> str:
        count = self.training.inference.parameter_count
        return (f"OptimizerState({self.optimizer!r}, {len(self.vectors)} state vector(s) of "
                f"{count}, step {self.step}, eta {self.eta:g}, "
                f"{self.training.factory.describe()})")


def state_sizes(optimizer: Optimizer, count: int) -> list[int]:
    """Elements of each buffer the state of ``optimizer`` takes for ``count`` parameters:
    the state vectors, their backups (for rolling back a divergence) and the decay mask."""
    sizes = [count] * (2 * optimizer.kind.state_size)
    if optimizer.weight_decay > 0.0:
        sizes.append(count)
    return sizes


def decay_mask(inference: InferenceNetwork) -> np.ndarray:
    """1 on every weight, 0 on every bias, in the layout of the parameters."""
    mask = np.ones(inference.parameter_count)
    start = 0
    for layer in inference.layers:
        start += layer.out_dim * layer.in_dim
        mask[start:start + layer.out_dim] = 0.0
        start += layer.out_dim
    return mask


__all__ = ["RATES", "SGD", "Adam", "AdamW", "Optimizer", "OptimizerState", "decay_mask", "named",
           "optimizer", "state_sizes"]
