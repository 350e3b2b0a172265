"""Backends with one deliberate flaw each, for the tests that prove the conformance kit can fail.

Each is the reference backend (examples/nnfs-reference-backend, which passes the kit) with one
thing changed, so whatever the kit reports comes from that change. ``inference-only`` is the
control: it declares what it lacks the way the contract asks, and conforms.
"""

import numpy as np

import nnfs
from nnfs_reference import ReferenceFactory


class WrongSigmoidDerivative(ReferenceFactory):
    """Takes σ'(z) as 1 − a instead of a(1 − a)."""

    name = "wrong-sigmoid"

    def _activation_backward(self, kind, a, delta):
        if kind == "sigmoid":
            delta.handle[...] *= 1.0 - a.handle  # the flaw: σ'(z) = a(1 − a)
        else:
            super()._activation_backward(kind, a, delta)


class GemmIgnoresBeta(ReferenceFactory):
    """Computes c ← α·op(a)·op(b) whatever beta is."""

    name = "gemm-ignores-beta"

    def _gemm(self, alpha, a, b, beta, c, trans_a, trans_b):
        super()._gemm(alpha, a, b, 0.0, c, trans_a, trans_b)  # the flaw: beta dropped


class SilentUnsupported(ReferenceFactory):
    """Declares nrm2 unsupported, then answers nrm2 with a placeholder instead of refusing."""

    name = "silent-unsupported"
    unsupported = frozenset({"nrm2"})

    def nrm2(self, x):
        return 0.0  # the flaw: a declared-unsupported operation must raise UnsupportedOperation


class UndeclaredGap(ReferenceFactory):
    """Leaves mul out without declaring it: a gap the kit must not pass over."""

    name = "undeclared-gap"

    def _mul(self, x, y, out):
        raise NotImplementedError("mul is not written yet")  # the flaw: not in `unsupported`


class Float64Mishandled(ReferenceFactory):
    """Declares float64, but allocates float32 whatever the dtype."""

    name = "float64-mishandled"
    dtypes = ("float32", "float64")

    def _allocate(self, size):
        return np.zeros(size, dtype=np.float32)  # the flaw: should be self.numpy_dtype


class InferenceOnly(ReferenceFactory):
    """No float64 (inherited), no backward pass, no ger: declared, so it conforms."""

    name = "inference-only"
    unsupported = frozenset({"activation_backward", "rank1_update"})


FLAWED = [WrongSigmoidDerivative, GemmIgnoresBeta, SilentUnsupported, UndeclaredGap,
          Float64Mishandled, InferenceOnly]


@nnfs.hookimpl
def nnfs_backends():
    return [nnfs.BackendSpec(name=factory.name, factory=factory, api_version=1,
                             dtypes=factory.dtypes, description=factory.__doc__.splitlines()[0])
            for factory in FLAWED]
