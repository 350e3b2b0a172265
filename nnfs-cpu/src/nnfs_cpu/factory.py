"""The CPU factory: nnfs's factory contract on numpy.

Layout. A ``rows × cols`` column-major matrix is held as its transpose: a C-ordered numpy
array of shape ``(cols, rows)``, so one sample is one contiguous row of the array. Then

* ``C = op(A)·op(B)`` is ``Cᵀ = op(B)ᵀ·op(A)ᵀ``, one ``numpy.matmul`` into ``Cᵀ`` (BLAS gemm);
* the bias of a layer broadcasts along the last axis, the cheap direction;
* a range of columns (a mini-batch) is a contiguous block of rows.

No temporaries. Every operation writes into its output with ``out=``. Operations that need
intermediate values (sigmoid, the derivatives, the costs, gemm with beta ≠ 0, ger) work through
one scratch array allocated with the factory, block by block; a block is small enough to stay in
the core's cache, so the extra passes cost little memory bandwidth.

Plans. Each operation is written once, as ``_plan_<op>(...)`` returning a function of no
arguments with its arrays, views and blocks bound in advance. The training loop keeps those
functions (``Factory._prepare``) and calls them every epoch; the one-off methods ``_<op>`` make a
plan and run it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np

import nnfs
from nnfs import Matrix, MemoryLimits, Vector

#: Elements of scratch per block: blocks of this size stay in a core's L2 cache.
BLOCK = 32768

Plan = Callable[[], Any]


def _blocks(total: int, width: int) -> list[tuple[int, int]]:
    """Split ``total`` rows of ``width`` elements into blocks of about BLOCK elements."""
    step = max(1, BLOCK // max(width, 1))
    return [(start, min(start + step, total)) for start in range(0, total, step)]


def _run_all(plans: list[Plan]) -> None:
    for plan in plans:
        plan()


def _sequence(plans: list[Plan]) -> Plan:
    """One plan that runs ``plans`` in order."""
    if len(plans) == 1:
        return plans[0]
    return functools.partial(_run_all, plans)


def _nothing() -> None:
    return None


def _available_memory() -> int | None:
    """Bytes of memory the operating system says are available, or None if it does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class CpuFactory(nnfs.Factory):
    """nnfs's factory on the CPU, through numpy (its BLAS does the matrix products)."""

    name = "cpu"
    dtypes = ("float32", "float64")
    sync_every = 0  # numpy calls return when their work is done

    def __init__(self, dtype: object = "float32"):
        super().__init__(dtype)
        self._part = BLOCK  # elements in each of the three parts of the scratch
        self._scratch = self._allocate(3 * self._part)
        self._account_allocation(self._scratch.nbytes)

    # --- memory -----------------------------------------------------------------------------

    def _allocate(self, size: int) -> np.ndarray:
        # Written now, not left to np.zeros: calloc'd pages are committed only when first
        # written, so MemAvailable would not count them and the memory check of the next
        # network would pass against memory this one already holds, until an epoch touched
        # it all and the kernel killed the process.
        storage = np.empty(size, dtype=self.numpy_dtype)
        storage.fill(0)
        return storage

    def _matrix_handle(self, storage: np.ndarray, offset: int, rows: int, cols: int) -> np.ndarray:
        return storage[offset:offset + rows * cols].reshape(cols, rows)  # the transpose, C order

    def _vector_handle(self, storage: np.ndarray, offset: int, size: int) -> np.ndarray:
        return storage[offset:offset + size]

    def memory_limits(self) -> MemoryLimits:
        available = _available_memory()
        return MemoryLimits(available, available)

    def describe(self) -> str:
        return f"cpu {self.dtype} (numpy {np.__version__})"

    def _read(self, x: Matrix | Vector) -> np.ndarray:
        return np.ascontiguousarray(x.handle.T) if isinstance(x, Matrix) else x.handle.copy()

    def _write(self, host: np.ndarray, x: Matrix | Vector) -> None:
        np.copyto(x.handle, host.T if isinstance(x, Matrix) else host)

    def _write_samples(self, host: np.ndarray, x: Matrix) -> None:
        np.copyto(x.handle, host)  # the handle is already one sample per row

    def _read_samples(self, x: Matrix, out: np.ndarray) -> None:
        np.copyto(out, x.handle)

    def _work(self, shape: tuple[int, ...], part: int = 0) -> np.ndarray:
        """A view of ``shape`` into part 0, 1 or 2 of the scratch (three views of different
        parts never overlap).

        Blocks hold about BLOCK elements, except a single sample wider than that; then the
        scratch grows, here, while a plan is made, never while one runs. Plans made earlier
        keep the old scratch alive through their views.
        """
        size = int(np.prod(shape))
        if size > self._part:
            self._part = size
            self._scratch = self._allocate(3 * size)
            self._account_allocation(self._scratch.nbytes)
        start = part * self._part
        return self._scratch[start:start + size].reshape(shape)

    # --- plans ------------------------------------------------------------------------------

    def _plan(self, operation: str, *args: Any) -> Plan:
        return getattr(self, "_plan_" + operation)(*args)

    def _plan_gemm(self, alpha, a, b, beta, c, trans_a, trans_b) -> Plan:
        # C = α·op(A)·op(B) + β·C  ⇔  Cᵀ = α·op(B)ᵀ·op(A)ᵀ + β·Cᵀ, with Xᵀ = x.handle
        left = b.handle.T if trans_b else b.handle
        right = a.handle.T if trans_a else a.handle
        ct = c.handle
        if beta == 0.0:
            product = functools.partial(np.matmul, left, right, out=ct)
            if alpha == 1.0:
                return product
            return _sequence([product, functools.partial(np.multiply, ct, alpha, out=ct)])
        plans = []
        for start, stop in _blocks(ct.shape[0], ct.shape[1]):
            work = self._work((stop - start, ct.shape[1]))
            block = ct[start:stop]
            plans.append(functools.partial(np.matmul, left[start:stop], right, out=work))
            if alpha != 1.0:
                plans.append(functools.partial(np.multiply, work, alpha, out=work))
            if beta != 1.0:
                plans.append(functools.partial(np.multiply, block, beta, out=block))
            plans.append(functools.partial(np.add, block, work, out=block))
        return _sequence(plans)

    def _plan_gemv(self, alpha, a, x, beta, y, trans) -> Plan:
        # A·x = x·Aᵀ-array;  Aᵀ·x = Aᵀ-array·x
        at, xv, yv = a.handle, x.handle, y.handle
        operands = (at, xv) if trans else (xv, at)
        if beta == 0.0:
            product = functools.partial(np.matmul, *operands, out=yv)
            if alpha == 1.0:
                return product
            return _sequence([product, functools.partial(np.multiply, yv, alpha, out=yv)])
        work = self._work(yv.shape) if yv.size <= BLOCK else None
        if work is None:  # a long y: go through blocks of the rows of op(A)
            plans = []
            for start, stop in _blocks(yv.size, 1):
                part = self._work((stop - start,))
                rows = at[start:stop] if trans else at[:, start:stop]
                pair = (rows, xv) if trans else (xv, rows)
                plans += [functools.partial(np.matmul, *pair, out=part),
                          functools.partial(np.multiply, part, alpha, out=part),
                          functools.partial(np.multiply, yv[start:stop], beta, out=yv[start:stop]),
                          functools.partial(np.add, yv[start:stop], part, out=yv[start:stop])]
            return _sequence(plans)
        return _sequence([
            functools.partial(np.matmul, *operands, out=work),
            functools.partial(np.multiply, work, alpha, out=work),
            functools.partial(np.multiply, yv, beta, out=yv),
            functools.partial(np.add, yv, work, out=yv),
        ])

    def _plan_rank1_update(self, alpha, x, y, a) -> Plan:
        # A += α·x·yᵀ  ⇔  Aᵀ += α·y·xᵀ, row block by row block of Aᵀ
        at, xv, yv = a.handle, x.handle, y.handle
        plans = []
        for start, stop in _blocks(at.shape[0], at.shape[1]):
            work = self._work((stop - start, at.shape[1]))
            column = yv[start:stop, None]
            plans.append(functools.partial(np.multiply, column, xv, out=work))
            if alpha != 1.0:
                plans.append(functools.partial(np.multiply, work, alpha, out=work))
            plans.append(functools.partial(np.add, at[start:stop], work, out=at[start:stop]))
        return _sequence(plans)

    def _flat_blocks(self, *arrays: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        """The arrays (of equal size) as flat views, block by block."""
        flat = [array.reshape(-1) for array in arrays]
        return [tuple(f[start:stop] for f in flat) for start, stop in _blocks(flat[0].size, 1)]

    def _plan_axpy(self, alpha, x, y) -> Plan:
        xv, yv = x.handle, y.handle
        if alpha == 1.0:
            return functools.partial(np.add, yv, xv, out=yv)
        if alpha == -1.0:
            return functools.partial(np.subtract, yv, xv, out=yv)
        plans = []
        for xb, yb in self._flat_blocks(xv, yv):
            work = self._work(xb.shape)
            plans += [functools.partial(np.multiply, xb, alpha, out=work),
                      functools.partial(np.add, yb, work, out=yb)]
        return _sequence(plans)

    def _plan_scal(self, alpha, x) -> Plan:
        return functools.partial(np.multiply, x.handle, alpha, out=x.handle)

    def _plan_copy(self, x, y) -> Plan:
        return functools.partial(np.copyto, y.handle, x.handle)

    def _plan_fill(self, x, value) -> Plan:
        return functools.partial(x.handle.fill, value)

    def _plan_nrm2(self, x) -> Plan:
        flat = x.handle.reshape(-1)
        return lambda: float(np.sqrt(np.dot(flat, flat)))

    def _plan_sub(self, x, y, out) -> Plan:
        return functools.partial(np.subtract, x.handle, y.handle, out=out.handle)

    def _plan_mul(self, x, y, out) -> Plan:
        return functools.partial(np.multiply, x.handle, y.handle, out=out.handle)

    def _plan_activation(self, kind, z, bias, out) -> Plan:
        zt, ot = z.handle, out.handle
        b = None if bias is None else bias.handle
        in_place = z.buffer is out.buffer and z.offset == out.offset
        plans = []
        for start, stop in _blocks(zt.shape[0], zt.shape[1]):
            zb, ob = zt[start:stop], ot[start:stop]
            if b is not None:
                plans.append(functools.partial(np.add, zb, b, out=ob))  # z + b
            elif not in_place:
                plans.append(functools.partial(np.copyto, ob, zb))
            plans += self._activation_steps(kind, ob, stop - start)
        return _sequence(plans)

    def _activation_steps(self, kind: str, ob: np.ndarray, samples: int) -> list[Plan]:
        """In-place steps taking a block of z + b to f(z + b)."""
        if kind == "tanh":
            return [functools.partial(np.tanh, ob, out=ob)]
        if kind == "sigmoid":  # σ(s) = ½·tanh(½s) + ½, which never overflows
            return [functools.partial(np.multiply, ob, 0.5, out=ob),
                    functools.partial(np.tanh, ob, out=ob),
                    functools.partial(np.multiply, ob, 0.5, out=ob),
                    functools.partial(np.add, ob, 0.5, out=ob)]
        if kind == "relu":
            return [functools.partial(np.maximum, ob, 0.0, out=ob)]
        if kind == "softmax":  # per sample (a row here): exp(s − max s) / Σ exp(s − max s)
            column = self._work((samples, 1), part=2)
            return [functools.partial(np.max, ob, axis=1, keepdims=True, out=column),
                    functools.partial(np.subtract, ob, column, out=ob),
                    functools.partial(np.exp, ob, out=ob),
                    functools.partial(np.sum, ob, axis=1, keepdims=True, out=column),
                    functools.partial(np.divide, ob, column, out=ob)]
        return []  # linear

    def _plan_activation_backward(self, kind, a, delta) -> Plan:
        if kind == "linear":
            return _nothing
        at, dt = a.handle, delta.handle
        plans = []
        for start, stop in _blocks(at.shape[0], at.shape[1]):
            ab, db = at[start:stop], dt[start:stop]
            work = self._work(ab.shape)
            if kind == "tanh":  # δ ⊙= 1 − a²
                plans += [functools.partial(np.multiply, ab, ab, out=work),
                          functools.partial(np.subtract, 1.0, work, out=work)]
            elif kind == "sigmoid":  # δ ⊙= a (1 − a)
                plans += [functools.partial(np.subtract, 1.0, ab, out=work),
                          functools.partial(np.multiply, work, ab, out=work)]
            elif kind == "relu":  # δ ⊙= [a > 0]; a ≥ 0, so sign(a) is that indicator
                plans.append(functools.partial(np.sign, ab, out=work))
            else:  # softmax: g ← a ⊙ (g − aᵀg), per sample
                column = self._work((stop - start, 1), part=2)
                plans += [functools.partial(np.multiply, ab, db, out=work),
                          functools.partial(np.sum, work, axis=1, keepdims=True, out=column),
                          functools.partial(np.subtract, db, column, out=db),
                          functools.partial(np.multiply, db, ab, out=db)]
                continue
            plans.append(functools.partial(np.multiply, db, work, out=db))
        return _sequence(plans)

    def _plan_cost_sum(self, kind, y, a) -> Plan:
        eps = float(np.finfo(self.numpy_dtype).eps)
        # the scratch views are taken now, while the plan is made: running it takes none
        blocks = [(yb, ab, self._work(ab.shape), self._work(ab.shape, part=1))
                  for yb, ab in self._flat_blocks(y.handle, a.handle)]

        def total() -> float:
            result = 0.0
            for yb, ab, work, other in blocks:
                if kind == "quadratic":
                    np.subtract(ab, yb, out=work)
                    result += float(np.dot(work, work))
                    continue
                np.clip(ab, eps, 1.0 - eps, out=work)
                if kind == "binary_cross_entropy":
                    # y·ln a + (1 − y)·ln(1 − a) = y·ln a + ln(1 − a) − y·ln(1 − a)
                    np.subtract(1.0, work, out=other)
                    np.log(other, out=other)
                    result -= float(np.sum(other)) - float(np.dot(yb, other))
                np.log(work, out=work)
                result -= float(np.dot(yb, work))
            return result

        return total

    # --- the one-off operations: make the plan, run it ---------------------------------------

    def _gemm(self, *args) -> None:
        self._plan_gemm(*args)()

    def _gemv(self, *args) -> None:
        self._plan_gemv(*args)()

    def _rank1_update(self, *args) -> None:
        self._plan_rank1_update(*args)()

    def _axpy(self, *args) -> None:
        self._plan_axpy(*args)()

    def _scal(self, *args) -> None:
        self._plan_scal(*args)()

    def _copy(self, *args) -> None:
        self._plan_copy(*args)()

    def _fill(self, *args) -> None:
        self._plan_fill(*args)()

    def _nrm2(self, *args) -> float:
        return self._plan_nrm2(*args)()

    def _sub(self, *args) -> None:
        self._plan_sub(*args)()

    def _mul(self, *args) -> None:
        self._plan_mul(*args)()

    def _activation(self, *args) -> None:
        self._plan_activation(*args)()

    def _activation_backward(self, *args) -> None:
        self._plan_activation_backward(*args)()

    def _cost_sum(self, *args) -> float:
        return self._plan_cost_sum(*args)()
