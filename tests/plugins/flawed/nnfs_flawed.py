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


class GemmLetsNanThrough(ReferenceBackend):
    """gemm computes α·op(a)·op(b) + β·c even for β = 0: NaN already in c survives (0·NaN)."""

    name = "gemm-nan-through"

    def gemm(self, alpha, a, b, beta, c, trans_a, trans_b):
        def run():
            op_a = a.handle.T if trans_a else a.handle
            op_b = b.handle.T if trans_b else b.handle
            with np.errstate(invalid="ignore"):
                c.handle[...] = alpha * (op_a @ op_b) + beta * c.handle  # the flaw: c read at β 0

        return run


class GemvLetsNanThrough(ReferenceBackend):
    """gemv, the same: y's old NaN survives β = 0."""

    name = "gemv-nan-through"

    def gemv(self, alpha, a, x, beta, y, trans):
        def run():
            op_a = a.handle.T if trans else a.handle
            with np.errstate(invalid="ignore"):
                y.handle[...] = alpha * (op_a @ x.handle) + beta * y.handle  # the flaw

        return run


class ReadSharesMemory(ReferenceBackend):
    """read returns a view of the device buffer, not a copy: nnfs.transfer(m) is no copy."""

    name = "read-shares-memory"

    def read(self, x):
        return x.handle  # the flaw: a view of the device's memory


class ReadInFortranOrder(ReferenceBackend):
    """read returns a copy, but in the device's column-major (Fortran) order."""

    name = "read-fortran-order"

    def read(self, x):
        return np.array(x.handle, order="F")  # the flaw: nnfs's host arrays are C-ordered


def _categorical_without_clipping(y, a):
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(-np.sum(y * np.log(a)))  # the flaw: 0·ln 0 = NaN


class CategoricalNanAtZero(ReferenceBackend):
    """Categorical cross-entropy as −Σ y·ln a without clipping: NaN at an output of exactly 0."""

    name = "categorical-nan-at-0"

    def cost_sum(self, kind, y, a):
        if kind == api.CostKind.CATEGORICAL_CROSS_ENTROPY:
            return partial(_categorical_without_clipping, y.handle, a.handle)
        return super().cost_sum(kind, y, a)


class Nrm2NotAFloat(ReferenceBackend):
    """nrm2 returns a numpy float32 scalar, not a Python float."""

    name = "nrm2-not-a-float"

    def nrm2(self, x):
        return lambda: np.float32(np.linalg.norm(x.handle))  # the flaw: not a float


class PartlySupported(ReferenceBackend):
    """No nrm2, declared: the vector operations' check runs the others and names nrm2."""

    name = "partly-supported"
    capabilities = api.Capabilities(unsupported=frozenset({api.Operation.NRM2}))


class InferenceOnly(ReferenceBackend):
    """No float64 (inherited), no backward pass, no ger: declared, so it conforms."""

    name = "inference-only"
    capabilities = api.Capabilities(unsupported=frozenset({
        api.Operation.ACTIVATION_BACKWARD, api.Operation.RANK1_UPDATE}))


FLAWED = [WrongSigmoidDerivative, GemmIgnoresBeta, SilentUnsupported, UndeclaredGap,
          Float64Mishandled, GemmLetsNanThrough, GemvLetsNanThrough, ReadSharesMemory,
          ReadInFortranOrder, CategoricalNanAtZero, Nrm2NotAFloat, PartlySupported,
          InferenceOnly]


@api.hookimpl
def nnfs_backends():
    return [api.BackendSpec(name=backend.name, factory=backend, api_version=2,
                            dtypes=backend.dtypes, description=backend.__doc__.splitlines()[0])
            for backend in FLAWED]
