"""The kinds that core, the backends and the conformance kit share: defined here, once.

A kind is a string enum, so a backend can key a table by it (``{ActivationKind.TANH: ...}``),
a message can print it (``tanh``), and it compares equal to its value (``"tanh"``).

==================  =========================================================================
``ActivationKind``  the functions a layer applies, ``a = f(z + b)``, with their derivatives
``CostKind``        the sums of cost terms a backend computes (the reported cost's numerator)
``DeltaKind``       the output-layer gradients a backend computes (``∂ℓ/∂z`` of the last
                    layer)
``OptimizerKind``   the update rules of the fused optimizer step (``optimizer_step``)
``Hyper``           where each per-step number of that step sits in its host array
``Operation``       the operations of the backend contract, as a backend declares them
                    unsupported and as the kit names them
==================  =========================================================================
"""

from __future__ import annotations

import enum
from typing import TypeVar

#: Entries of the host array of per-step numbers that ``optimizer_step`` reads (see Hyper).
HYPER_SIZE = 8


_K = TypeVar("_K", bound="Kind")


class Kind(str, enum.Enum):
    """A kind: a string enum whose ``str()`` and ``format()`` are its value."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def parse(cls: type[_K], value: object, what: str) -> _K:
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


class OptimizerKind(Kind):
    """The update rules of one fused optimizer step over the flat parameter vector ``p``, its
    gradient ``g`` (of the mean loss of the batch) and the optimizer's state vectors, with
    the numbers of the step in a host array ``h`` (see :class:`Hyper`). ``d`` is the decay
    mask, 1 on weights and 0 on biases (no decay at all when there is no mask). The rules
    are ``torch.optim``'s (SGD with dampening 0, Adam and AdamW without amsgrad)::

        sgd       g' = g + λ·d⊙p;  p ← p − η·g'
        momentum  g' = g + λ·d⊙p;  u ← μ·u + g';  p ← p − η·u
        nesterov  g' = g + λ·d⊙p;  u ← μ·u + g';  p ← p − η·(g' + μ·u)
        adam      g' = g + λ·d⊙p;  m ← β₁·m + (1 − β₁)·g';  v ← β₂·v + (1 − β₂)·g'²;
                  p ← p − α·m / (√v / c + ε)
        adamw     p ← p − η·λ·d⊙p;  m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;
                  p ← p − α·m / (√v / c + ε)

    with η = h[ETA], λ = h[WEIGHT_DECAY], μ = h[MOMENTUM], β₁, β₂, ε = h[BETA1], h[BETA2],
    h[EPS], and Adam's bias corrections folded into α = h[STEP_SIZE] = η / (1 − β₁ᵗ) and
    c = h[ROOT_CORRECTION] = √(1 − β₂ᵗ) at step t (from 1), which core computes on the host.
    State vectors: none for sgd, ``(u,)`` for momentum and nesterov, ``(m, v)`` for adam and
    adamw, all starting at zero (so momentum's first step sets u = g', as torch does).
    """

    SGD = "sgd"
    MOMENTUM = "momentum"
    NESTEROV = "nesterov"
    ADAM = "adam"
    ADAMW = "adamw"

    @property
    def state_size(self) -> int:
        """How many state vectors, each shaped like the parameters, the rule keeps."""
        return _STATE_SIZES[self.value]


_STATE_SIZES = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2, "adamw": 2}


class Hyper(enum.IntEnum):
    """Where each number of an optimizer step sits in the host array (float64, ``HYPER_SIZE``
    entries) that ``optimizer_step``'s plan reads each time it runs; an entry a rule does not
    use holds 0."""

    ETA = 0
    WEIGHT_DECAY = 1
    MOMENTUM = 2
    BETA1 = 3
    BETA2 = 4
    EPS = 5
    STEP_SIZE = 6
    ROOT_CORRECTION = 7


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
    OPTIMIZER_STEP = "optimizer_step"
    DROPOUT_MASK = "dropout_mask"


#: The operations that training (the passes, both costs and sgd) calls.
TRAINING_OPERATIONS = frozenset({
    Operation.GEMM, Operation.GEMV, Operation.AXPY, Operation.SCAL, Operation.FILL,
    Operation.SUB, Operation.ACTIVATION, Operation.ACTIVATION_BACKWARD, Operation.COST_DELTA,
    Operation.COST_SUM,
})
