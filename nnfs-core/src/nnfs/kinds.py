"""The kinds that core, the backends and the conformance kit share: defined here, once.

A kind is a string enum, so a backend can key a table by it (``{ActivationKind.TANH: ...}``),
a message can print it (``tanh``), and it compares equal to its value (``"tanh"``).

==================  =========================================================================
``ActivationKind``  the functions a layer applies, ``a = f(z + b)``, with their derivatives
``CostKind``        the sums of cost terms a backend computes (the reported cost's numerator)
``DeltaKind``       the output-layer gradients a backend computes (``∂ℓ/∂z`` of the last
                    layer)
``Operation``       the operations of the backend contract, as a backend declares them
                    unsupported and as the kit names them
==================  =========================================================================
"""

from __future__ import annotations

import enum


class Kind(str, enum.Enum):
    """A kind: a string enum whose ``str()`` and ``format()`` are its value."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def parse(cls, value: object, what: str) -> Kind:
        """``value`` (a member or its value) as a member; raises naming the valid values."""
        from .errors import NnfsTypeError, NnfsValueError

        if isinstance(value, cls):
            return value
        if not isinstance(value, str):
            raise NnfsTypeError(f"{what}: kind must be a string, got {type(value).__name__}")
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(member.value for member in cls)
            raise NnfsValueError(f"{what}: kind must be one of {valid}, got {value!r}") from None


class ActivationKind(Kind):
    """Activation functions, with the derivative each is differentiated through (its output
    ``a = f(z)``, so that training keeps no copy of ``z``):

    ==========  ========================  ==========================
    kind        f(z)                      f'(z), through a
    ==========  ========================  ==========================
    linear      z                         1
    sigmoid     1 / (1 + e⁻ᶻ)             a (1 − a)
    tanh        tanh z                    1 − a²
    relu        max(z, 0)                 1 where a > 0, else 0
    softmax     eᶻ / Σ eᶻ (per column)    g ↦ a ⊙ (g − aᵀg) per column
    ==========  ========================  ==========================
    """

    LINEAR = "linear"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    RELU = "relu"
    SOFTMAX = "softmax"


class CostKind(Kind):
    """Sums over all entries of a cost's terms, with ``a`` clipped to ``[eps, 1 − eps]``
    (``eps = numpy.finfo(dtype).eps``) inside the logarithms:

    * quadratic: Σ (a − y)²
    * binary_cross_entropy: −Σ [y·ln a + (1 − y)·ln(1 − a)]
    * categorical_cross_entropy: −Σ y·ln a
    """

    QUADRATIC = "quadratic"
    BINARY_CROSS_ENTROPY = "binary_cross_entropy"
    CATEGORICAL_CROSS_ENTROPY = "categorical_cross_entropy"


class DeltaKind(Kind):
    """Output-layer gradients ``scale · ∂ℓ/∂z`` for an output ``a = f(z)``:

    * quadratic: scale·(a − y) ⊙ f'(z)
    * cross_entropy: scale·(a − y), for sigmoid and softmax outputs, where f' cancels
    """

    QUADRATIC = "quadratic"
    CROSS_ENTROPY = "cross_entropy"


class Operation(Kind):
    """The operations of the backend contract that a backend may declare unsupported."""

    GEMM = "gemm"
    GEMV = "gemv"
    RANK1_UPDATE = "rank1_update"
    AXPY = "axpy"
    SCAL = "scal"
    COPY = "copy"
    FILL = "fill"
    NRM2 = "nrm2"
    SUB = "sub"
    MUL = "mul"
    ACTIVATION = "activation"
    ACTIVATION_BACKWARD = "activation_backward"
    COST_DELTA = "cost_delta"
    COST_SUM = "cost_sum"


#: The operations that training (the passes, both costs and sgd) calls.
TRAINING_OPERATIONS = frozenset({
    Operation.GEMM, Operation.GEMV, Operation.AXPY, Operation.SCAL, Operation.FILL,
    Operation.SUB, Operation.ACTIVATION, Operation.ACTIVATION_BACKWARD, Operation.COST_DELTA,
    Operation.COST_SUM,
})
