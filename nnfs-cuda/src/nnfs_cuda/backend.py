"""The CUDA backend: nnfs's backend contract on one NVIDIA GPU, through a device layer.

Layout. nnfs stores a ``rows × cols`` matrix column by column with leading dimension ``rows``,
which is cuBLAS's own layout, so every matrix goes to cuBLAS as it is:

* ``C ← α·op(A)·op(B) + β·C`` is one ``?gemm`` with ``m, n = C's rows, cols``, ``k`` the inner
  dimension and ``lda, ldb, ldc`` the rows of A, B and C; a range of columns (a mini-batch) is
  a pointer further into the same buffer, with the same leading dimension;
* ``?gemv`` and ``?ger`` take A's own rows and columns, whatever the transpose;
* the vector math (``sub``, ``mul``, ``fill``, the activations fused with the bias, their
  derivatives, the costs) runs as the kernels of ``kernels.cu``, each one pass over its data.

No temporaries. Every operation writes into its output; the only scratch is one array of
``PARTIALS`` doubles for the cost's per-block partial sums, allocated with the factory.

Stream. All work is queued on the device layer's one stream and nothing waits for it, except
where a result reaches the host: ``to_host``, the cost that ``sgd`` returns, ``nrm2``, and
:meth:`synchronize`. So ``sync_every`` is 0 and ten epochs are queued back to back (the
article's point: 10 epochs cost far less than 10 times one).

Memory. Before a network allocates, nnfs checks the bytes it needs against
:meth:`memory_limits`: the device's free memory plus what CuPy's pool holds unused. An
allocation the device refuses anyway becomes :class:`nnfs.OutOfDeviceMemory` with both numbers.
The allocation counter also notices when CuPy's memory pool grows behind the factory's back
(a temporary inside some CuPy call), so "no allocation per epoch" covers CuPy too.

Plans. As in the CPU backend, each operation returns a function of no arguments with its
pointers, dimensions, launch shape and scalars bound in advance; the training loop calls those
every epoch, and the factory's one-off calls make a plan and run it.

Numbers that change every step (an optimizer's learning rate and bias corrections, dropout's
step and first sample) come in a host array that core rewrites before each step; the plan
uploads it into a small device vector of its own (allocated when the plan is made) on the
stream, ahead of the kernel that reads it. The upload copies the host array when it is queued,
so the next step's numbers never reach a kernel queued before them.

Data-parallel training. Where CuPy loads NCCL, the gradient of each step is summed across
the processes of an MPI job on the device, in place on the stream, with no host copy
(``capabilities.collective``, :meth:`allreduce`); otherwise nnfs goes through host
buffers as for every backend.

The device layer is the class attribute :attr:`CudaBackend.device_layer` (``CupyDevice``);
the test suite replaces it with a numpy stand-in to test all of this without a GPU.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

import nnfs
from nnfs import Matrix, Vector, backend_api as api
from nnfs.backend_api import HYPER_SIZE, ActivationKind, MemoryLimits
from nnfs.philox import keep_scale, threshold

from . import kernels
from .device import CupyDevice, DeviceInfo, DeviceLayer, DeviceUnavailable

#: Threads per block of every kernel launch (kernels.cu's THREADS).
THREADS = kernels.constant("THREADS")
#: The most blocks an element kernel is launched with; its grid-stride loop covers the rest.
MAX_BLOCKS = 8192
#: Blocks of the cost reduction, each leaving one partial sum for the host to add.
PARTIALS = 256
#: The largest count or dimension cuBLAS takes (its arguments are C ints).
BLAS_INT_MAX = 2**31 - 1

Plan = Callable[[], Any]


class SlowFloat64Warning(UserWarning):
    """float64 was asked for on a GPU that runs it at a small fraction of its float32 speed."""


def _nothing() -> None:
    return None


def _blocks(count: int, limit: int = MAX_BLOCKS) -> int:
    """Blocks of THREADS threads for ``count`` items: one item per thread, at most ``limit``."""
    return max(1, min(limit, -(-count // THREADS)))


def _blas_int(value: int, what: str) -> int:
    if value > BLAS_INT_MAX:
        raise nnfs.NnfsValueError(
            f"{what} is {value}, but cuBLAS takes at most {BLAS_INT_MAX} per call; "
            "use smaller matrices or vectors")
    return value


def _device_index(device: object) -> int:
    if isinstance(device, bool) or not isinstance(device, (int, np.integer)):
        raise nnfs.NnfsTypeError(
            "cuda: device must be a device index such as 0, "
            f"got {type(device).__name__} {device!r}")
    if device < 0:
        raise nnfs.NnfsValueError(f"cuda: device must be 0 or more, got {device}")
    return int(device)


class CudaBackend(api.Backend):
    """nnfs's backend on one CUDA device: cuBLAS for the products, kernels.cu for the rest,
    one stream for everything. ``device`` is the CUDA device index (``nnfs.backend("cuda",
    device=1)``)."""

    name = "cuda"
    dtypes = ("float32", "float64")

    #: The device layer class: CupyDevice here, a stand-in in the test suite.
    device_layer: ClassVar[type[DeviceLayer]] = CupyDevice

    def __init__(self, dtype: object = "float32", device: object = 0):
        index = _device_index(device)
        super().__init__(dtype)
        info = self._find_device(index)
        try:
            self._device = self.device_layer(info, self.dtype)
        except DeviceUnavailable as reason:
            raise nnfs.BackendUnavailable(
                f"the cuda backend cannot use device {info}: {reason}") from None
        self.device_info = info
        # kernels and cuBLAS calls return before the GPU has run them; one stream in order:
        # wait only where a result is read (sync_every 0)
        self.capabilities = api.Capabilities(
            asynchronous=True, collective="nccl" if self._device.nccl_available() else None)
        self._pool_mark = self._device.pool_held_bytes()
        self.pool_growths = 0  # times CuPy's pool grew outside the factory's own allocations
        if self.dtype == "float64" and not info.fast_float64:
            major, minor = info.compute_capability
            speed = (f"this GPU runs it at 1/{info.float64_ratio} of its float32 speed"
                     if info.float64_ratio else
                     "consumer GPUs run it at 1/32 to 1/64 of their float32 speed")
            warnings.warn(SlowFloat64Warning(
                f"float64 on {info.name} (compute {major}.{minor}) is supported but slow: "
                f"{speed} (data-centre GPUs such as the A100 or H100 at 1/2); use float32 "
                "unless you need float64"), stacklevel=2)
        self._partials = self._new_scratch(PARTIALS)
        self._host_partials = np.zeros(PARTIALS)
        self._nccl: list[tuple[Any, Any]] = []  # (MPI communicator, NCCL communicator)

    def _find_device(self, index: int) -> DeviceInfo:
        """The device numbered ``index``, or an nnfs error saying which devices there are."""
        try:
            devices = self.device_layer.devices()
        except DeviceUnavailable as reason:
            raise nnfs.BackendUnavailable(
                f"the cuda backend cannot be used here: {reason}") from None
        if index >= len(devices):
            listing = "; ".join(str(d) for d in devices)
            raise nnfs.NnfsValueError(
                f"cuda: there is no device {index}: this machine has {len(devices)} CUDA "
                f"device{'s' if len(devices) != 1 else ''} ({listing})")
        return devices[index]

    def _new_scratch(self, size: int) -> Any:
        """Internal float64 device memory of ``size`` elements, counted as an allocation."""
        storage = self.allocate(size, "float64")
        self.memory.allocated(size * 8)
        return storage

    # --- memory -----------------------------------------------------------------------------

    def allocate(self, size: int, dtype: str | None = None) -> Any:
        self._notice_pool_growth()
        try:
            storage = self._device.allocate(size, dtype)
        except MemoryError as error:
            nbytes = size * (np.dtype(dtype).itemsize if dtype else self.itemsize)
            available = self.memory_limits().total_bytes
            raise nnfs.OutOfDeviceMemory(
                f"{self.describe()}: CuPy could not allocate {nbytes} bytes; the device has "
                f"{available} bytes available ({type(error).__name__}: {error})",
                nbytes, available) from None
        self._pool_mark = self._device.pool_held_bytes()
        return storage

    def matrix_view(self, storage: Any, offset: int, rows: int, cols: int) -> Any:
        return self._device.view(storage, offset, rows * cols)  # column by column, ld = rows

    def vector_view(self, storage: Any, offset: int, size: int) -> Any:
        return self._device.view(storage, offset, size)

    def memory_limits(self) -> MemoryLimits:
        free, _ = self._device.memory_info()
        available = free + self._device.pool_free_bytes()
        return MemoryLimits(available, available)

    def _notice_pool_growth(self) -> None:
        """Count an allocation when CuPy's pool has grown since the factory last looked,
        which only happens when something allocated outside the factory's buffers."""
        held = self._device.pool_held_bytes()
        if held > self._pool_mark:
            self.pool_growths += 1
            self.memory.allocated(0)
        self._pool_mark = held

    def audit_memory(self) -> None:
        self._notice_pool_growth()

    def describe(self) -> str:
        return f"cuda {self.dtype} on device {self.device_info}"

    def release(self) -> None:
        """After the factory released every buffer: wait for the stream, and free the
        stream's cuBLAS handle."""
        self._partials = None
        self._nccl.clear()
        self._device.release()

    # --- host transfers: the places where the host waits ------------------------------------

    def read(self, x: Matrix | Vector) -> np.ndarray:
        flat = np.empty(x.size, dtype=self.numpy_dtype)
        self._device.download(x.handle, flat)
        self._device.synchronize()
        if isinstance(x, Matrix):
            return np.ascontiguousarray(flat.reshape(x.cols, x.rows).T)
        return flat

    def write(self, host: np.ndarray, x: Matrix | Vector) -> None:
        # hostᵀ in C order is the matrix column by column; the layer copies it as it stages it
        self._device.upload(host.T if isinstance(x, Matrix) else host, x.handle)

    def write_samples(self, host: np.ndarray, x: Matrix) -> None:
        # one sample per row, C-ordered: the bytes of the column-major matrix, as they are
        self._device.upload(host, x.handle)

    def synchronize(self) -> None:
        self._device.synchronize()

    # --- data-parallel training: the gradient summed on the device by NCCL -----------------

    def allreduce(self, x: Vector, communicator: Any) -> Plan:
        # one NCCL communicator per MPI communicator, joined the first time (a collective)
        joined = next((nccl for comm, nccl in self._nccl if comm == communicator), None)
        if joined is None:
            joined = self._device.nccl_communicator(communicator)
            self._nccl.append((communicator, joined))
        return self._device.allreduce_sum(x.size, x.handle, joined)

    # --- plans ------------------------------------------------------------------------------

    def gemm(self, alpha, a, b, beta, c, trans_a, trans_b) -> Plan:
        # C (m×n) = α·op(A)·op(B) + β·C, each operand column-major with ld = its rows
        k = a.rows if trans_a else a.cols
        return self._device.gemm(trans_a, trans_b, c.rows, c.cols, k, alpha, a.handle, a.rows,
                                 b.handle, b.rows, beta, c.handle, c.rows)

    def gemv(self, alpha, a, x, beta, y, trans) -> Plan:
        # y = α·op(A)·x + β·y; cuBLAS takes A's own m×n whatever the transpose
        return self._device.gemv(trans, a.rows, a.cols, alpha, a.handle, a.rows, x.handle,
                                 beta, y.handle)

    def rank1_update(self, alpha, x, y, a) -> Plan:
        # A = A + α·x·yᵀ
        return self._device.ger(a.rows, a.cols, alpha, x.handle, y.handle, a.handle, a.rows)

    def axpy(self, alpha, x, y) -> Plan:
        return self._device.axpy(_blas_int(x.size, "axpy: size"), alpha, x.handle, y.handle)

    def scal(self, alpha, x) -> Plan:
        return self._device.scal(_blas_int(x.size, "scal: size"), alpha, x.handle)

    def copy(self, x, y) -> Plan:
        if x.buffer is y.buffer and x.offset == y.offset:
            return _nothing  # copying a window onto itself
        return self._device.copy(x.size, x.handle, y.handle)

    def fill(self, x, value) -> Plan:
        return self._device.kernel("fill", _blocks(x.size), THREADS, x.handle, value, x.size)

    def nrm2(self, x) -> Plan:
        return self._device.nrm2(_blas_int(x.size, "nrm2: size"), x.handle)

    def sub(self, x, y, out) -> Plan:
        return self._device.kernel("subtract", _blocks(x.size), THREADS, x.handle, y.handle,
                                   out.handle, x.size)

    def mul(self, x, y, out) -> Plan:
        return self._device.kernel("multiply", _blocks(x.size), THREADS, x.handle, y.handle,
                                   out.handle, x.size)

    def activation(self, kind, z, bias, out) -> Plan:
        # out = f(z + b·1ᵀ); without a bias, z itself stands in the (unread) bias pointer
        b, has_bias = (z.handle, 0) if bias is None else (bias.handle, 1)
        if kind == ActivationKind.SOFTMAX:  # one thread per column (sample)
            return self._device.kernel("bias_softmax", _blocks(z.cols), THREADS, z.handle, b,
                                       has_bias, out.handle, z.rows, z.cols)
        return self._device.kernel("bias_activation", _blocks(z.size), THREADS, z.handle, b,
                                   has_bias, out.handle, kernels.activation_code(kind), z.rows,
                                   z.size)

    def activation_backward(self, kind, a, delta) -> Plan:
        if kind == ActivationKind.LINEAR:  # δ ⊙= 1
            return _nothing
        if kind == ActivationKind.SOFTMAX:  # g ← a ⊙ (g − aᵀg), one thread per column
            return self._device.kernel("softmax_backward", _blocks(a.cols), THREADS, a.handle,
                                       delta.handle, a.rows, a.cols)
        return self._device.kernel("activation_backward", _blocks(a.size), THREADS, a.handle,
                                   delta.handle, kernels.activation_code(kind), a.size)

    def cost_sum(self, kind, y, a) -> Plan:
        # each block leaves one partial sum (in double); the host adds them once they arrive
        blocks = _blocks(a.size, PARTIALS)
        eps = float(np.finfo(self.numpy_dtype).eps)
        partials = self._device.view(self._partials, 0, blocks)
        host = self._host_partials[:blocks]
        launch = self._device.kernel("cost_partials", blocks, THREADS, y.handle, a.handle,
                                     kernels.cost_code(kind), eps, partials, a.size)
        device = self._device

        def total() -> float:
            launch()
            device.download(partials, host)
            device.synchronize()  # the one wait of an sgd call: its cost reaches the host
            return math.fsum(host)

        return total

    # --- training beyond plain SGD ----------------------------------------------------------

    def _numbers(self, host: np.ndarray, dtype: str) -> tuple[Any, Plan]:
        """A device copy of the host array of a step's numbers in ``dtype`` (counted, freed
        with the plan that uses it), and the step that refreshes it on the stream: the numbers
        converted into a host array of the plan's own, then uploaded (the upload copies them
        when it is queued)."""
        storage = self.allocate(host.size, dtype)
        nbytes = host.size * np.dtype(dtype).itemsize
        self.memory.allocated(nbytes)
        view = self._device.view(storage, 0, host.size)
        converted = np.zeros(host.size, dtype)
        device = self._device

        def upload() -> None:
            np.copyto(converted, host, casting="unsafe")
            device.upload(converted, view)

        return view, upload

    def _counted(self, plan: Plan, nbytes: int) -> Plan:
        weakref.finalize(plan, self.memory.freed, nbytes)  # the plan's device numbers
        return plan

    def optimizer_step(self, kind, parameters, gradient, state, decay, hyper) -> Plan:
        numbers, upload = self._numbers(hyper, self.dtype)  # in T: no float64 in the kernel
        moments = [v.handle for v in state] + [parameters.handle] * (2 - len(state))
        d, has_decay = (parameters.handle, 0) if decay is None else (decay.handle, 1)
        launch = self._device.kernel(
            "optimizer_step", _blocks(parameters.size), THREADS, parameters.handle,
            gradient.handle, *moments, d, has_decay, kernels.optimizer_code(kind), numbers,
            parameters.size)

        def run() -> None:
            upload()  # this step's numbers, copied on the stream before the kernel
            launch()

        return self._counted(run, HYPER_SIZE * self.itemsize)

    def dropout_mask(self, mask, rate, seed, layer, counter) -> Plan:
        numbers, upload = self._numbers(counter, "int64")
        blocks = mask.size // 4 + 2  # the blocks of the entries, whatever the first's word
        launch = self._device.kernel(
            "dropout_mask", _blocks(blocks), THREADS, mask.handle, mask.rows, mask.size,
            seed, layer, threshold(rate), keep_scale(rate, self.numpy_dtype), numbers)

        def run() -> None:
            upload()
            launch()

        return self._counted(run, counter.size * 8)
