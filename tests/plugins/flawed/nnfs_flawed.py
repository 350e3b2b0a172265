"""Backends with one deliberate flaw each, for the tests that prove the conformance kit can fail.

Each is the reference backend (examples/nnfs-reference-backend, which passes the kit) with one
thing changed, so whatever the kit reports comes from that change. ``inference-only`` is the
control: it declares what it lacks the way the contract asks, and conforms.
"""

from functools import partial

import numpy as np

from nnfs import backend_api as api
from nnfs_reference import ReferenceBackend


class WrongSigmoidDerivative(ReferenceBackend):
    """Takes σ'(z) as 1 − a instead of a(1 − a)."""

    name = "wrong-sigmoid"

    def activation_backward(self, kind, a, delta):
        if kind == api.ActivationKind.SIGMOID:  # the flaw: σ'(z) = a(1 − a)
            return partial(np.multiply, delta.handle, 1.0 - a.handle, out=delta.handle)
        return super().activation_backward(kind, a, delta)


class GemmIgnoresBeta(ReferenceBackend):
    """Computes c ← α·op(a)·op(b) whatever beta is."""

    name = "gemm-ignores-beta"

    def gemm(self, alpha, a, b, beta, c, trans_a, trans_b):
        return super().gemm(alpha, a, b, 0.0, c, trans_a, trans_b)  # the flaw: beta dropped


class SilentUnsupported(ReferenceBackend):
    """Declares nrm2 unsupported, then answers nrm2 with a placeholder instead of refusing."""

    name = "silent-unsupported"
    capabilities = api.Capabilities(unsupported=frozenset({api.Operation.NRM2}))

    def nrm2(self, x):
        return lambda: 0.0  # the flaw: a declared-unsupported operation must raise


class UndeclaredGap(ReferenceBackend):
    """Leaves mul out without declaring it: a gap the kit must not pass over."""

    name = "undeclared-gap"

    def mul(self, x, y, out):
        raise NotImplementedError("mul is not written yet")  # the flaw: not declared unsupported


class Float64Mishandled(ReferenceBackend):
    """Declares float64, but allocates float32 whatever the dtype."""

    name = "float64-mishandled"
    dtypes = ("float32", "float64")

    def allocate(self, size):
        return np.zeros(size, dtype=np.float32)  # the flaw: should be self.numpy_dtype


class InferenceOnly(ReferenceBackend):
    """No float64 (inherited), no backward pass, no ger: declared, so it conforms."""

    name = "inference-only"
    capabilities = api.Capabilities(unsupported=frozenset({
        api.Operation.ACTIVATION_BACKWARD, api.Operation.RANK1_UPDATE}))


FLAWED = [WrongSigmoidDerivative, GemmIgnoresBeta, SilentUnsupported, UndeclaredGap,
          Float64Mishandled, InferenceOnly]


@api.hookimpl
def nnfs_backends():
    return [api.BackendSpec(name=backend.name, factory=backend, api_version=2,
                            dtypes=backend.dtypes, description=backend.__doc__.splitlines()[0])
            for backend in FLAWED]
