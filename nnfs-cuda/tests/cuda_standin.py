"""A numpy stand-in for nnfs-cuda's device layer, so that the CUDA factory's logic runs here.

``NumpyStandIn`` is NOT a GPU and NOT CuPy. It implements the device layer protocol of
``nnfs_cuda/device.py`` with numpy on the CPU, so that ``CudaBackend`` — its shape mapping onto
cuBLAS, its views, its memory plan, when it waits, which kernel it launches with which
arguments — can be run by the conformance kit on a machine without a GPU. To catch mistakes
a GPU would punish, the stand-in behaves like the device where that matters:

* **cuBLAS conventions.** gemm, gemv and ger read their arrays as cuBLAS does — column-major
  windows given by a pointer and a leading dimension — and refuse what cuBLAS refuses
  (a leading dimension below the rows, a window running past the end of its array, an
  argument that is not a C int). The products themselves are numpy's.
* **Kernels.** A launch is checked against the parameters of ``kernels.cu`` (the same
  ``nnfs_cuda.kernels.arguments`` the real layer uses), against the block-size limit, and
  against the extent each kernel touches; then a numpy version of what the kernel computes
  runs. Those numpy versions are written from the kernels' comments, not from their CUDA
  code: **whether the CUDA kernels compute the right thing is only checked on a GPU.**
* **A stream.** Work is queued and runs only at ``synchronize()`` (or a blocking ``nrm2``), in
  order, so a host read that forgets to wait sees stale data and fails; the stand-in counts
  synchronisations and the longest queue between two of them.
* **A memory pool.** Allocations come from a pool per device that caches freed blocks (rounded
  up to 512 bytes, as CuPy's) and grows within the device's capacity, raising a
  ``MemoryError`` as CuPy does when it cannot; ``memory_info`` reports the free bytes.
* **Its own memory.** Every array handed to it must be memory it allocated, for its device.

Nothing here measures speed, and nothing here touches a stream, cuBLAS, NVRTC or a driver.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

import nnfs
from nnfs_cuda import kernels
from nnfs_cuda.backend import CudaBackend
from nnfs_cuda.device import DeviceInfo

INT_MAX = 2**31 - 1
POOL_ROUNDING = 512


class StandInError(RuntimeError):
    """What the stand-in raises where the device, cuBLAS or a kernel launch would fail."""


class StandInOutOfMemory(MemoryError):
    """The stand-in device is full: what cupy.cuda.memory.OutOfMemoryError (a MemoryError)
    is to CuPy."""


class StandInPool:
    """A device's memory pool: blocks held from the device, some of them cached free."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.held = 0  # bytes taken from the device
        self.free_blocks: list[int] = []  # sizes of cached blocks nobody uses

    def take(self, nbytes: int) -> int:
        size = -(-max(nbytes, 1) // POOL_ROUNDING) * POOL_ROUNDING
        if size in self.free_blocks:
            self.free_blocks.remove(size)
            return size
        if self.held + size > self.capacity:  # as CuPy: give back the cache, try once more
            self.held -= sum(self.free_blocks)
            self.free_blocks.clear()
        if self.held + size > self.capacity:
            raise StandInOutOfMemory(
                f"Out of memory allocating {size} bytes (allocated so far: {self.held} bytes, "
                f"stand-in capacity {self.capacity} bytes)")
        self.held += size
        return size

    def give_back(self, size: int) -> None:
        self.free_blocks.append(size)

    @property
    def free_bytes(self) -> int:
        return sum(self.free_blocks)


class NumpyStandIn:
    """The numpy stand-in for nnfs-cuda's device layer (see the module docstring).

    Configure it by subclassing through :meth:`configured`: the devices the "driver" lists,
    each device's capacity, and a free-memory figure to report that differs from the truth.
    """

    DEVICES: ClassVar[tuple[DeviceInfo, ...]] = ()
    CAPACITY: ClassVar[int] = 1 << 30
    REPORTED_FREE: ClassVar[int | None] = None
    POOLS: ClassVar[dict[int, StandInPool]] = {}
    NCCL: ClassVar[bool] = False

    @classmethod
    def configured(cls, *, devices: int = 1, capacity: int = 1 << 30,
                   compute_capability: tuple[int, int] = (8, 0),
                   reported_free: int | None = None, nccl: bool = False) -> type[NumpyStandIn]:
        """A stand-in class for ``devices`` stand-in devices of ``capacity`` bytes each; with
        ``nccl``, it has a stand-in NCCL (see :meth:`allreduce_sum`)."""
        infos = tuple(DeviceInfo(i, "NumpyStandIn (numpy on the CPU, not a GPU)", capacity,
                                 compute_capability) for i in range(devices))
        return type("NumpyStandIn", (cls,), {"DEVICES": infos, "CAPACITY": capacity,
                                              "REPORTED_FREE": reported_free, "POOLS": {},
                                              "NCCL": nccl})

    @classmethod
    def devices(cls) -> list[DeviceInfo]:
        return list(cls.DEVICES)

    def __init__(self, info: DeviceInfo, dtype: str):
        self.info = info
        self.dtype = dtype
        self.numpy_dtype = np.dtype(dtype)
        self.pool = self.POOLS.setdefault(info.index, StandInPool(self.CAPACITY))
        self.queue: list[Callable[[], None]] = []
        self.synchronizations = 0
        self.blocking_calls = 0
        self.longest_queue = 0
        self.log: list[tuple[str, dict]] = []  # every prepared call, for the mapping tests
        self.allocations = 0
        self.released = False
        self._roots: dict[int, weakref.ref] = {}
        self.nccl_calls = 0

    # --- memory -----------------------------------------------------------------------------

    def allocate(self, size: int, dtype: str | None = None) -> np.ndarray:
        self._live()
        array = np.zeros(size, dtype=dtype or self.dtype)
        block = self.pool.take(array.nbytes)
        weakref.finalize(array, self.pool.give_back, block)
        self._roots[id(array)] = weakref.ref(array)
        self.allocations += 1
        return array

    def view(self, storage: np.ndarray, offset: int, size: int) -> np.ndarray:
        self._own(storage, "view: storage")
        if offset < 0 or offset + size > storage.size:
            raise StandInError(f"view of {size} from {offset} runs past {storage.size} elements")
        return storage[offset:offset + size]

    def memory_info(self) -> tuple[int, int]:
        free = self.pool.capacity - self.pool.held
        if self.REPORTED_FREE is not None:
            free = self.REPORTED_FREE
        return free, self.pool.capacity

    def pool_held_bytes(self) -> int:
        return self.pool.held

    def pool_free_bytes(self) -> int:
        return self.pool.free_bytes

    # --- the stream ---------------------------------------------------------------------------

    def _queued(self, operation: str, work: Callable[[], None], **arguments) -> Callable[[], None]:
        self.log.append((operation, arguments))

        def enqueue() -> None:
            self._live()
            self.queue.append(work)
            self.longest_queue = max(self.longest_queue, len(self.queue))

        return enqueue

    def _drain(self) -> None:
        work, self.queue = self.queue, []
        for item in work:
            item()

    def synchronize(self) -> None:
        self._live()
        self.synchronizations += 1
        self._drain()

    def upload(self, host: np.ndarray, view: np.ndarray) -> None:
        self._own(view, "upload: destination")
        if host.size != view.size or host.dtype != view.dtype:
            raise StandInError(f"upload of {host.shape} {host.dtype} into {view.size} {view.dtype}")
        snapshot = host.flatten()  # C order; the host array may be reused once upload returns
        self._queued("upload", functools.partial(np.copyto, view, snapshot))()

    def download(self, view: np.ndarray, host: np.ndarray) -> None:
        self._own(view, "download: source")
        if host.shape != (view.size,) or host.dtype != view.dtype:
            raise StandInError(
                f"download of {view.size} {view.dtype} into {host.shape} {host.dtype}")
        self._queued("download", functools.partial(np.copyto, host, view))()

    # --- cuBLAS -------------------------------------------------------------------------------

    def _scalar(self, value: float) -> np.generic:
        return self.numpy_dtype.type(value)  # cuBLAS reads alpha and beta in the routine's type

    def gemm(self, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        _ints("gemm", m=m, n=n, k=k, lda=lda, ldb=ldb, ldc=ldc)
        A = self._matrix(a, (k, m) if trans_a else (m, k), lda, "gemm: A")
        B = self._matrix(b, (n, k) if trans_b else (k, n), ldb, "gemm: B")
        C = self._matrix(c, (m, n), ldc, "gemm: C")
        alpha, beta = self._scalar(alpha), self._scalar(beta)

        def run() -> None:
            product = alpha * ((A.T if trans_a else A) @ (B.T if trans_b else B))
            C[...] = product if beta == 0 else product + beta * C  # beta 0: C is not read

        return self._queued("gemm", run, trans_a=trans_a, trans_b=trans_b, m=m, n=n, k=k,
                            a=a, lda=lda, b=b, ldb=ldb, c=c, ldc=ldc)

    def gemv(self, trans, m, n, alpha, a, lda, x, beta, y):
        _ints("gemv", m=m, n=n, lda=lda)
        A = self._matrix(a, (m, n), lda, "gemv: A")
        xs = self._vector(x, n if not trans else m, "gemv: x")
        ys = self._vector(y, m if not trans else n, "gemv: y")
        alpha, beta = self._scalar(alpha), self._scalar(beta)

        def run() -> None:
            product = alpha * ((A.T if trans else A) @ xs)
            ys[...] = product if beta == 0 else product + beta * ys

        return self._queued("gemv", run, trans=trans, m=m, n=n, lda=lda)

    def ger(self, m, n, alpha, x, y, a, lda):
        _ints("ger", m=m, n=n, lda=lda)
        A = self._matrix(a, (m, n), lda, "ger: A")
        xs, ys = self._vector(x, m, "ger: x"), self._vector(y, n, "ger: y")
        alpha = self._scalar(alpha)
        return self._queued("ger", lambda: np.add(A, alpha * np.outer(xs, ys), out=A),
                            m=m, n=n, lda=lda)

    def axpy(self, n, alpha, x, y):
        _ints("axpy", n=n)
        xs, ys = self._vector(x, n, "axpy: x"), self._vector(y, n, "axpy: y")
        alpha = self._scalar(alpha)
        return self._queued("axpy", lambda: np.add(ys, alpha * xs, out=ys), n=n)

    def scal(self, n, alpha, x):
        _ints("scal", n=n)
        xs, alpha = self._vector(x, n, "scal: x"), self._scalar(alpha)
        return self._queued("scal", lambda: np.multiply(xs, alpha, out=xs), n=n)

    def nrm2(self, n, x):
        _ints("nrm2", n=n)
        xs = self._vector(x, n, "nrm2: x")
        self.log.append(("nrm2", {"n": n}))

        def norm() -> float:  # cuBLAS in host pointer mode: returns once the stream got there
            self._live()
            self.blocking_calls += 1
            self._drain()
            wide = xs.astype(np.float64)
            largest = float(np.max(np.abs(wide)))  # scaled as cuBLAS's: no square overflows
            if largest == 0.0 or not np.isfinite(largest):
                return largest
            wide /= largest
            return float(self._scalar(largest * np.sqrt(np.dot(wide, wide))))

        return norm

    def copy(self, n, x, y):
        xs, ys = self._vector(x, n, "copy: x"), self._vector(y, n, "copy: y")
        return self._queued("copy", functools.partial(np.copyto, ys, xs), n=n)

    # --- kernels.cu ---------------------------------------------------------------------------

    def kernel(self, name, grid, block, *args):
        if not 1 <= block <= 1024:
            raise StandInError(f"{name}: {block} threads per block; CUDA allows 1 to 1024")
        if not 1 <= grid <= INT_MAX:
            raise StandInError(f"{name}: a grid of {grid} blocks")
        values = kernels.arguments(name, args, self.dtype)
        parameters = dict(zip((p for _, p in kernels.signatures()[name]), values, strict=True))
        for (kind, pname), value in zip(kernels.signatures()[name], values, strict=True):
            if kind.endswith("*"):
                self._own(value, f"{name}: {pname}")
        extents = _EXTENTS[name](grid=grid, block=block, **parameters)
        for pname, needed in extents.items():
            if parameters[pname].size < needed:
                raise StandInError(f"{name}: reads or writes {needed} elements of {pname}, "
                                   f"which has {parameters[pname].size}")
        work = functools.partial(KERNEL_MATH[name], grid, block, **parameters)
        return self._queued(name, work, grid=grid, block=block, **parameters)

    # --- NCCL ---------------------------------------------------------------------------------

    def nccl_available(self) -> bool:
        return self.NCCL

    def nccl_communicator(self, communicator):
        """As NCCL: rank 0 makes a unique id, MPI broadcasts it, every rank joins with it. The
        stand-in's "NCCL communicator" is a duplicate of the MPI communicator (its own
        context, as NCCL's traffic is apart from MPI's)."""
        if not self.NCCL:
            raise StandInError("nccl_communicator: this stand-in has no NCCL")
        made = np.random.default_rng().bytes(128) if communicator.Get_rank() == 0 else None
        unique = communicator.bcast(made, root=0)
        if not isinstance(unique, bytes) or len(unique) != 128:
            raise StandInError("nccl_communicator: every rank must join with rank 0's unique id")
        return communicator.Dup()

    def allreduce_sum(self, n, x, nccl):
        """ncclAllReduce in place. A real one is queued on the stream and the host goes on; a
        collective that waited in this stand-in's queue would block the host of one rank inside
        ``synchronize`` while another waits in MPI, so the stand-in finishes the queue and sums
        at the point the factory queues the sum: the same order, the same result."""
        from mpi4py import MPI

        array = self._vector(x, n, "allreduce_sum: x")
        if not isinstance(nccl, MPI.Comm):
            raise StandInError("allreduce_sum: nccl must come from nccl_communicator")
        self.log.append(("allreduce_sum", {"n": n}))

        def run() -> None:
            self._live()
            self._drain()
            nccl.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
            self.nccl_calls += 1

        return run

    # --- checks -------------------------------------------------------------------------------

    def release(self) -> None:
        if not self.released:
            self._drain()
            self.released = True

    def _live(self) -> None:
        if self.released:
            raise StandInError("the stand-in device layer was released")

    def _own(self, array: Any, what: str) -> None:
        if not isinstance(array, np.ndarray):
            raise StandInError(
                f"{what}: expected stand-in device memory, got {type(array).__name__}")
        root = array
        while isinstance(root.base, np.ndarray):
            root = root.base
        ref = self._roots.get(id(root))
        if ref is None or ref() is not root:
            raise StandInError(f"{what}: not memory of stand-in device {self.info.index} "
                               f"({self.dtype})")

    def _vector(self, array: np.ndarray, n: int, what: str) -> np.ndarray:
        self._own(array, what)
        if array.size < n:
            raise StandInError(f"{what}: needs {n} elements, the array has {array.size}")
        return array[:n]

    def _matrix(self, array: np.ndarray, shape: tuple[int, int], ld: int, what: str) -> np.ndarray:
        self._own(array, what)
        return column_major(array, shape, ld, what)


def column_major(array: np.ndarray, shape: tuple[int, int], ld: int, what: str) -> np.ndarray:
    """``array`` read as cuBLAS reads a column-major rows × cols operand of leading dimension
    ld: element (i, j) at i + j·ld. Refuses what cuBLAS refuses."""
    rows, cols = shape
    if ld < max(1, rows):
        raise StandInError(f"{what}: leading dimension {ld} is below max(1, rows = {rows}) "
                           "(CUBLAS_STATUS_INVALID_VALUE)")
    needed = ld * (cols - 1) + rows if cols else 0
    if array.size < needed:
        raise StandInError(f"{what}: a {rows}×{cols} operand with ld {ld} spans {needed} "
                           f"elements, the array has {array.size}")
    item = array.itemsize
    return np.lib.stride_tricks.as_strided(array, shape=(rows, cols), strides=(item, ld * item))


def _ints(routine: str, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT_MAX:
            raise StandInError(f"{routine}: {name} must be a C int ≥ 0, got {value!r}")


# --- what each kernel of kernels.cu computes, in numpy, written from the kernels' comments ---

def _activate(kind: int, s: np.ndarray) -> np.ndarray:
    codes = kernels.enum("Activation")
    if kind == codes["SIGMOID"]:
        return 0.5 * np.tanh(0.5 * s) + 0.5
    if kind == codes["TANH"]:
        return np.tanh(s)
    if kind == codes["RELU"]:
        return np.maximum(s, 0)
    if kind == codes["LINEAR"]:
        return s
    raise StandInError(f"unknown activation code {kind}")


def _kernel_bias_activation(grid, block, *, z, bias, has_bias, out, kind, rows, n):
    s = z[:n].copy()
    if has_bias:
        s += bias[np.arange(n) % rows]
    out[:n] = _activate(int(kind), s)


def _kernel_bias_softmax(grid, block, *, z, bias, has_bias, out, rows, cols):
    s = z[:rows * cols].reshape(cols, rows).copy()  # one row per column of the matrix
    if has_bias:
        s += bias[:rows]
    e = np.exp(s - s.max(axis=1, keepdims=True))
    out[:rows * cols] = (e / e.sum(axis=1, keepdims=True)).ravel()


def _kernel_activation_backward(grid, block, *, a, delta, kind, n):
    codes = kernels.enum("Activation")
    av = a[:n]
    if kind == codes["SIGMOID"]:
        delta[:n] *= av * (1 - av)
    elif kind == codes["TANH"]:
        delta[:n] *= 1 - av * av
    elif kind == codes["RELU"]:
        delta[:n] *= av > 0
    elif kind != codes["LINEAR"]:
        raise StandInError(f"unknown activation code {kind}")


def _kernel_softmax_backward(grid, block, *, a, delta, rows, cols):
    av = a[:rows * cols].reshape(cols, rows)
    g = delta[:rows * cols].reshape(cols, rows)
    g[...] = av * (g - (av * g).sum(axis=1, keepdims=True))


def _kernel_subtract(grid, block, *, x, y, out, n):
    np.subtract(x[:n], y[:n], out=out[:n])


def _kernel_multiply(grid, block, *, x, y, out, n):
    np.multiply(x[:n], y[:n], out=out[:n])


def _kernel_fill(grid, block, *, x, value, n):
    x[:n] = value


def _kernel_cost_partials(grid, block, *, y, a, kind, eps, partials, n):
    if block != kernels.constant("THREADS"):
        raise StandInError(f"cost_partials needs blocks of {kernels.constant('THREADS')} "
                           f"threads (its shared cache), got {block}")
    codes = kernels.enum("Cost")
    yv, av = y[:n].astype(np.float64), a[:n].astype(np.float64)
    if kind == codes["QUADRATIC"]:
        terms = (av - yv) ** 2
    else:
        c = np.clip(av, eps, 1.0 - eps)
        terms = -yv * np.log(c)
        if kind == codes["BINARY_CROSS_ENTROPY"]:
            terms -= (1.0 - yv) * np.log(1.0 - c)
    # element i is taken by thread i mod (grid·block) of the grid-stride loop, so by block
    # (i // block) mod grid
    owner = (np.arange(n) // block) % grid
    partials[:grid] = np.bincount(owner, weights=terms, minlength=grid)


def _kernel_optimizer_step(grid, block, *, p, g, s0, s1, decay, has_decay, kind, hyper, n):
    from nnfs.kinds import Hyper

    codes = kernels.enum("Optimizer")
    T = p.dtype.type  # the numbers arrive in T
    eta, lam, mu = hyper[Hyper.ETA], hyper[Hyper.WEIGHT_DECAY], hyper[Hyper.MOMENTUM]
    beta1, beta2, eps = hyper[Hyper.BETA1], hyper[Hyper.BETA2], hyper[Hyper.EPS]
    alpha, root = hyper[Hyper.STEP_SIZE], hyper[Hyper.ROOT_CORRECTION]
    pe, ge = p[:n].copy(), g[:n].copy()
    d = decay[:n] if has_decay else np.zeros(n, p.dtype)
    if kind == codes["ADAMW"]:
        pe -= eta * lam * d * pe  # p ← p − η·λ·d⊙p
    else:
        ge += lam * d * pe  # g' = g + λ·d⊙p
    if kind == codes["SGD"]:
        pe -= eta * ge
    elif kind in (codes["MOMENTUM"], codes["NESTEROV"]):
        u = mu * s0[:n] + ge  # u ← μ·u + g'
        s0[:n] = u
        pe -= eta * (ge + mu * u if kind == codes["NESTEROV"] else u)
    elif kind in (codes["ADAM"], codes["ADAMW"]):
        m = beta1 * s0[:n] + (T(1) - beta1) * ge  # m ← β₁·m + (1 − β₁)·g'
        v = beta2 * s1[:n] + (T(1) - beta2) * ge * ge  # v ← β₂·v + (1 − β₂)·g'²
        s0[:n], s1[:n] = m, v
        pe -= alpha * m / (np.sqrt(v) / root + eps)
    else:
        raise StandInError(f"unknown optimizer code {kind}")
    p[:n] = pe


def _kernel_dropout_mask(grid, block, *, mask, rows, n, key0, key1, threshold, scale, counter):
    from nnfs.philox import philox4x32

    # entry e: element k = first·rows + e; word k mod 4 of Philox at block k / 4
    k = np.uint64(int(counter[1]) * int(rows)) + np.arange(n, dtype=np.uint64)
    b, step = k >> np.uint64(2), int(counter[0])
    words = philox4x32(b & np.uint64(0xFFFFFFFF), b >> np.uint64(32),
                       np.full_like(b, step & 0xFFFFFFFF), np.full_like(b, step >> 32),
                       int(key0), int(key1))
    word = np.choose((k & np.uint64(3)).astype(np.int64), words)
    mask[:n] = np.where(word >= np.uint64(threshold), scale, 0)


#: The numpy version of each kernel, called as (grid, block, **parameters).
KERNEL_MATH: dict[str, Callable[..., None]] = {
    "bias_activation": _kernel_bias_activation,
    "bias_softmax": _kernel_bias_softmax,
    "activation_backward": _kernel_activation_backward,
    "softmax_backward": _kernel_softmax_backward,
    "subtract": _kernel_subtract,
    "multiply": _kernel_multiply,
    "fill": _kernel_fill,
    "cost_partials": _kernel_cost_partials,
    "optimizer_step": _kernel_optimizer_step,
    "dropout_mask": _kernel_dropout_mask,
}


#: The elements of each pointer argument that a kernel touches, read from kernels.cu.
_EXTENTS: dict[str, Callable[..., dict[str, int]]] = {
    "bias_activation": lambda *, n, rows, has_bias, **_: {
        "z": n, "out": n, "bias": rows if has_bias else 0},
    "bias_softmax": lambda *, rows, cols, has_bias, **_: {
        "z": rows * cols, "out": rows * cols, "bias": rows if has_bias else 0},
    "activation_backward": lambda *, n, **_: {"a": n, "delta": n},
    "softmax_backward": lambda *, rows, cols, **_: {"a": rows * cols, "delta": rows * cols},
    "subtract": lambda *, n, **_: {"x": n, "y": n, "out": n},
    "multiply": lambda *, n, **_: {"x": n, "y": n, "out": n},
    "fill": lambda *, n, **_: {"x": n},
    "cost_partials": lambda *, n, grid, **_: {"y": n, "a": n, "partials": grid},
    "optimizer_step": lambda *, n, has_decay, kind, **_: {
        "p": n, "g": n, "decay": n if has_decay else 0, "hyper": 8,
        "s0": n if kind != kernels.enum("Optimizer")["SGD"] else 0,
        "s1": n if kind >= kernels.enum("Optimizer")["ADAM"] else 0},
    "dropout_mask": lambda *, n, **_: {"mask": n, "counter": 2},
}


def standin_backend_class(**configuration) -> type[CudaBackend]:
    """A CudaBackend subclass whose device layer is a NumpyStandIn configured as given
    (see :meth:`NumpyStandIn.configured`). Its instances say "NumpyStandIn" in their repr."""
    layer = NumpyStandIn.configured(**configuration)
    return type("StandInCudaBackend", (CudaBackend,), {"device_layer": layer})


def standin_factory_class(**configuration) -> Callable[..., nnfs.Factory]:
    """A function making factories over :func:`standin_backend_class`'s backend."""
    backend_class = standin_backend_class(**configuration)

    def make(*args: Any, **options: Any) -> nnfs.Factory:
        return nnfs.Factory(backend_class(*args, **options))

    make.backend_class = backend_class
    return make


#: Factories of the CUDA backend on one stand-in device of 1 GiB, for the conformance kit.
StandInCudaFactory = standin_factory_class()
