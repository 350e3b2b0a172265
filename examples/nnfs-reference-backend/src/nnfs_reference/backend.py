"""The reference backend: nnfs's backend contract in plain numpy, one short method per operation.

A backend subclasses :class:`nnfs.backend_api.Backend` and implements its abstract methods (see
``help(nnfs.backend_api.Backend)``). nnfs wraps it in the :class:`nnfs.Factory` that users
call; the factory has already checked every argument when it asks the backend for an operation
(shapes agree, every operand is live and belongs to this factory, scalars are finite floats,
kinds are known), so nothing here checks again.

Operations are prepared: each method returns a *plan*, a function of no arguments that does
the work when called. The training loop asks for its plans once, when a network is built, and
then calls them every epoch. Here every plan is ``functools.partial`` of a small function
below, so each operation reads as one formula; a fast backend binds more ahead of time.

Memory. nnfs asks for flat buffers (``allocate``) and describes every matrix and vector as a
window of one: a ``rows × cols`` matrix is stored column by column, ``offset`` elements into
its buffer. Here a buffer is a 1-D numpy array and a window's ``handle`` is a numpy view of it:
a ``rows × cols`` array in Fortran order for a matrix, a 1-D slice for a vector. Every operation
then reads and writes through ``x.handle`` and so writes into the buffer.

This backend favours clarity over speed: numpy makes temporaries freely. That does not break
nnfs's rule that an epoch allocates nothing, which counts *device* allocations (``allocate``):
a real device backend must keep its kernels free of allocations, and the conformance kit checks
that it does.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from nnfs import Matrix, Vector, backend_api as api
from nnfs.backend_api import ActivationKind as A, CostKind, Hyper, OptimizerKind
from nnfs.philox import dropout_mask


def _op(array: np.ndarray, transpose: bool) -> np.ndarray:
    return array.T if transpose else array


def _sigmoid(s: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * s) + 0.5  # σ(s) = ½·tanh(½s) + ½, which never overflows


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=0))  # one sample per column; subtracting the max avoids overflow
    return e / e.sum(axis=0)


def _softmax_backward(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return a * (g - np.sum(a * g, axis=0))  # each column g ← a ⊙ (g − aᵀg)


#: Each activation's forward f(s), and its derivative through a = f(s) applied to g: g ⊙ f'.
ACTIVATIONS = {
    A.LINEAR: (lambda s: s, lambda a, g: g),
    A.SIGMOID: (_sigmoid, lambda a, g: g * a * (1.0 - a)),  # σ' = a(1 − a)
    A.TANH: (np.tanh, lambda a, g: g * (1.0 - a * a)),  # tanh' = 1 − a²
    A.RELU: (lambda s: np.maximum(s, 0.0), lambda a, g: g * (a > 0)),  # relu' = [a > 0]
    A.SOFTMAX: (_softmax, _softmax_backward),
}


def _nrm2(x: np.ndarray) -> float:
    scale = float(np.max(np.abs(x), initial=0.0))
    if scale == 0.0:
        return 0.0
    # ‖x‖₂ = s·‖x/s‖₂ with s = max |x|: no square overflows or underflows
    return scale * float(np.sqrt(np.sum(np.square(x / scale, dtype=np.float64))))


def _gemm(alpha, a, b, beta, c, trans_a, trans_b) -> None:
    product = alpha * (_op(a, trans_a) @ _op(b, trans_b))
    if beta == 0.0:
        c[...] = product  # C ← α·op(A)·op(B); C's old contents are ignored, even NaN
    else:
        c[...] = product + beta * c  # C ← α·op(A)·op(B) + β·C


def _gemv(alpha, a, x, beta, y, trans) -> None:
    product = alpha * (_op(a, trans) @ x)
    if beta == 0.0:
        y[...] = product  # y ← α·op(A)·x; y's old contents are ignored, even NaN
    else:
        y[...] = product + beta * y  # y ← α·op(A)·x + β·y


def _assign(out: np.ndarray, value_of, *arrays) -> None:
    out[...] = value_of(*arrays)


def _activation(forward, z, bias, out) -> None:
    s = z if bias is None else z + bias[:, None]  # s = z + b·1ᵀ
    out[...] = forward(s)  # a = f(s)


def _cost_sum(kind: CostKind, eps: float, y: np.ndarray, a: np.ndarray) -> float:
    if kind == CostKind.QUADRATIC:
        return float(np.sum(np.square(a - y)))  # Σ (a − y)²
    a = np.clip(a, eps, 1.0 - eps)  # keeps the logarithms finite at outputs of 0 and 1
    if kind == CostKind.BINARY_CROSS_ENTROPY:
        return float(-np.sum(y * np.log(a) + (1.0 - y) * np.log(1.0 - a)))
    return float(-np.sum(y * np.log(a)))  # categorical_cross_entropy: −Σ y·ln a


def _sgd(p, g, state, h):
    return p - h[Hyper.ETA] * g  # p ← p − η·g'


def _momentum(p, g, state, h):
    u = state[0]
    u[...] = h[Hyper.MOMENTUM] * u + g  # u ← μ·u + g'
    return p - h[Hyper.ETA] * u  # p ← p − η·u


def _nesterov(p, g, state, h):
    u = state[0]
    u[...] = h[Hyper.MOMENTUM] * u + g  # u ← μ·u + g'
    return p - h[Hyper.ETA] * (g + h[Hyper.MOMENTUM] * u)  # p ← p − η·(g' + μ·u)


def _adam(p, g, state, h):
    m, v = state
    m[...] = h[Hyper.BETA1] * m + (1 - h[Hyper.BETA1]) * g  # m ← β₁·m + (1 − β₁)·g'
    v[...] = h[Hyper.BETA2] * v + (1 - h[Hyper.BETA2]) * g * g  # v ← β₂·v + (1 − β₂)·g'²
    # p ← p − α·m / (√v / c + ε), α and c holding the bias corrections
    return p - h[Hyper.STEP_SIZE] * m / (np.sqrt(v) / h[Hyper.ROOT_CORRECTION] + h[Hyper.EPS])


#: Each optimizer's rule, and whether its weight decay is added to the gradient (L2) or, as
#: AdamW's, decoupled from it (applied to the parameters first).
OPTIMIZERS = {
    OptimizerKind.SGD: (_sgd, True),
    OptimizerKind.MOMENTUM: (_momentum, True),
    OptimizerKind.NESTEROV: (_nesterov, True),
    OptimizerKind.ADAM: (_adam, True),
    OptimizerKind.ADAMW: (_adam, False),
}


def _optimizer_step(rule, decay_in_gradient, p, g, state, d, h) -> None:
    decay = 0.0 if d is None else h[Hyper.WEIGHT_DECAY] * d  # λ on weights only (d: 1 or 0)
    if decay_in_gradient:
        g = g + decay * p  # g' = g + λ·d⊙p
        p[...] = rule(p, g, state, h)
    else:
        p[...] = rule(p - h[Hyper.ETA] * decay * p, g, state, h)  # p ← p − η·λ·d⊙p, then the rule


def _dropout_mask(out, rate, seed, layer, counter) -> None:
    # Philox-4x32-10 keyed by (seed, layer) at step counter[0], from sample counter[1] on
    rows, cols = out.shape
    out[...] = dropout_mask(rows, cols, rate, seed, layer, int(counter[0]), int(counter[1]),
                            out.dtype)


class ReferenceBackend(api.Backend):
    """nnfs's backend contract in plain numpy on the host: the smallest complete backend."""

    # --- declarations: what this backend tells nnfs and the kit ------------------------------

    name = "reference"
    #: float32 only, to show a declaration: nnfs.backend("reference", "float64") raises
    #: UnsupportedOperation, and the kit checks that it does. numpy could do float64 as well;
    #: adding it is one word here, then `python -m nnfs.testing reference` checks it too.
    dtypes = ("float32",)
    # numpy returns when its work is done, so the default capabilities hold: synchronous, no
    # queue to drain, every operation provided. A device with an asynchronous queue would set
    # self.capabilities = api.Capabilities(asynchronous=True, sync_every=...) in __init__.

    # --- memory and transfer ----------------------------------------------------------------

    def allocate(self, size: int) -> np.ndarray:
        return np.zeros(size, dtype=self.numpy_dtype)

    def matrix_view(self, storage: np.ndarray, offset: int, rows: int, cols: int) -> np.ndarray:
        return storage[offset:offset + rows * cols].reshape((rows, cols), order="F")  # a view

    def vector_view(self, storage: np.ndarray, offset: int, size: int) -> np.ndarray:
        return storage[offset:offset + size]

    def read(self, x: Matrix | Vector) -> np.ndarray:
        return np.array(x.handle, order="C")  # a copy, rows × cols in C order as nnfs expects

    def write(self, host: np.ndarray, x: Matrix | Vector) -> None:
        x.handle[...] = host

    # --- BLAS level 1: vectors, and matrices entry by entry -----------------------------------

    def fill(self, x, value) -> api.Plan:
        return partial(x.handle.fill, value)

    def copy(self, x, y) -> api.Plan:
        return partial(np.copyto, y.handle, x.handle)  # y ← x

    def scal(self, alpha, x) -> api.Plan:
        return partial(np.multiply, x.handle, alpha, out=x.handle)  # x ← α·x

    def axpy(self, alpha, x, y) -> api.Plan:
        return partial(_assign, y.handle, lambda x, y: alpha * x + y, x.handle, y.handle)

    def nrm2(self, x) -> api.Step:
        return partial(_nrm2, x.handle)  # ‖x‖₂

    def sub(self, x, y, out) -> api.Plan:
        return partial(np.subtract, x.handle, y.handle, out=out.handle)  # x − y

    def mul(self, x, y, out) -> api.Plan:
        return partial(np.multiply, x.handle, y.handle, out=out.handle)  # x ⊙ y

    # --- BLAS levels 2 and 3: matrix products -------------------------------------------------

    def gemv(self, alpha, a, x, beta, y, trans) -> api.Plan:
        return partial(_gemv, alpha, a.handle, x.handle, beta, y.handle, trans)

    def rank1_update(self, alpha, x, y, a) -> api.Plan:
        # A ← A + α·x·yᵀ (BLAS ger)
        return partial(_assign, a.handle, lambda a, x, y: a + alpha * np.outer(x, y),
                       a.handle, x.handle, y.handle)

    def gemm(self, alpha, a, b, beta, c, trans_a, trans_b) -> api.Plan:
        return partial(_gemm, alpha, a.handle, b.handle, beta, c.handle, trans_a, trans_b)

    # --- the vector math of layers and costs --------------------------------------------------

    def activation(self, kind, z, bias, out) -> api.Plan:
        forward, _ = ACTIVATIONS[kind]
        return partial(_activation, forward, z.handle, None if bias is None else bias.handle,
                       out.handle)

    def activation_backward(self, kind, a, delta) -> api.Plan:
        _, backward = ACTIVATIONS[kind]
        return partial(_assign, delta.handle, backward, a.handle, delta.handle)  # δ ⊙= f'(z)

    def cost_sum(self, kind, y, a) -> api.Step:
        eps = float(np.finfo(self.numpy_dtype).eps)
        return partial(_cost_sum, kind, eps, y.handle, a.handle)

    # --- training beyond plain SGD ------------------------------------------------------------

    def optimizer_step(self, kind, parameters, gradient, state, decay, hyper) -> api.Plan:
        rule, decay_in_gradient = OPTIMIZERS[kind]
        # hyper is read when the plan runs: core rewrites it before every step
        return partial(_optimizer_step, rule, decay_in_gradient, parameters.handle,
                       gradient.handle, [v.handle for v in state],
                       None if decay is None else decay.handle, hyper)

    def dropout_mask(self, mask, rate, seed, layer, counter) -> api.Plan:
        return partial(_dropout_mask, mask.handle, rate, seed, layer, counter)
