"""The CPU backend: nnfs's backend contract on numpy.

Layout. A ``rows × cols`` column-major matrix is held as its transpose: a C-ordered numpy
array of shape ``(cols, rows)``, so one sample is one contiguous row of the array. Then

* ``C = op(A)·op(B)`` is ``Cᵀ = op(B)ᵀ·op(A)ᵀ``, one ``numpy.matmul`` into ``Cᵀ`` (BLAS gemm);
* the bias of a layer broadcasts along the last axis, the cheap direction;
* a range of columns (a mini-batch) is a contiguous block of rows.

No temporaries. Every operation writes into its output with ``out=``. Operations that need
intermediate values (sigmoid, the derivatives, the costs, gemm with beta ≠ 0, ger) work through
one scratch array allocated with the factory, block by block; a block is small enough to stay in
the core's cache, so the extra passes cost little memory bandwidth.

Threads. numpy's BLAS uses every core for the matrix products, but a ufunc uses one. An
elementwise operation on a large array is therefore split into as many lanes as the factory has
threads: the first lane runs in the calling thread, the others in worker threads that live as
long as the backend (ufuncs release the GIL), each with a scratch of its own. Handing a lane to
a worker allocates nothing: no future, no queue item (see ``_Worker``).

Training beyond plain SGD. ``optimizer_step`` is one pass over the parameter, gradient and
state vectors, block by block (each block's steps follow one another while it is in the cache),
shared among the threads like the other elementwise operations; its numbers are refreshed from
the host array into 0-d arrays of the dtype when the plan runs. ``dropout_mask`` runs Philox on
uint64 scratch, a chunk of counters at a time, with one ufunc per operation of each round.

Plans. Each operation (``gemm``, ``activation``...) returns a plan: a function of no arguments,
or a list of them, with its arrays, views and blocks bound in advance. The training loop keeps
those functions and calls them every epoch; the factory's one-off calls make a plan and run
it.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

import nnfs
from nnfs import Matrix, Vector, backend_api as api
from nnfs.backend_api import (
    ActivationKind,
    CostKind,
    Hyper,
    MemoryLimits,
    OptimizerKind,
    Plan,
    Step,
)
from nnfs.philox import M0, M1, MASK32, ROUNDS, W0, W1, keep_scale, threshold

from .blas import Blas, mkl_blas, numpy_blas
from .device import available_memory, mkl_is_fast_here
from .vml import mkl_vml

#: Elements of scratch per block: blocks of this size stay in a core's L2 cache.
BLOCK = 32768

#: Elements from which an elementwise operation is shared among threads: below it, handing
#: work to another thread costs more than it saves.
THREAD_MIN = 1 << 18

#: Multiplications from which a plain product goes to MKL rather than through numpy.
DIRECT_MIN = 1 << 15

#: Elements in each call of one of MKL's vector functions: MKL shares a call this large among
#: its threads, and the two or three arrays of a pass stay in the cores' caches between passes.
VML_BLOCK = 1 << 16

#: Elements from which an activation goes to MKL's functions: below it, a call through ctypes
#: costs more than numpy's ufunc (the benchmark's tiny network is 20% slower in VML).
VML_MIN = 1 << 12

#: Outputs from which a layer's bias goes in before its product (a broadcast copy, then the
#: product with β = 1): below it, a BLAS call through ctypes (0.8 µs) costs more than numpy's
#: product and broadcast addition (the tiny preset's layers are 2 × 4 and 2 × 1).
BIAS_IN_PRODUCT_MIN = 1024

#: The values of the ``blas`` option.
BLAS_CHOICES = ("auto", "mkl", "numpy")


def _blocks(total: int, width: int, block: int = BLOCK) -> list[tuple[int, int]]:
    """Split ``total`` rows of ``width`` elements into blocks of about ``block`` elements."""
    step = max(1, block // max(width, 1))
    return [(start, min(start + step, total)) for start in range(0, total, step)]


class _Worker:
    """One helper thread that stays for the backend's lifetime and runs the groups of steps
    it is handed, one group at a time.

    Handing over costs no allocation: the group is stored in an attribute, and two locks that
    are never freed serve as the signals ``go`` (the worker waits on it) and ``done`` (the
    caller waits on it). A ``concurrent.futures`` pool would make a future, a condition and
    a work item for every call. The worker runs with numpy's floating-point warnings off (the
    training loop silences them anyway); an exception in a step is kept and raised again in
    the caller."""

    __slots__ = ("__weakref__", "done", "error", "go", "group", "stopped", "thread")

    def __init__(self, name: str):
        _watch_forks(self)
        self.stopped = False  # after stop(), or in a child process (the thread is not there)
        self.go = threading.Lock()
        self.done = threading.Lock()
        self.go.acquire()
        self.done.acquire()
        self.group: list[Step] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        np.seterr(all="ignore")  # this thread's own setting
        while True:
            self.go.acquire()
            group = self.group
            if group is None:  # stop
                self.done.release()
                return
            try:
                for step in group:
                    step()
            except BaseException as error:  # handed to the caller
                self.error = error
            self.done.release()

    def start(self, group: list[Step]) -> None:
        """Begin running ``group`` in the worker's thread."""
        self.group = group
        self.go.release()

    def wait(self) -> None:
        """Wait for the group begun by :meth:`start`; raise what it raised."""
        self.done.acquire()
        error, self.error = self.error, None
        if error is not None:
            raise error

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.group = None
        self.go.release()
        self.done.acquire()
        self.thread.join()


#: Every worker alive, so that a forked child knows its workers' threads are not there.
_WORKERS: weakref.WeakSet[_Worker] = weakref.WeakSet()
_FORKS_WATCHED = [False]


def _after_fork_in_child() -> None:
    for worker in list(_WORKERS):
        worker.stopped = True


def _watch_forks(worker: _Worker) -> None:
    if not _FORKS_WATCHED[0] and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _FORKS_WATCHED[0] = True
    _WORKERS.add(worker)


def _scaled_norm(flat: np.ndarray) -> float:
    """‖flat‖₂ as ``m·√Σ(xᵢ/m)²`` with m = max |xᵢ| (in float64): no square overflows or
    underflows for finite entries; an infinite entry gives inf and a NaN gives NaN."""
    largest = float(np.max(np.abs(flat)))
    if largest == 0.0 or not math.isfinite(largest):
        return largest
    scaled = flat.astype(np.float64) / largest
    return largest * math.sqrt(float(np.dot(scaled, scaled)))


class _Lanes:
    """Run groups of steps at once: the first in the calling thread, each other one in a
    worker thread of its own, and return when all are done. One call at a time runs on the
    workers (a lock held for the call: plans of one backend may be run from several
    threads)."""

    __slots__ = ("first", "jobs", "lock", "others", "workers")

    def __init__(self, workers: list[_Worker], lock: threading.Lock, groups: list[list[Step]]):
        self.workers = tuple(workers[:len(groups) - 1])
        self.lock = lock
        self.first = groups[0]
        self.others = groups[1:]
        self.jobs = tuple(zip(self.workers, self.others, strict=True))

    def __call__(self) -> None:
        with self.lock:
            if self.workers[0].stopped:  # released, or in a forked child: all of it here
                for group in (self.first, *self.others):
                    for step in group:
                        step()
                return
            for worker, group in self.jobs:
                worker.start(group)
            try:
                for step in self.first:
                    step()
            finally:
                for worker in self.workers:
                    worker.wait()


# --- the activations: each kind's forward and backward, side by side ---------------------------
#
# forward(backend, s, lane): steps taking a block s = z + b to f(s), in place.
# backward(backend, a, δ, lane): steps taking δ to δ ⊙ f'(z), through a = f(z) (None: f' = 1).
# A block is rows of the transposed layout: one sample per row.


def _linear_forward(backend: CpuBackend, s: np.ndarray, lane: int) -> list[Step]:
    return []  # a = s


def _sigmoid_forward(backend: CpuBackend, s: np.ndarray, lane: int) -> list[Step]:
    half = backend._c(0.5)  # σ(s) = ½·tanh(½s) + ½, which never overflows
    return [functools.partial(np.multiply, s, half, s), functools.partial(np.tanh, s, s),
            functools.partial(np.multiply, s, half, s), functools.partial(np.add, s, half, s)]


def _sigmoid_backward(backend: CpuBackend, a: np.ndarray, d: np.ndarray,
                      lane: int) -> list[Step]:
    work = backend._work(a.shape, lane=lane)  # δ ⊙= a (1 − a)
    return [functools.partial(np.subtract, backend._c(1.0), a, work),
            functools.partial(np.multiply, work, a, work),
            functools.partial(np.multiply, d, work, d)]


def _tanh_forward(backend: CpuBackend, s: np.ndarray, lane: int) -> list[Step]:
    return [functools.partial(np.tanh, s, s)]


def _tanh_backward(backend: CpuBackend, a: np.ndarray, d: np.ndarray, lane: int) -> list[Step]:
    work = backend._work(a.shape, lane=lane)  # δ ⊙= 1 − a²
    return [functools.partial(np.multiply, a, a, work),
            functools.partial(np.subtract, backend._c(1.0), work, work),
            functools.partial(np.multiply, d, work, d)]


def _relu_forward(backend: CpuBackend, s: np.ndarray, lane: int) -> list[Step]:
    # a = max(s, 0) against an array of zeros: numpy's maximum with a scalar (a 0-d array)
    # takes a loop without SIMD, 4× slower on a 64 × 256 block
    return [functools.partial(np.maximum, s, backend._filled(0.0, s.shape), out=s)]


def _relu_backward(backend: CpuBackend, a: np.ndarray, d: np.ndarray, lane: int) -> list[Step]:
    # δ ⊙= [a > 0] with a ≥ 0: ⌈min(a, 1)⌉ is 1 where a > 0 and 0 where a = 0, exactly, in
    # three passes of one dtype (2× faster than sign(a); a boolean mask would make numpy
    # allocate a buffer to cast it, on every call)
    work = backend._work(a.shape, lane=lane)
    return [functools.partial(np.minimum, a, backend._filled(1.0, a.shape), out=work),
            functools.partial(np.ceil, work, out=work),
            functools.partial(np.multiply, d, work, out=d)]


#: Rows of at most this many entries are reduced across, over the transposed view: numpy's
#: reduction along a short contiguous row costs more per row than its loop over columns.
NARROW = 32


def _row_reductions(s: np.ndarray, column: np.ndarray) -> tuple[Step, Step]:
    """The maximum and the sum of each row of ``s`` into ``column`` (rows × 1), as plans."""
    if s.shape[1] <= NARROW:
        flat = column[:, 0]
        return (functools.partial(np.maximum.reduce, s.T, axis=0, out=flat),
                functools.partial(np.add.reduce, s.T, axis=0, out=flat))
    return (functools.partial(np.max, s, axis=1, keepdims=True, out=column),
            functools.partial(np.sum, s, axis=1, keepdims=True, out=column))


def _softmax_forward(backend: CpuBackend, s: np.ndarray, lane: int) -> list[Step]:
    # per sample (a row here): exp(s − max s) / Σ exp(s − max s); each column of one number
    # per row is first copied across its rows (a broadcast copy allocates nothing, where a
    # ufunc that broadcasts it allocates numpy's buffers on every call)
    column = backend._work((s.shape[0], 1), part=2, lane=lane)
    spread = backend._work(s.shape, lane=lane)
    largest, total = _row_reductions(s, column)
    return [largest, functools.partial(np.copyto, spread, column),
            functools.partial(np.subtract, s, spread, s), functools.partial(np.exp, s, s),
            total, functools.partial(np.copyto, spread, column),
            functools.partial(np.divide, s, spread, s)]


def _softmax_backward(backend: CpuBackend, a: np.ndarray, d: np.ndarray,
                      lane: int) -> list[Step]:
    # g ← a ⊙ (g − aᵀg), per sample
    work = backend._work(a.shape, lane=lane)
    column = backend._work((a.shape[0], 1), part=2, lane=lane)
    _, total = _row_reductions(work, column)
    return [functools.partial(np.multiply, a, d, work), total,
            functools.partial(np.copyto, work, column),
            functools.partial(np.subtract, d, work, d), functools.partial(np.multiply, d, a, d)]


@dataclass(frozen=True)
class _Activation:
    forward: Callable[..., list[Step]]
    backward: Callable[..., list[Step]] | None


ACTIVATIONS = {
    ActivationKind.LINEAR: _Activation(_linear_forward, None),
    ActivationKind.SIGMOID: _Activation(_sigmoid_forward, _sigmoid_backward),
    ActivationKind.TANH: _Activation(_tanh_forward, _tanh_backward),
    ActivationKind.RELU: _Activation(_relu_forward, _relu_backward),
    ActivationKind.SOFTMAX: _Activation(_softmax_forward, _softmax_backward),
}

# With MKL's vector math (sigmoid and tanh), on flat blocks:
# scale(dtype): what s is multiplied by before forward (folded into the layer's product);
# forward(vml, x, dtype): steps taking x = scale·s to f(s); backward(vml, a, work): f'(z) into work.


def _vml_sigmoid_scale(dtype: np.dtype) -> float:
    return 0.5 if dtype == np.float32 else -1.0


def _vml_sigmoid(vml, x: np.ndarray, dtype: np.dtype) -> list[Step]:
    # two forms, each the faster for its dtype on the benchmark's mid network:
    if dtype == np.float32:  # σ(s) = ½·tanh(½s) + ½
        return [vml.unary("Tanh", x, x), vml.linear_frac(x, x, 0.5, 0.5, 0.0, 1.0, x)]
    # σ(s) = 1 / (1 + exp(−s)), where exp overflowing to ∞ gives 0
    return [vml.unary("Exp", x, x), vml.linear_frac(x, x, 0.0, 1.0, 1.0, 1.0, x)]


def _vml_sigmoid_backward(vml, a: np.ndarray, work: np.ndarray) -> list[Step]:
    return [vml.linear_frac(a, a, -1.0, 1.0, 0.0, 1.0, work), vml.mul(work, a, work)]  # a(1 − a)


def _vml_tanh(vml, x: np.ndarray, dtype: np.dtype) -> list[Step]:
    return [vml.unary("Tanh", x, x)]


def _vml_tanh_backward(vml, a: np.ndarray, work: np.ndarray) -> list[Step]:
    return [vml.unary("Sqr", a, work), vml.linear_frac(work, work, -1.0, 1.0, 0.0, 1.0, work)]


@dataclass(frozen=True)
class _VmlActivation:
    scale: Callable[[np.dtype], float]
    forward: Callable[..., list[Step]]
    backward: Callable[..., list[Step]]


VML_ACTIVATIONS = {
    ActivationKind.SIGMOID: _VmlActivation(_vml_sigmoid_scale, _vml_sigmoid,
                                           _vml_sigmoid_backward),
    ActivationKind.TANH: _VmlActivation(lambda dtype: 1.0, _vml_tanh, _vml_tanh_backward),
}


# --- the optimizers: each rule's pass over one block, in numpy ufuncs writing with out= -------
#
# rule(k, p, g, state, w): the steps of one block; p, g, the state blocks and w (scratch) are
# views of one block of the flat vectors, and k holds the step's numbers as 0-d arrays (see
# _StepNumbers). Weight decay is added to g first, by _decayed, where the rule asks for it.


class _StepNumbers:
    """The numbers of an optimizer step, as 0-d arrays of the dtype (a ufunc takes them three
    times faster than Python floats), refreshed from the host array by calling this object:
    the plan's first step."""

    NAMES = ("neg_eta", "decay", "momentum", "one_minus_beta1", "beta2", "one_minus_beta2",
             "root_scale", "eps_scale", "neg_eta_decay")

    def __init__(self, hyper: np.ndarray, dtype: np.dtype):
        self.hyper = hyper
        self.host = np.zeros(len(self.NAMES))
        self.values = np.zeros(len(self.NAMES), dtype)
        for i, name in enumerate(self.NAMES):
            setattr(self, name, self.values[i:i + 1].reshape(()))  # a view: refreshed in place

    def __call__(self) -> None:
        h, host = self.hyper, self.host
        eta, decay, momentum = h[Hyper.ETA], h[Hyper.WEIGHT_DECAY], h[Hyper.MOMENTUM]
        beta1, beta2, root = h[Hyper.BETA1], h[Hyper.BETA2], h[Hyper.ROOT_CORRECTION]
        step = h[Hyper.STEP_SIZE]
        # Adam's −α·m/(√v/c + ε) is taken as m/(√v·k₁ + k₂), k₁ = −1/(α·c), k₂ = −ε/α: two
        # passes fewer
        scale = -1.0 / step if step else 0.0
        host[:] = (-eta, decay, momentum, 1.0 - beta1, beta2, 1.0 - beta2,
                   scale / root if root else 0.0, scale * h[Hyper.EPS], -eta * decay)
        np.copyto(self.values, host, casting="same_kind")


def _decayed(k, p, g, d, w) -> list[Step]:
    # g' = g + λ·d⊙p
    return [functools.partial(np.multiply, d, p, w), functools.partial(np.multiply, w, k.decay, w),
            functools.partial(np.add, g, w, g)]


def _sgd_rule(k, p, g, state, w) -> list[Step]:
    # p ← p − η·g'
    return [functools.partial(np.multiply, g, k.neg_eta, w), functools.partial(np.add, p, w, p)]


def _momentum_rule(k, p, g, state, w) -> list[Step]:
    (u,) = state  # u ← μ·u + g';  p ← p − η·u
    return [functools.partial(np.multiply, u, k.momentum, u), functools.partial(np.add, u, g, u),
            functools.partial(np.multiply, u, k.neg_eta, w), functools.partial(np.add, p, w, p)]


def _nesterov_rule(k, p, g, state, w) -> list[Step]:
    (u,) = state  # u ← μ·u + g';  p ← p − η·(g' + μ·u)
    return [functools.partial(np.multiply, u, k.momentum, u), functools.partial(np.add, u, g, u),
            functools.partial(np.multiply, u, k.momentum, w), functools.partial(np.add, w, g, w),
            functools.partial(np.multiply, w, k.neg_eta, w), functools.partial(np.add, p, w, p)]


def _adam_rule(k, p, g, state, w) -> list[Step]:
    m, v = state
    return [
        # m ← m + (1 − β₁)·(g' − m)  (= β₁·m + (1 − β₁)·g', as torch's lerp)
        functools.partial(np.subtract, g, m, w),
        functools.partial(np.multiply, w, k.one_minus_beta1, w),
        functools.partial(np.add, m, w, m),
        # v ← β₂·v + (1 − β₂)·g'², g' used up as scratch
        functools.partial(np.multiply, g, g, g),
        functools.partial(np.multiply, g, k.one_minus_beta2, g),
        functools.partial(np.multiply, v, k.beta2, v), functools.partial(np.add, v, g, v),
        # p ← p − α·m / (√v / c + ε) = p + m / (√v·k₁ + k₂)
        functools.partial(np.sqrt, v, w), functools.partial(np.multiply, w, k.root_scale, w),
        functools.partial(np.add, w, k.eps_scale, w), functools.partial(np.divide, m, w, w),
        functools.partial(np.add, p, w, p),
    ]


def _adamw_shrink(k, p, d, w) -> list[Step]:
    # p ← p − η·λ·d⊙p, before the Adam step
    return [functools.partial(np.multiply, d, p, w),
            functools.partial(np.multiply, w, k.neg_eta_decay, w),
            functools.partial(np.add, p, w, p)]


@dataclass(frozen=True)
class _Optimizer:
    rule: Callable[..., list[Step]]
    decay_in_gradient: bool  # weight decay added to the gradient (else decoupled, AdamW's)


OPTIMIZERS = {
    OptimizerKind.SGD: _Optimizer(_sgd_rule, True),
    OptimizerKind.MOMENTUM: _Optimizer(_momentum_rule, True),
    OptimizerKind.NESTEROV: _Optimizer(_nesterov_rule, True),
    OptimizerKind.ADAM: _Optimizer(_adam_rule, True),
    OptimizerKind.ADAMW: _Optimizer(_adam_rule, False),
}

#: Philox blocks (four words each) per chunk of a dropout mask: the uint64 scratch of one
#: chunk (seven arrays of this many) stays in the cache.
PHILOX_CHUNK = 4096


class CpuBackend(api.Backend):
    """nnfs's backend on the CPU, through numpy (its BLAS does the matrix products)."""

    name = "cpu"
    dtypes = ("float32", "float64")
    sync_every = 0  # numpy calls return when their work is done

    def __init__(self, dtype: object = "float32", threads: int | None = None,
                 blas: str = "auto", direct_blas: bool = True, vml: bool = True):
        super().__init__(dtype)
        if threads is None:
            threads = min(os.cpu_count() or 1, 8)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise nnfs.NnfsValueError(f"cpu backend: threads must be a positive integer, "
                                      f"got {threads!r}")
        if not isinstance(direct_blas, bool):
            raise nnfs.NnfsTypeError(f"cpu backend: direct_blas must be True or False, "
                                     f"got {direct_blas!r}")
        if not isinstance(vml, bool):
            raise nnfs.NnfsTypeError(f"cpu backend: vml must be True or False, got {vml!r}")
        if blas not in BLAS_CHOICES:
            raise nnfs.NnfsValueError(f"cpu backend: blas must be one of "
                                      f"{', '.join(map(repr, BLAS_CHOICES))}, got {blas!r}")
        if blas == "mkl" and not direct_blas:
            raise nnfs.NnfsValueError("cpu backend: blas='mkl' is called directly; "
                                      "direct_blas=False needs blas='numpy'")
        # auto: MKL where it is installed and the faster BLAS of this processor (Intel's)
        wanted = blas == "mkl" or (blas == "auto" and mkl_is_fast_here())
        mkl = mkl_blas() if wanted and direct_blas else None
        if blas == "mkl" and isinstance(mkl, str):
            raise nnfs.BackendUnavailable(f"cpu backend: blas='mkl': {mkl}")
        self.threads = threads
        # gemm and gemv with α and β as one call into numpy's own BLAS; without it, through
        # numpy functions and scratch
        self._numpy_blas = numpy_blas() if direct_blas else None
        self._mkl = None if isinstance(mkl, str) else mkl  # every product of a useful size
        self.capabilities = api.Capabilities(
            accumulates=self._mkl is not None or self._numpy_blas is not None)
        # sigmoid, tanh and their derivatives on MKL's threads, when MKL multiplies
        found = mkl_vml() if self._mkl is not None and vml else None
        self._vml = None if isinstance(found, str) else found
        self._workers: list[_Worker] = []  # started by the first plan that shares its work
        self._workers_lock = threading.Lock()
        self._constants: dict[float, np.ndarray] = {}
        self._part = BLOCK  # elements in each of the three parts of a lane's scratch
        self._scratch: list[np.ndarray | None] = [None] * threads
        self._lane_scratch(0)
        for value in self._constant_values():  # now, not when the first plan needs them
            self._filled(value, (BLOCK,))

    def _lane_scratch(self, lane: int) -> np.ndarray:
        scratch = self._scratch[lane]
        if scratch is None or scratch.size < 3 * self._part:
            scratch = self._scratch[lane] = self.allocate(3 * self._part)
            self.memory.allocated(scratch.nbytes)
        return scratch

    def _pool(self) -> list[_Worker]:
        """The worker threads (``threads − 1`` of them), started when first needed: while a
        plan is made, never while one runs."""
        if not self._workers:
            self._workers = [_Worker(f"nnfs-cpu-{i + 1}") for i in range(self.threads - 1)]
        return self._workers

    def release(self) -> None:
        with self._workers_lock:  # not while a plan runs on them
            workers, self._workers = self._workers, []
            for worker in workers:
                worker.stop()

    def _lanes(self, elements: int, blocks: list[tuple[int, int]],
               steps_of: Callable[[int, int, int], list[Step]]) -> list[Step]:
        """The steps of every block, ``steps_of(lane, start, stop)``; for a large operation the
        blocks are shared out among the threads in contiguous groups."""
        lanes = min(self.threads, len(blocks)) if elements >= THREAD_MIN else 1
        if lanes <= 1:
            return [step for start, stop in blocks for step in steps_of(0, start, stop)]
        groups: list[list[Step]] = [[] for _ in range(lanes)]
        per_lane = -(-len(blocks) // lanes)
        for i, (start, stop) in enumerate(blocks):
            lane = i // per_lane
            groups[lane] += steps_of(lane, start, stop)
        groups = [group for group in groups if group]
        if len(groups) <= 1:  # nothing, or nothing to share
            return groups[0] if groups else []
        return [_Lanes(self._pool(), self._workers_lock, groups)]

    def _whole(self, ufunc, *arrays: np.ndarray) -> list[Step]:
        """``ufunc(*arrays)`` on equally sized arrays, the last one the output, shared among
        the threads in contiguous pieces when large."""
        size = arrays[-1].size
        # arrays are cut into pieces; constants (0-d arrays, Python numbers) go whole to each
        flat = [a.reshape(-1) if isinstance(a, np.ndarray) and a.ndim else a for a in arrays]
        lanes = min(self.threads, max(1, size // BLOCK)) if size >= THREAD_MIN else 1
        step = -(-size // lanes)
        pieces = [(start, min(start + step, size)) for start in range(0, size, step)]

        def steps_of(lane: int, start: int, stop: int) -> list[Step]:
            part = [f[start:stop] if isinstance(f, np.ndarray) and f.ndim else f for f in flat]
            return [functools.partial(ufunc, *part)]

        return self._lanes(size, pieces, steps_of)

    # --- memory -----------------------------------------------------------------------------

    def allocate(self, size: int) -> np.ndarray:
        # Written now, not left to np.zeros: calloc'd pages are committed only when first
        # written, so MemAvailable would not count them and the memory check of the next
        # network would pass against memory this one already holds, until an epoch touched
        # it all and the kernel killed the process.
        storage = np.empty(size, dtype=self.numpy_dtype)
        storage.fill(0)
        return storage

    def matrix_view(self, storage: np.ndarray, offset: int, rows: int, cols: int) -> np.ndarray:
        return storage[offset:offset + rows * cols].reshape(cols, rows)  # the transpose, C order

    def vector_view(self, storage: np.ndarray, offset: int, size: int) -> np.ndarray:
        return storage[offset:offset + size]

    def memory_limits(self) -> MemoryLimits:
        available = available_memory()
        return MemoryLimits(available, available)

    def describe(self) -> str:
        threads = "1 thread" if self.threads == 1 else f"{self.threads} threads"
        if self._mkl is not None:
            blas = f", products in {self._mkl.name}"
            if self._vml is not None:
                blas += ", activations in its vector math"
        elif self._numpy_blas is not None:
            blas = f", α and β in one call of BLAS {self._numpy_blas.name}"
        else:
            blas = ""
        return f"cpu {self.dtype} (numpy {np.__version__}, {threads}{blas})"

    def read(self, x: Matrix | Vector) -> np.ndarray:
        return np.ascontiguousarray(x.handle.T) if isinstance(x, Matrix) else x.handle.copy()

    def write(self, host: np.ndarray, x: Matrix | Vector) -> None:
        np.copyto(x.handle, host.T if isinstance(x, Matrix) else host)

    def write_samples(self, host: np.ndarray, x: Matrix) -> None:
        np.copyto(x.handle, host)  # the handle is already one sample per row

    def write_rows(self, host: np.ndarray, rows: np.ndarray | slice, x: Matrix,
                   staging: np.ndarray) -> None:
        # the device's memory is host memory: gathered straight into the matrix, one copy;
        # mode="wrap" does not buffer (the caller checked the rows are in range)
        if isinstance(rows, slice):
            np.copyto(x.handle, host[rows])
        else:
            host.take(rows, axis=0, out=x.handle, mode="wrap")  # the method: no wrapper

    def read_samples(self, x: Matrix, out: np.ndarray) -> None:
        np.copyto(out, x.handle)

    def _c(self, value: float) -> np.ndarray:
        """``value`` as a 0-d array of the factory's dtype: a ufunc takes it three times faster
        than a Python float, which it would convert on every call."""
        return np.array(value, dtype=self.numpy_dtype)

    def _filled(self, value: float, shape: tuple[int, ...]) -> np.ndarray:
        """A read-only array of ``shape`` whose every entry is ``value`` (one of
        :meth:`_constant_values`), shared by every plan: numpy's ``maximum`` and ``minimum``
        run 4× faster against an array than against a scalar. The arrays are allocated with
        the scratch, when the backend starts, and grow (like the scratch) only for a block
        wider than BLOCK, while a plan is made."""
        size = int(np.prod(shape))
        found = self._constants.get(value)
        if found is None or found.size < size:
            found = self.allocate(max(size, BLOCK))
            found.fill(value)
            found.setflags(write=False)
            self.memory.allocated(found.nbytes)
            self._constants[value] = found
        return found[:size].reshape(shape)

    def _constant_values(self) -> tuple[float, ...]:
        """The constants plans compare against: 0 and 1 (relu), the cross-entropy's clip."""
        eps = float(np.finfo(self.numpy_dtype).eps)
        return (0.0, 1.0, eps, 1.0 - eps)

    def _work(self, shape: tuple[int, ...], part: int = 0, lane: int = 0) -> np.ndarray:
        """A view of ``shape`` into part 0, 1 or 2 of a lane's scratch (views of different
        parts or lanes never overlap).

        Blocks hold about BLOCK elements, except a single sample wider than that; then the
        scratch grows, here, while a plan is made, never while one runs. Plans made earlier
        keep the old scratch alive through their views.
        """
        size = int(np.prod(shape))
        if size > self._part:
            self._part = size
            self._scratch = [None] * self.threads
        scratch = self._lane_scratch(lane)
        start = part * self._part
        return scratch[start:start + size].reshape(shape)

    # --- plans ------------------------------------------------------------------------------

    def gemm(self, alpha, a, b, beta, c, trans_a, trans_b) -> Plan:
        # C = α·op(A)·op(B) + β·C  ⇔  Cᵀ = α·op(B)ᵀ·op(A)ᵀ + β·Cᵀ, with Xᵀ = x.handle
        left = b.handle.T if trans_b else b.handle
        right = a.handle.T if trans_a else a.handle
        ct = c.handle
        library = self._library(alpha, beta, ct.size * left.shape[1])
        if library is not None:
            call = library.gemm(alpha, left, right, beta, ct)  # one BLAS call
            if call is not None:
                return call
        if beta == 0.0:
            product = functools.partial(np.dot, left, right, ct)
            if alpha == 1.0:
                return product
            return [product, functools.partial(np.multiply, ct, self._c(alpha), ct)]
        plans: list[Step] = []
        for start, stop in _blocks(ct.shape[0], ct.shape[1]):
            work = self._work((stop - start, ct.shape[1]))
            block = ct[start:stop]
            plans.append(functools.partial(np.dot, left[start:stop], right, work))
            if alpha != 1.0:
                plans.append(functools.partial(np.multiply, work, self._c(alpha), work))
            if beta != 1.0:
                plans.append(functools.partial(np.multiply, block, self._c(beta), block))
            plans.append(functools.partial(np.add, block, work, block))
        return plans

    def _library(self, alpha: float, beta: float, multiplications: int) -> Blas | None:
        """The BLAS to call directly for a product, or None for numpy's functions. With MKL,
        every product of DIRECT_MIN multiplications or more; below that, a call through ctypes
        (2 µs) and MKL's own set-up cost more than numpy's, so numpy's BLAS keeps them. A
        product with α or β goes directly to a BLAS whatever its size: numpy would need extra
        passes."""
        if self._mkl is not None and multiplications >= DIRECT_MIN:
            return self._mkl
        if alpha != 1.0 or beta != 0.0:
            return self._numpy_blas or self._mkl
        return None

    def gemv(self, alpha, a, x, beta, y, trans) -> Plan:
        # A·x = x·Aᵀ-array;  Aᵀ·x = Aᵀ-array·x
        at, xv, yv = a.handle, x.handle, y.handle
        library = self._library(alpha, beta, at.size)
        if library is not None:
            call = library.gemv(alpha, at if trans else at.T, xv, beta, yv)
            if call is not None:
                return call
        operands = (at, xv) if trans else (xv, at)
        if beta == 0.0:
            product = functools.partial(np.dot, *operands, yv)
            if alpha == 1.0:
                return product
            return [product, functools.partial(np.multiply, yv, self._c(alpha), yv)]
        work = self._work(yv.shape) if yv.size <= BLOCK else None
        if work is None:  # a long y: go through blocks of the rows of op(A)
            plans: list[Step] = []
            for start, stop in _blocks(yv.size, 1):
                part = self._work((stop - start,))
                rows = at[start:stop] if trans else at[:, start:stop]
                pair = (rows, xv) if trans else (xv, rows)
                plans += [functools.partial(np.dot, *pair, part),
                          functools.partial(np.multiply, part, self._c(alpha), part),
                          functools.partial(np.multiply, yv[start:stop], self._c(beta),
                                            yv[start:stop]),
                          functools.partial(np.add, yv[start:stop], part, yv[start:stop])]
            return plans
        return [
            functools.partial(np.dot, *operands, work),
            functools.partial(np.multiply, work, self._c(alpha), work),
            functools.partial(np.multiply, yv, self._c(beta), yv),
            functools.partial(np.add, yv, work, yv),
        ]

    def rank1_update(self, alpha, x, y, a) -> Plan:
        # A += α·x·yᵀ  ⇔  Aᵀ += α·y·xᵀ, row block by row block of Aᵀ
        at, xv, yv = a.handle, x.handle, y.handle
        plans: list[Step] = []
        for start, stop in _blocks(at.shape[0], at.shape[1]):
            work = self._work((stop - start, at.shape[1]))
            column = yv[start:stop, None]
            plans.append(functools.partial(np.multiply, column, xv, work))
            if alpha != 1.0:
                plans.append(functools.partial(np.multiply, work, self._c(alpha), work))
            plans.append(functools.partial(np.add, at[start:stop], work, at[start:stop]))
        return plans

    def _flat_blocks(self, *arrays: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        """The arrays (of equal size) as flat views, block by block."""
        flat = [array.reshape(-1) for array in arrays]
        return [tuple(f[start:stop] for f in flat) for start, stop in _blocks(flat[0].size, 1)]

    def axpy(self, alpha, x, y) -> Plan:
        xv, yv = x.handle, y.handle
        if alpha == 1.0:
            return self._whole(np.add, yv, xv, yv)
        if alpha == -1.0:
            return self._whole(np.subtract, yv, xv, yv)
        xf, yf = xv.reshape(-1), yv.reshape(-1)

        def steps_of(lane: int, start: int, stop: int) -> list[Step]:
            xb, yb = xf[start:stop], yf[start:stop]
            work = self._work(xb.shape, lane=lane)
            return [functools.partial(np.multiply, xb, self._c(alpha), work),
                    functools.partial(np.add, yb, work, yb)]

        return self._lanes(xf.size, _blocks(xf.size, 1), steps_of)

    def scal(self, alpha, x) -> Plan:
        return self._whole(np.multiply, x.handle, self._c(alpha), x.handle)

    def copy(self, x, y) -> Plan:
        return self._whole(np.copyto, y.handle, x.handle)

    def fill(self, x, value) -> Plan:
        return functools.partial(x.handle.fill, value)

    def _dot(self, x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
        """``x·y`` of two vectors; a long one through MKL when it multiplies, since numpy's
        BLAS would wake its own threads for it, against MKL's, spinning between calls."""
        long = self._mkl is not None and x.size >= DIRECT_MIN
        call = self._mkl.dot(x, y) if long and self._mkl is not None else None
        return call if call is not None else functools.partial(np.dot, x, y)

    def nrm2(self, x) -> Step:
        # ‖x‖ = √(x·x), one BLAS dot, whenever the sum of squares shows that none of them
        # overflowed (it is finite) or underflowed where it matters (it is at least tiny/eps,
        # so a lost square is below its rounding); otherwise the scaled sum, as BLAS nrm2 does
        flat = x.handle.reshape(-1)
        square = self._dot(flat, flat)
        info = np.finfo(self.numpy_dtype)
        trusted = float(info.tiny / info.eps)

        def nrm2() -> float:
            with np.errstate(over="ignore", under="ignore"):  # the overflow is handled here
                total = float(square())
            if trusted <= total < math.inf:
                return math.sqrt(total)
            return _scaled_norm(flat)

        return nrm2

    def sub(self, x, y, out) -> Plan:
        return self._whole(np.subtract, x.handle, y.handle, out.handle)

    def mul(self, x, y, out) -> Plan:
        return self._whole(np.multiply, x.handle, y.handle, out.handle)

    def activation(self, kind, z, bias, out) -> Plan:
        zt, ot = z.handle, out.handle
        b = None if bias is None else bias.handle
        in_place = z.buffer is out.buffer and z.offset == out.offset
        if self._uses_vml(kind, ot):
            plans = self._vml_activation(kind, zt, b, ot, in_place)
            if plans is not None:
                return plans
        forward = ACTIVATIONS[kind].forward

        def steps_of(lane: int, start: int, stop: int) -> list[Step]:
            zb, ob = zt[start:stop], ot[start:stop]
            if b is not None:  # s = z + b, the bias first copied across the block's rows
                spread = self._work(zb.shape, part=1, lane=lane)
                steps = [functools.partial(np.copyto, spread, b),
                         functools.partial(np.add, zb, spread, ob)]
            elif not in_place:
                steps = [functools.partial(np.copyto, ob, zb)]
            else:
                steps = []
            return steps + forward(self, ob, lane)  # a = f(s), in place

        return self._lanes(zt.size, _blocks(zt.shape[0], zt.shape[1]), steps_of)

    def activation_backward(self, kind, a, delta) -> Plan:
        at, dt = a.handle, delta.handle
        if self._uses_vml(kind, at):
            plans = self._vml_activation_backward(kind, at, dt)
            if plans is not None:
                return plans
        backward = ACTIVATIONS[kind].backward
        if backward is None:  # f' = 1
            return []

        def steps_of(lane: int, start: int, stop: int) -> list[Step]:
            return backward(self, at[start:stop], dt[start:stop], lane)  # δ ⊙= f'(z)

        return self._lanes(at.size, _blocks(at.shape[0], at.shape[1]), steps_of)

    # --- MKL's vector math for the activations that have it -----------------------------------

    def _uses_vml(self, kind: ActivationKind, array: np.ndarray) -> bool:
        """Whether the activation ``kind`` on ``array`` goes to MKL's functions."""
        return self._vml is not None and kind in VML_ACTIVATIONS and array.size >= VML_MIN

    def _vml_scale(self, kind: ActivationKind) -> float:
        """What the input of ``kind`` is multiplied by before MKL's passes finish it (see
        ``VML_ACTIVATIONS``)."""
        return VML_ACTIVATIONS[kind].scale(self.numpy_dtype)

    def _vml_finish(self, kind: ActivationKind, ot: np.ndarray,
                    scaled: bool = True) -> list[Step] | None:
        """MKL's passes, block by block, taking ``out`` from ``scale·s`` (``_vml_scale``) to
        ``f(s)``; from ``s`` itself when not ``scaled``."""
        vml, flat, scale = self._vml, ot.reshape(-1), self._vml_scale(kind)
        assert vml is not None  # asked only where MKL's vector functions are used
        finish = VML_ACTIVATIONS[kind].forward
        steps: list[Step | None] = []
        for start, stop in _blocks(flat.size, 1, VML_BLOCK):
            x = flat[start:stop]
            if not scaled and scale != 1.0:
                steps.append(vml.linear_frac(x, x, scale, 0.0, 0.0, 1.0, x))
            steps += finish(vml, x, self.numpy_dtype)
        return None if any(step is None for step in steps) else cast("list[Step]", steps)

    def _vml_activation(self, kind: ActivationKind, zt: np.ndarray, b: np.ndarray | None,
                        ot: np.ndarray, in_place: bool) -> list[Step] | None:
        """``f(z + b)`` with MKL's functions, or None when the arrays do not suit them."""
        if not ot.flags.c_contiguous:
            return None
        steps: list[Step]
        if b is not None:
            steps = [functools.partial(np.add, zt, b, ot)]
        else:
            steps = [] if in_place else self._whole(np.copyto, ot, zt)
        finish = self._vml_finish(kind, ot, scaled=False)
        return None if finish is None else steps + finish

    def layer_forward(self, kind, weights, x, bias, out, ones) -> Plan:
        """With MKL's vector functions, one layer's forward pass is ``out = scale·W·x``, then
        ``out += scale·1·bᵀ`` (a product of rank one: MKL shares it among the threads that
        just wrote ``out``, where numpy's broadcast addition is the slowest pass of a layer),
        then MKL's finishing passes; the sigmoid's first scaling costs no pass of its own."""
        ot = out.handle
        if not self._uses_vml(kind, ot) or not ot.flags.c_contiguous:
            return self._layer_forward_biased(kind, weights, x, bias, out, ones)
        scale = self._vml_scale(kind)
        assert self._mkl is not None  # MKL's vector functions come only with MKL
        add_bias = self._mkl.gemm(scale, ones.handle[:, None], bias.handle[None, :], 1.0, ot)
        finish = self._vml_finish(kind, ot)
        if add_bias is None or finish is None:
            return super().layer_forward(kind, weights, x, bias, out, ones)
        product = api.steps(self.gemm(scale, weights, x, 0.0, out, False, False))
        return [*product, add_bias, *finish]

    def _layer_forward_biased(self, kind, weights, x, bias, out, ones) -> Plan:
        """Without MKL's vector functions: the bias copied into every sample's row of
        ``out`` (a broadcast copy, 2–3× faster than numpy's broadcast addition after the
        product), the product added to it inside BLAS (β = 1, one call), then the activation
        in place. Where no BLAS takes β, the default: the product, then bias and activation."""
        ot = out.handle
        if ot.size < BIAS_IN_PRODUCT_MIN:
            return super().layer_forward(kind, weights, x, bias, out, ones)
        product = api.steps(self.gemm(1.0, weights, x, 1.0, out, False, False))
        if len(product) != 1 or not ot.flags.c_contiguous \
                or self._library(1.0, 1.0, ot.size * weights.cols) is None:
            return super().layer_forward(kind, weights, x, bias, out, ones)
        return [functools.partial(np.copyto, ot, bias.handle), *product,
                *api.steps(self.activation(kind, out, None, out))]

    def _vml_activation_backward(self, kind: ActivationKind, at: np.ndarray,
                                 dt: np.ndarray) -> list[Step] | None:
        """``δ ⊙= f'`` on MKL's threads, from ``a``, or None when the arrays do not suit it."""
        if not (at.flags.c_contiguous and dt.flags.c_contiguous):
            return None
        vml, af, df = self._vml, at.reshape(-1), dt.reshape(-1)
        assert vml is not None  # asked only where MKL's vector functions are used
        derivative = VML_ACTIVATIONS[kind].backward
        steps: list[Step | None] = []
        for start, stop in _blocks(af.size, 1, VML_BLOCK):
            ab, db = af[start:stop], df[start:stop]
            work = self._work(ab.shape)
            steps += [*derivative(vml, ab, work), vml.mul(db, work, db)]
        return None if any(step is None for step in steps) else cast("list[Step]", steps)

    def cost_sum(self, kind, y, a) -> Step:
        eps = float(np.finfo(self.numpy_dtype).eps)
        # the scratch views are taken now, while the plan is made: running it takes none
        blocks = [(yb, ab, self._work(ab.shape), self._work(ab.shape, part=1))
                  for yb, ab in self._flat_blocks(y.handle, a.handle)]
        subtract, log = np.subtract, np.log

        if kind == CostKind.QUADRATIC:  # Σ (a − y)²
            squares = [(yb, ab, work, self._dot(work, work)) for yb, ab, work, _ in blocks]
            if len(squares) == 1:
                yb, ab, work, square = squares[0]

                def total() -> float:
                    subtract(ab, yb, work)
                    return float(square())

                return total

            def total() -> float:
                result = 0.0
                for yb, ab, work, square in squares:
                    subtract(ab, yb, work)
                    result += float(square())
                return result

            return total

        binary = kind == CostKind.BINARY_CROSS_ENTROPY
        one = self._c(1.0)
        maximum, minimum = np.maximum, np.minimum
        # a clipped to [ε, 1 − ε] against arrays of the bounds: numpy's clip goes through two
        # Python wrappers, and its loop with scalar bounds has no SIMD
        terms = [(ab, work, other, self._dot(yb, work), self._dot(yb, other),
                  self._filled(eps, ab.shape), self._filled(1.0 - eps, ab.shape))
                 for yb, ab, work, other in blocks]

        def cross_entropy_total() -> float:
            result = 0.0
            for ab, work, other, y_work, y_other, low, high in terms:
                maximum(ab, low, out=work)
                minimum(work, high, out=work)
                if binary:  # y·ln a + (1 − y)·ln(1 − a) = y·ln a + ln(1 − a) − y·ln(1 − a)
                    subtract(one, work, other)
                    log(other, other)
                    result -= float(np.sum(other)) - float(y_other())
                log(work, work)
                result -= float(y_work())
            return result

        return cross_entropy_total

    # --- training beyond plain SGD ---------------------------------------------------------

    def optimizer_step(self, kind, parameters, gradient, state, decay, hyper) -> Plan:
        numbers = _StepNumbers(hyper, self.numpy_dtype)
        rule = OPTIMIZERS[kind]
        flat = [v.handle for v in (parameters, gradient, *state)]
        d = None if decay is None else decay.handle

        def steps_of(lane: int, start: int, stop: int) -> list[Step]:
            p, g, *moments = (v[start:stop] for v in flat)
            w = self._work(p.shape, lane=lane)
            plans: list[Step] = []
            if d is not None:
                if rule.decay_in_gradient:
                    plans += _decayed(numbers, p, g, d[start:stop], w)
                else:
                    plans += _adamw_shrink(numbers, p, d[start:stop], w)
            return plans + rule.rule(numbers, p, g, moments, w)

        size = parameters.size
        # each element takes a dozen passes: worth sharing among threads from smaller sizes
        passes = len(steps_of(0, 0, 1))
        return [numbers, *self._lanes(size * passes, _blocks(size, 1), steps_of)]

    def _philox_scratch(self) -> np.ndarray:
        """Seven uint64 arrays of PHILOX_CHUNK, shared by every dropout plan (they run one at
        a time), allocated once and counted."""
        if getattr(self, "_philox", None) is None:
            self._philox = np.zeros((7, PHILOX_CHUNK), np.uint64)
            self.memory.allocated(self._philox.nbytes)
        return self._philox

    def dropout_mask(self, mask, rate, seed, layer, counter) -> Plan:
        flat = mask.handle.reshape(-1)  # column by column: entry (i, j) at j·rows + i
        rows, size = mask.rows, mask.size
        scratch = self._philox_scratch()
        block, c0, c1, c2, c3, p0, p1 = scratch
        words = np.zeros((PHILOX_CHUNK, 4), np.uint64)  # the four words of each block, in order
        keep = np.zeros(4 * PHILOX_CHUNK, bool)
        self.memory.allocated(words.nbytes + keep.nbytes)
        ramp = np.arange(PHILOX_CHUNK, dtype=np.uint64)
        limit, factor = np.uint64(threshold(rate)), self._c(keep_scale(rate, self.numpy_dtype))
        low, shift = np.uint64(MASK32), np.uint64(32)
        keys, k0, k1 = [], seed & MASK32, layer & MASK32
        for r in range(ROUNDS):  # the key of each round: bumped by the Weyl constants
            if r:
                k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
            keys.append((np.uint64(k0), np.uint64(k1)))
        span = 4 * PHILOX_CHUNK - 4  # entries per chunk, whatever the first entry's word
        chunks = []
        for start in range(0, size, span):
            count = min(span, size - start)
            blocks = -(-(count + 3) // 4)
            views = [(w.reshape(-1)[offset:offset + count], keep[offset:offset + count])
                     for offset, w in ((o, words[:blocks]) for o in range(4))]
            chunks.append((start, count, blocks, views))
        xor, multiply, right_shift, bitwise_and = (np.bitwise_xor, np.multiply, np.right_shift,
                                                   np.bitwise_and)

        def draw() -> None:
            step, first = int(counter[0]), int(counter[1])
            for start, count, blocks, views in chunks:
                n = first * rows + start  # the stream element of the chunk's first entry
                b, q0, q1, q2, q3, r0, r1 = (a[:blocks] for a in (block, c0, c1, c2, c3, p0, p1))
                np.add(ramp[:blocks], np.uint64(n >> 2), out=b)  # b = n div 4, block by block
                bitwise_and(b, low, out=q0)
                right_shift(b, shift, out=q1)
                q2.fill(step & MASK32)
                q3.fill(step >> 32)
                for key0, key1 in keys:
                    multiply(q0, np.uint64(M0), out=r0)  # (hi₀, lo₀) = M₀·c₀
                    multiply(q2, np.uint64(M1), out=r1)  # (hi₁, lo₁) = M₁·c₂
                    right_shift(r1, shift, out=b)  # c₀' = hi₁ ⊕ c₁ ⊕ k₀
                    xor(b, q1, out=b)
                    xor(b, key0, out=q0)
                    bitwise_and(r1, low, out=q1)  # c₁' = lo₁
                    right_shift(r0, shift, out=b)  # c₂' = hi₀ ⊕ c₃ ⊕ k₁
                    xor(b, q3, out=b)
                    xor(b, key1, out=q2)
                    bitwise_and(r0, low, out=q3)  # c₃' = lo₀
                for word, column in enumerate((q0, q1, q2, q3)):
                    np.copyto(words[:blocks, word], column)
                drawn, kept = views[n & 3]
                np.greater_equal(drawn, limit, out=kept)  # kept when w ≥ ⌊rate·2³²⌋
                np.multiply(kept, factor, out=flat[start:start + count])

        weakref.finalize(draw, self.memory.freed, words.nbytes + keep.nbytes)
        return draw
