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
from .errors import NnfsTypeError, NnfsValueError
from .factory import Factory, Matrix


class Cost:
    """A cost function; use the module-level instances (``nnfs.quadratic_cost``...)."""

    name = "cost"

    def check_output(self, activation: Activation) -> None:
        """Raise if this cost cannot be used with an output layer of ``activation``."""

    def delta_ops(
        self, factory: Factory, y: Matrix, a: Matrix, activation: Activation, scale: float, out: Matrix
    ) -> list[Callable[[], object]]:
        """Prepared operations that write ``scale · ∂ℓ/∂z`` of the output layer into ``out``."""
        raise NotImplementedError

    def value(self, factory: Factory, y: Matrix, a: Matrix, activation: Activation) -> float:
        """The reported cost of output ``a`` against ``y`` (see the table above)."""
        return self.value_op(factory, y, a, activation)()

    def value_op(
        self, factory: Factory, y: Matrix, a: Matrix, activation: Activation
    ) -> Callable[[], float]:
        """A prepared function of no arguments that returns :meth:`value`: the training loops
        prepare it once and call it every epoch, so reading the cost allocates nothing."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"nnfs.{self.name}"


def _divided(total: Callable[[], float], divisor: int) -> Callable[[], float]:
    """A function of no arguments returning ``total() / divisor``."""

    def value() -> float:
        return total() / divisor

    return value


class QuadraticCost(Cost):
    name = "quadratic_cost"

    def delta_ops(self, factory, y, a, activation, scale, out):
        return [
            factory._prepare("sub", a, y, out),  # out = a − y
            factory._prepare("scal", scale, out),  # out = scale·(a − y)
            factory._prepare("activation_backward", activation.kind, a, out),  # ⊙ f'(z)
        ]

    def value_op(self, factory, y, a, activation):
        return _divided(factory._prepare("cost_sum", "quadratic", y, a), 2 * a.size)


class CrossEntropyCost(Cost):
    name = "cross_entropy_cost"

    def check_output(self, activation):
        if activation.kind not in ("sigmoid", "softmax"):
            raise NnfsValueError(
                f"cross_entropy_cost needs an output layer with sigmoid or softmax, "
                f"got {activation!r}; use quadratic_cost or change the last layer"
            )

    def delta_ops(self, factory, y, a, activation, scale, out):
        return [
            factory._prepare("sub", a, y, out),  # ∂ℓ/∂z = a − y for sigmoid and softmax
            factory._prepare("scal", scale, out),
        ]

    def value_op(self, factory, y, a, activation):
        kind = "binary_cross_entropy" if activation.kind == "sigmoid" else "categorical_cross_entropy"
        return _divided(factory._prepare("cost_sum", kind, y, a), a.cols)


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
        raise NnfsValueError(f"{what}: unknown cost {value!r}; expected one of {', '.join(_ALIASES)}")
    raise NnfsTypeError(
        f"{what} must be a cost such as nnfs.quadratic_cost, got {type(value).__name__}"
    )
