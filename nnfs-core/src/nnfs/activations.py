"""Activation functions.

An activation is a small object naming one of the functions every backend computes
(``nnfs.kinds.ActivationKind``) and the weight initialisation that suits it. Layers take one
(``fully_connected(4, tanh)``); applied to a matrix it works in place, as in the article
(``tanh(z)`` replaces z by tanh(z)).

Derivatives are taken through the activation's output ``a = f(z)``, so a training layer keeps
one matrix of outputs per layer and no copy of ``z``:

==========  ========================  ==================  ===================
name        f(z)                      f'(z) through a     initialisation
==========  ========================  ==================  ===================
linear      z                         1                   Glorot (Xavier) uniform
sigmoid     1 / (1 + e⁻ᶻ)             a (1 − a)           Glorot (Xavier) uniform
tanh        tanh z                    1 − a²              Glorot (Xavier) uniform
relu        max(z, 0)                 1 if a > 0 else 0   He normal
softmax     eᶻ / Σ eᶻ  (per column)   a ⊙ (g − aᵀg)        Glorot (Xavier) uniform
==========  ========================  ==================  ===================
"""

from __future__ import annotations

from .arrays import Matrix
from .errors import NnfsTypeError, NnfsValueError
from .kinds import ActivationKind


class Activation:
    """An activation function; use the module-level instances (``nnfs.tanh``...)."""

    __slots__ = ("init", "kind")

    def __init__(self, kind: ActivationKind, init: str):
        self.kind = kind
        self.init = init

    def __call__(self, z: Matrix, out: Matrix | None = None) -> Matrix:
        """Apply the function to ``z``: in place, or into ``out``. Returns the result."""
        if not isinstance(z, Matrix):
            raise NnfsTypeError(f"{self!r}: z must be an nnfs Matrix, got {type(z).__name__}")
        return z.factory.activation(self.kind, z, z if out is None else out)

    def __repr__(self) -> str:
        return f"nnfs.{self.kind}"

    def __reduce__(self) -> str:
        return self.kind.value  # pickles as the module attribute, so the instances stay unique


linear = Activation(ActivationKind.LINEAR, "glorot")
sigmoid = Activation(ActivationKind.SIGMOID, "glorot")
tanh = Activation(ActivationKind.TANH, "glorot")
relu = Activation(ActivationKind.RELU, "he")
softmax = Activation(ActivationKind.SOFTMAX, "glorot")

#: Every activation by its name: one per kind.
ACTIVATIONS = {a.kind.value: a for a in (linear, sigmoid, tanh, relu, softmax)}


def activation(value: object, what: str = "activation") -> Activation:
    """``value`` as an Activation: an instance, or its name such as ``"tanh"``."""
    if isinstance(value, Activation):
        return value
    if isinstance(value, str):
        found = ACTIVATIONS.get(value.strip().lower())
        if found is not None:
            return found
        raise NnfsValueError(
            f"{what}: unknown activation {value!r}; expected one of {', '.join(ACTIVATIONS)}"
        )
    raise NnfsTypeError(
        f"{what} must be an activation such as nnfs.tanh or its name, got {type(value).__name__}"
    )
