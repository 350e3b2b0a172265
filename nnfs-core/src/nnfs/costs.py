"""Costs: how far a network's output is from the desired output, and the gradient of that.

For a batch of n samples (columns), training minimises the mean over samples of a per-sample
loss ℓ, and ``sgd`` updates every parameter by ``−(η/n)·Σ ∂ℓ/∂p``, as in the article.

=========================  ==============================  ==========================  =========
cost                       per-sample loss ℓ               reported value              output δ
=========================  ==============================  ==========================  =========
``quadratic_cost``         ½‖a − y‖²                       ‖a − y‖² / (2·entries of y)  (a − y) ⊙ f'
``cross_entropy_cost``     sigmoid: −Σ y ln a + (1−y) ln(1−a);  mean of ℓ over samples  a − y
                           softmax: −Σ y ln a
=========================  ==============================  ==========================  =========

The quadratic value divides by every entry of y, as the article does; the cross-entropy value is
the mean per sample, as in Keras and PyTorch. Cross-entropy needs a sigmoid output (independent
labels in [0, 1]) or a softmax output (columns of y that sum to 1, such as one-hot labels); with
those, its output delta is simply ``a − y``.
"""

from __future__ import annotations

from collections.abc import Callable

from .activations import Activation
from .arrays import Matrix
from .contract import Plan
from .errors import NnfsTypeError, NnfsValueError
from .factory import Factory
from .kinds import ActivationKind, CostKind, DeltaKind


class Cost:
    """A cost function; use the module-level instances (``nnfs.quadratic_cost``...)."""

    name = "cost"
    #: The kind of ``Factory.cost_delta`` that computes this cost's output δ.
    delta_kind: DeltaKind

    def check_output(self, activation: Activation) -> None:
        """Raise if this cost cannot be used with an output layer of ``activation``."""

    def sum_kind(self, activation: Activation) -> CostKind:
        """The kind of ``Factory.cost_sum`` that sums this cost's terms."""
        raise NotImplementedError

    def normalizer(self, a: Matrix) -> float:
        """What the sum of the terms is divided by to give the reported value."""
        raise NotImplementedError

    def delta_op(self, factory: Factory, y: Matrix, a: Matrix, activation: Activation,
                 scale: float, out: Matrix) -> Plan:
        """The prepared operations that write ``scale · ∂ℓ/∂z`` of the output layer into
        ``out``."""
        return factory.backend.cost_delta(self.delta_kind, activation.kind, scale, y, a, out)

    def value_op(self, factory: Factory, y: Matrix, a: Matrix,
                 activation: Activation) -> Callable[[], float]:
        """A prepared function returning the reported cost of output ``a`` against ``y``."""
        total = factory.backend.cost_sum(self.sum_kind(activation), y, a)
        divisor = self.normalizer(a)
        return lambda: total() / divisor

    def __repr__(self) -> str:
        return f"nnfs.{self.name}"


class QuadraticCost(Cost):
    name = "quadratic_cost"
    delta_kind = DeltaKind.QUADRATIC  # scale·(a − y) ⊙ f'(z)

    def sum_kind(self, activation: Activation) -> CostKind:
        return CostKind.QUADRATIC

    def normalizer(self, a: Matrix) -> int:
        return 2 * a.size


class CrossEntropyCost(Cost):
    name = "cross_entropy_cost"
    delta_kind = DeltaKind.CROSS_ENTROPY  # scale·(a − y): f' cancels for sigmoid and softmax

    def check_output(self, activation: Activation) -> None:
        if activation.kind not in (ActivationKind.SIGMOID, ActivationKind.SOFTMAX):
            raise NnfsValueError(
                f"cross_entropy_cost needs an output layer with sigmoid or softmax, "
                f"got {activation!r}; use quadratic_cost or change the last layer"
            )

    def sum_kind(self, activation: Activation) -> CostKind:
        if activation.kind == ActivationKind.SIGMOID:
            return CostKind.BINARY_CROSS_ENTROPY
        return CostKind.CATEGORICAL_CROSS_ENTROPY

    def normalizer(self, a: Matrix) -> int:
        return a.cols


quadratic_cost = QuadraticCost()
cross_entropy_cost = CrossEntropyCost()

COSTS = {c.name: c for c in (quadratic_cost, cross_entropy_cost)}
_ALIASES = {"quadratic": quadratic_cost, "cross_entropy": cross_entropy_cost}


def cost(value: object, what: str = "cost") -> Cost:
    """``value`` as a Cost: an instance, or a name such as ``"quadratic"``."""
    if isinstance(value, Cost):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        found = COSTS.get(key) or _ALIASES.get(key)
        if found is not None:
            return found
        raise NnfsValueError(
            f"{what}: unknown cost {value!r}; expected one of {', '.join(_ALIASES)}")
    raise NnfsTypeError(
        f"{what} must be a cost such as nnfs.quadratic_cost, got {type(value).__name__}"
    )
