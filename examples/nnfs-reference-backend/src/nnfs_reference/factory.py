"""The reference factory: nnfs's factory contract in plain numpy, one short method per operation.

A backend subclasses :class:`nnfs.Factory` and implements its underscore methods. The public
methods of ``nnfs.Factory`` (``gemm``, ``matrix``...) have already checked every argument when
they call these (shapes agree, every operand is live and belongs to this factory, scalars are
finite floats), so nothing here checks again.

Memory. nnfs asks for flat buffers (``_allocate``) and describes every matrix and vector as a
window of one: a ``rows × cols`` matrix is stored column by column, ``offset`` elements into its
buffer. Here a buffer is a 1-D numpy array and a window's ``handle`` is a numpy view of it:
a ``rows × cols`` array in Fortran order for a matrix, a 1-D slice for a vector. Every operation
then reads and writes through ``x.handle`` and so writes into the buffer.

This backend favours clarity over speed: numpy makes temporaries freely. That does not break
nnfs's rule that an epoch allocates nothing, which counts *device* allocations (``_allocate``):
a real device backend must keep its kernels free of allocations, and the conformance kit checks
that it does.
"""

from __future__ import annotations

import numpy as np

import nnfs
from nnfs import Matrix, Vector


def _op(array: np.ndarray, transpose: bool) -> np.ndarray:
    return array.T if transpose else array


def _sigmoid(s: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * s) + 0.5  # σ(s) = ½·tanh(½s) + ½, which never overflows


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=0))  # one sample per column; subtracting the max avoids overflow
    return e / e.sum(axis=0)


ACTIVATIONS = {
    "linear": lambda s: s,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda s: np.maximum(s, 0.0),
    "softmax": _softmax,
}


class ReferenceFactory(nnfs.Factory):
    """nnfs's factory in plain numpy on the host: the smallest complete backend."""

    # --- capability constants: what this backend declares to nnfs and to the kit ---------------

    name = "reference"
    #: float32 only, to show a declaration: nnfs.backend("reference", "float64") raises
    #: UnsupportedOperation, and the kit checks that it does. numpy could do float64 as well;
    #: adding it is one word here, then `python -m nnfs.testing reference` checks it too.
    dtypes = ("float32",)
    #: numpy returns when its work is done, so the training loop never needs to wait for a queue.
    #: A device with an asynchronous queue sets how many epochs it may run ahead.
    sync_every = 0
    #: Every operation is implemented. A backend without, say, rank1_update would list it here;
    #: calling it then raises UnsupportedOperation, and the kit checks that.
    unsupported = frozenset()

    # --- memory and transfer ----------------------------------------------------------------

    def _allocate(self, size: int) -> np.ndarray:
        return np.zeros(size, dtype=self.numpy_dtype)

    def _matrix_handle(self, storage: np.ndarray, offset: int, rows: int, cols: int) -> np.ndarray:
        return storage[offset:offset + rows * cols].reshape((rows, cols), order="F")  # a view

    def _vector_handle(self, storage: np.ndarray, offset: int, size: int) -> np.ndarray:
        return storage[offset:offset + size]

    def _read(self, x: Matrix | Vector) -> np.ndarray:
        return np.array(x.handle, order="C")  # a copy, rows × cols in C order as nnfs expects

    def _write(self, host: np.ndarray, x: Matrix | Vector) -> None:
        x.handle[...] = host

    # --- BLAS level 1: vectors, and matrices entry by entry -----------------------------------

    def _fill(self, x: Matrix | Vector, value: float) -> None:
        x.handle[...] = value

    def _copy(self, x: Matrix | Vector, y: Matrix | Vector) -> None:
        y.handle[...] = x.handle  # y ← x

    def _scal(self, alpha: float, x: Matrix | Vector) -> None:
        x.handle[...] *= alpha  # x ← α·x

    def _axpy(self, alpha: float, x: Matrix | Vector, y: Matrix | Vector) -> None:
        y.handle[...] += alpha * x.handle  # y ← α·x + y

    def _nrm2(self, x: Matrix | Vector) -> float:
        return float(np.sqrt(np.sum(np.square(x.handle, dtype=np.float64))))  # ‖x‖₂

    def _sub(self, x: Matrix | Vector, y: Matrix | Vector, out: Matrix | Vector) -> None:
        out.handle[...] = x.handle - y.handle

    def _mul(self, x: Matrix | Vector, y: Matrix | Vector, out: Matrix | Vector) -> None:
        out.handle[...] = x.handle * y.handle  # x ⊙ y

    # --- BLAS levels 2 and 3: matrix products -------------------------------------------------

    def _gemv(self, alpha: float, a: Matrix, x: Vector, beta: float, y: Vector,
              trans: bool) -> None:
        product = alpha * (_op(a.handle, trans) @ x.handle)
        if beta == 0.0:
            y.handle[...] = product  # y ← α·op(A)·x; y's old contents are ignored, even NaN
        else:
            y.handle[...] = product + beta * y.handle  # y ← α·op(A)·x + β·y

    def _rank1_update(self, alpha: float, x: Vector, y: Vector, a: Matrix) -> None:
        a.handle[...] += alpha * np.outer(x.handle, y.handle)  # A ← A + α·x·yᵀ (BLAS ger)

    def _gemm(self, alpha: float, a: Matrix, b: Matrix, beta: float, c: Matrix,
              trans_a: bool, trans_b: bool) -> None:
        product = alpha * (_op(a.handle, trans_a) @ _op(b.handle, trans_b))
        if beta == 0.0:
            c.handle[...] = product  # C ← α·op(A)·op(B); C's old contents are ignored, even NaN
        else:
            c.handle[...] = product + beta * c.handle  # C ← α·op(A)·op(B) + β·C

    # --- the vector math of layers and costs --------------------------------------------------

    def _activation(self, kind: str, z: Matrix, bias: Vector | None, out: Matrix) -> None:
        s = z.handle if bias is None else z.handle + bias.handle[:, None]  # s = z + b·1ᵀ
        out.handle[...] = ACTIVATIONS[kind](s)  # a = f(s)

    def _activation_backward(self, kind: str, a: Matrix, delta: Matrix) -> None:
        a, d = a.handle, delta.handle
        if kind == "sigmoid":
            d *= a * (1.0 - a)  # δ ⊙= σ'(z) = a(1 − a)
        elif kind == "tanh":
            d *= 1.0 - a * a  # δ ⊙= 1 − a²
        elif kind == "relu":
            d *= a > 0  # δ ⊙= [a > 0]
        elif kind == "softmax":
            d[...] = a * (d - np.sum(a * d, axis=0))  # each column g ← a ⊙ (g − aᵀg)
        # linear: f' = 1, δ is unchanged

    def _cost_sum(self, kind: str, y: Matrix, a: Matrix) -> float:
        y, a = y.handle, a.handle
        if kind == "quadratic":
            return float(np.sum(np.square(a - y)))  # Σ (a − y)²
        eps = np.finfo(self.numpy_dtype).eps
        a = np.clip(a, eps, 1.0 - eps)  # keeps the logarithms finite at outputs of 0 and 1
        if kind == "binary_cross_entropy":
            return float(-np.sum(y * np.log(a) + (1.0 - y) * np.log(1.0 - a)))
        return float(-np.sum(y * np.log(a)))  # categorical_cross_entropy: −Σ y·ln a
