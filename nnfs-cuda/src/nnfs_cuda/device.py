"""The device layer: every call nnfs-cuda makes into CuPy, and nothing else.

The factory (``factory.py``) decides *what* runs: which cuBLAS routine with which dimensions,
leading dimensions and transposes, which kernel of ``kernels.cu`` over which range, how much
memory to ask for, and when to wait. It says so to a device layer, which only does it. The one
real layer is :class:`CupyDevice`; :class:`DeviceLayer` below is the protocol any layer follows.

The test suite runs the factory over a numpy *stand-in* for this layer
(``nnfs-cuda/tests/cuda_standin.py``, class ``NumpyStandIn``), which is how the factory's logic is
tested on machines without a GPU, and runs this module itself over a recording fake of CuPy
(``nnfs-cuda/tests/cuda_recorder.py``), which checks on which stream every call goes and when host
memory is read. What only a GPU shows — the cuBLAS calls and the kernels computing the right
numbers, NVRTC loading ``kernels.cu`` on the device, real streams, pinned memory and CuPy's pool —
is verified by ``python -m nnfs_cuda`` (see the README).

Importing this module does not import CuPy; :func:`find_devices` and :class:`CupyDevice` do.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol

import numpy as np

import nnfs

from . import kernels

#: Compute capabilities whose float64 runs at half the float32 rate (data-centre GPUs: P100,
#: V100, A100, H100, B100/B200). Others run float64 at 1/32 to 1/64 of their float32 rate.
#: Used when the driver does not report the ratio itself.
FAST_FLOAT64 = frozenset({(6, 0), (7, 0), (8, 0), (9, 0), (10, 0)})

#: The pip commands that bring CuPy and the CUDA libraries nnfs-cuda loads, without a CUDA
#: toolkit: one extra of nnfs-cuda per CUDA major version (see its pyproject.toml).
CUDA_PIP = ("pip install 'nnfs-cuda[cuda12]' (NVIDIA driver 525 or newer) or "
            "pip install 'nnfs-cuda[cuda13]' (driver 580 or newer, a Turing or newer GPU)")


class DeviceUnavailable(Exception):
    """No usable device: no CuPy, no driver, no GPU, or a missing CUDA library. The message is
    the reason, in words a user can act on; the factory raises it as nnfs.BackendUnavailable."""


@dataclass(frozen=True)
class DeviceInfo:
    """One CUDA device as the driver describes it."""

    index: int
    name: str
    total_bytes: int
    compute_capability: tuple[int, int]
    #: float32 speed / float64 speed as the driver reports it (2 on an A100, 32 on a
    #: GTX 1080 Ti), or None when it does not say.
    float64_ratio: int | None = None

    @property
    def fast_float64(self) -> bool:
        if self.float64_ratio:
            return self.float64_ratio <= 3
        return self.compute_capability in FAST_FLOAT64

    def __str__(self) -> str:
        major, minor = self.compute_capability
        return (f"{self.index}: {self.name} ({self.total_bytes / 2**30:.1f} GiB, "
                f"compute {major}.{minor})")


class DeviceLayer(Protocol):
    """What the factory asks of a device. One layer is one device, one dtype, one stream.

    Arrays are one-dimensional device arrays; a matrix is a column-major window of one, with a
    leading dimension. Operations are *prepared*: each method returns a function of no
    arguments that queues the work on the layer's stream when called (the training loop calls
    it every epoch). Nothing waits for the device except :meth:`synchronize` and ``nrm2``.
    """

    info: DeviceInfo
    dtype: str

    def __init__(self, info: DeviceInfo, dtype: str) -> None:
        """The layer of the device ``info`` for ``dtype``."""

    @staticmethod
    def devices() -> list[DeviceInfo]:
        """The devices of this machine; raises DeviceUnavailable with the reason if none."""

    # memory
    def allocate(self, size: int, dtype: str | None = None) -> Any:
        """``size`` zeros of ``dtype`` (default: the layer's). Raises MemoryError when the
        device refuses."""

    def view(self, storage: Any, offset: int, size: int) -> Any:
        """The ``size`` elements of ``storage`` from ``offset`` on, as an array (no copy)."""

    def memory_info(self) -> tuple[int, int]:
        """(free, total) bytes of the device, as the driver reports them."""

    def pool_held_bytes(self) -> int:
        """Bytes the memory pool holds from the device; grows when the pool allocates."""

    def pool_free_bytes(self) -> int:
        """Bytes the pool holds but no array uses: allocatable without asking the device."""

    # transfers, queued on the stream
    def upload(self, host: np.ndarray, view: Any) -> None:
        """Queue a copy of ``host`` into ``view``: ``host`` has the view's size and dtype, and
        its elements in C order are the view's (a 1-D array, or a transposed or sample-per-row
        2-D one, so that no contiguous copy is needed). ``host`` may be reused or freed as soon
        as this returns."""

    def download(self, view: Any, host: np.ndarray) -> None:
        """Queue a copy of ``view`` into ``host``; read ``host`` only after synchronize()."""

    def synchronize(self) -> None:
        """Wait until everything queued on the stream has run. A device error (a kernel's
        fault reported now) is raised as nnfs.DeviceError naming the operation and device."""

    # cuBLAS, column-major, scalars by value
    def gemm(self, trans_a: bool, trans_b: bool, m: int, n: int, k: int, alpha: float, a: Any,
             lda: int, b: Any, ldb: int, beta: float, c: Any, ldc: int) -> Callable[[], None]:
        """C (m×n, ldc) ← alpha·op(A)·op(B) + beta·C, as cuBLAS ``?gemm``."""

    def gemv(self, trans: bool, m: int, n: int, alpha: float, a: Any, lda: int, x: Any,
             beta: float, y: Any) -> Callable[[], None]:
        """y ← alpha·op(A)·x + beta·y for A m×n (lda), as cuBLAS ``?gemv``."""

    def ger(self, m: int, n: int, alpha: float, x: Any, y: Any, a: Any,
            lda: int) -> Callable[[], None]:
        """A (m×n, lda) ← A + alpha·x·yᵀ, as cuBLAS ``?ger``."""

    def axpy(self, n: int, alpha: float, x: Any, y: Any) -> Callable[[], None]:
        """y ← alpha·x + y over n elements, as cuBLAS ``?axpy``."""

    def scal(self, n: int, alpha: float, x: Any) -> Callable[[], None]:
        """x ← alpha·x over n elements, as cuBLAS ``?scal``."""

    def nrm2(self, n: int, x: Any) -> Callable[[], float]:
        """‖x‖ over n elements, as cuBLAS ``?nrm2``; waits for the result."""

    def copy(self, n: int, x: Any, y: Any) -> Callable[[], None]:
        """y ← x over n elements (a device-to-device copy on the stream)."""

    # kernels.cu
    def kernel(self, name: str, grid: int, block: int, *args: Any) -> Callable[[], None]:
        """Launch kernel ``name`` of kernels.cu on ``grid`` blocks of ``block`` threads."""

    # NCCL, for data-parallel training (nnfs.mpi)
    def nccl_available(self) -> bool:
        """Whether this layer can sum across processes on the device (CuPy loads NCCL)."""

    def nccl_communicator(self, communicator: Any) -> Any:
        """An NCCL communicator joining this device with one device in each process of
        ``communicator`` (mpi4py): rank 0 makes NCCL's unique id, MPI broadcasts it, every
        process joins with its own rank. Collective: every process calls it at once."""

    def allreduce_sum(self, n: int, x: Any, nccl: Any) -> Callable[[], None]:
        """x ← the sum of x over the processes of ``nccl`` (``ncclAllReduce`` in place, n
        elements of the layer's dtype), queued on the stream like every other operation."""

    def release(self) -> None:
        """Wait for the stream, then free the layer's handles. Idempotent."""


# --- finding devices ----------------------------------------------------------------------------

def _cupy_distributions() -> list[str]:
    """The installed distributions that provide the package ``cupy`` (there must be one)."""
    names = set()
    for distribution in metadata.distributions():
        name = (distribution.metadata["Name"] or "").lower()
        if name == "cupy" or name.startswith(("cupy-cuda", "cupy-rocm")):
            names.add(name)
    return sorted(names)


def _cuda_version(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"


#: The NVIDIA driver's library, by platform: what CuPy's runtime loads first.
DRIVER_LIBRARIES = {"win32": "nvcuda.dll", "darwin": None}


def _cupy_imported() -> bool:
    return any(name == "cupy" or name.startswith("cupy.") for name in sys.modules)


def _driver_library_loads() -> bool:
    """Whether the NVIDIA driver's library can be loaded here (a dlopen, no CUDA context)."""
    library = DRIVER_LIBRARIES.get(sys.platform, "libcuda.so.1")
    if library is None:
        return False
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def find_devices() -> list[DeviceInfo]:
    """The CUDA devices of this machine, or DeviceUnavailable saying why there are none.

    Cheap (no CUDA context is created) and never raises anything else: ``nnfs backends``, the
    plugin's probe and the choice of the default backend call it on machines without a GPU.
    Where there is no NVIDIA driver, it says so without importing CuPy (whose import takes a
    second or two): the driver's library is looked for first.
    """
    if not _cupy_imported() and not _driver_library_loads():
        if importlib.util.find_spec("cupy") is None:
            raise DeviceUnavailable("CuPy is not installed; install it with: "
                                    "pip install cupy-cuda12x")
        raise DeviceUnavailable(
            "no NVIDIA driver: the CUDA driver library (libcuda.so.1) is not installed, so "
            "there is no GPU to use; install the NVIDIA driver on a machine with an NVIDIA GPU")
    try:
        from cupy.cuda import runtime
    except Exception as error:  # ImportError, or a broken CuPy installation
        if isinstance(error, ImportError) and error.name in ("cupy", "cupy.cuda") \
                and not _cupy_distributions():
            raise DeviceUnavailable(
                f"CuPy is not installed; install it with the extra of your CUDA version: "
                f"{CUDA_PIP}") from None
        raise DeviceUnavailable(
            f"CuPy cannot be imported ({type(error).__name__}: {error}); install it with "
            f"the extra of your CUDA version: {CUDA_PIP}") from None
    wheels = _cupy_distributions()
    if len(wheels) > 1:
        raise DeviceUnavailable(
            f"several CuPy distributions are installed ({', '.join(wheels)}) and overwrite each "
            f"other's files; uninstall all of them, then install one: {CUDA_PIP}")
    try:
        driver = runtime.driverGetVersion()
    except Exception as error:
        raise DeviceUnavailable(f"the CUDA runtime failed to start: {error}") from None
    if driver == 0:
        raise DeviceUnavailable(
            "no NVIDIA driver: the CUDA driver library (libcuda.so.1) is not installed, so "
            "there is no GPU to use; install the NVIDIA driver on a machine with an NVIDIA GPU")
    try:
        count = runtime.getDeviceCount()
    except runtime.CUDARuntimeError as error:
        built = _cuda_version(runtime.runtimeGetVersion())
        raise DeviceUnavailable(
            f"the NVIDIA driver (for CUDA up to {_cuda_version(driver)}) reports {error}; "
            f"CuPy here is built for CUDA {built}") from None
    if count == 0:
        raise DeviceUnavailable(
            f"the NVIDIA driver (CUDA {_cuda_version(driver)}) found no CUDA device")
    devices = []
    for index in range(count):
        properties = runtime.getDeviceProperties(index)
        name = properties["name"]
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        try:
            ratio = int(runtime.deviceGetAttribute(
                runtime.cudaDevAttrSingleToDoublePrecisionPerfRatio, index))
        except Exception:  # an attribute this driver does not report
            ratio = None
        devices.append(DeviceInfo(index, name, int(properties["totalGlobalMem"]),
                                  (int(properties["major"]), int(properties["minor"])), ratio))
    return devices


# --- the layer on CuPy --------------------------------------------------------------------------

#: Bytes of pinned host memory each layer stages its uploads through, allocated with the layer.
STAGING_BYTES = 8 << 20
#: Alignment of each upload inside the staging memory.
STAGING_ALIGNMENT = 256

#: Status codes that mean "out of memory": cudaErrorMemoryAllocation (runtime) and
#: CUDA_ERROR_OUT_OF_MEMORY (driver) are both 2, CUBLAS_STATUS_ALLOC_FAILED is 3.
_RUNTIME_OUT_OF_MEMORY = 2
_CUBLAS_ALLOC_FAILED = 3


class _Staging:
    """Pinned host memory that every upload passes through, in two halves: the host fills one
    while the device copies out of the other.

    ``copy_from_host_async`` reads its source when the stream gets to the copy, not when it is
    queued, and it is only asynchronous from pinned memory (from pageable memory, whether the
    driver stages the data before returning is up to the driver). So the host data is first
    copied here, and the device copies from here. After the last copy out of a half is queued,
    an event is recorded behind it; the host writes that half again only once the event has
    passed. ``reset`` says that the stream has been waited for, so nothing out of either half
    is pending. Allocated once, with the layer: an upload allocates nothing.
    """

    def __init__(self, cupy: Any, nbytes: int):
        self.half = nbytes // 2
        memory = cupy.cuda.alloc_pinned_memory(2 * self.half)
        self._memory = np.ndarray((2, self.half), np.uint8, buffer=memory)
        self._events = [cupy.cuda.Event(disable_timing=True) for _ in range(2)]
        self._pending = [False, False]  # an event recorded after copies out of the half
        self._current = 0
        self._used = 0

    def reset(self) -> None:
        self._pending = [False, False]
        self._used = 0

    def _room(self, nbytes: int, stream: Any) -> np.ndarray:
        """``nbytes`` of staging memory the host may write now (nbytes ≤ half)."""
        start = -(-self._used // STAGING_ALIGNMENT) * STAGING_ALIGNMENT
        if start + nbytes > self.half:
            self._events[self._current].record(stream)
            self._pending[self._current] = True
            self._current ^= 1
            if self._pending[self._current]:
                self._events[self._current].synchronize()  # its copies have run
                self._pending[self._current] = False
            start = 0
        self._used = start + nbytes
        return self._memory[self._current, start:start + nbytes]

    def upload(self, host: np.ndarray, view: Any, stream: Any) -> None:
        """Queue copies of ``host`` (its elements in C order, converted to ``view``'s dtype)
        into the device array ``view``, piece by piece along ``host``'s first axis, each piece
        through the staging memory."""
        if host.size == 0:
            return
        if host.ndim == 0:
            host = host.reshape(1)
        dtype = np.dtype(view.dtype)
        row = dtype.itemsize * (host.size // host.shape[0])
        if row > self.half:  # rows longer than the staging memory: go element by element
            host, row = np.ascontiguousarray(host).reshape(-1), dtype.itemsize
        rows = self.half // row
        offset = 0
        for first in range(0, host.shape[0], rows):
            piece = host[first:first + rows]
            nbytes = piece.size * dtype.itemsize
            room = self._room(nbytes, stream)
            np.copyto(room.view(dtype).reshape(piece.shape), piece)
            (view.data + offset).copy_from_host_async(room.ctypes.data, nbytes, stream)
            offset += nbytes


class CupyDevice:
    """The device layer on CuPy: one device, one dtype, one non-blocking stream, one cuBLAS
    handle (host pointer mode), kernels.cu compiled once by NVRTC, and pinned host memory that
    uploads are staged through.

    **Every call runs with this device current and this layer's stream current**, and passes
    the stream wherever CuPy takes one. CuPy's cuBLAS wrappers bind the handle to the *current*
    stream of the current device on every call (``_setStream`` in
    ``cupy_backends/cuda/libs/cublas.pyx``), whatever stream the handle was given before; the
    memory pool keeps one arena per current stream; ``cupy.zeros`` clears memory on the current
    stream. So a call outside ``with stream`` would go to the legacy default stream, unordered
    against this layer's non-blocking stream.

    Errors: a failure the device reports — a kernel's fault surfacing at the next call that
    waits or launches, a cuBLAS or NCCL failure, a copy that fails — becomes
    :class:`nnfs.DeviceError` naming the operation and the device, or
    :class:`nnfs.OutOfDeviceMemory` where the device ran out of memory.
    """

    @staticmethod
    def devices() -> list[DeviceInfo]:
        return find_devices()

    def __init__(self, info: DeviceInfo, dtype: str):
        import cupy
        from cupy.cuda import runtime
        from cupy_backends.cuda.libs import cublas

        self.info = info
        self.dtype = dtype
        self._cupy = cupy
        self._runtime = runtime
        self._cublas = cublas
        self._handle = None
        self._staging: _Staging | None = None
        self._nccl: list[Any] = []  # NCCL communicators joined, destroyed on release
        #: What CuPy raises when the device, the runtime, the driver or cuBLAS fails.
        self._errors: tuple[type[BaseException], ...] = (
            runtime.CUDARuntimeError, cupy.cuda.driver.CUDADriverError, cublas.CUBLASError)
        prefix = "s" if dtype == "float32" else "d"
        self._prefix = prefix
        routines = ("gemm", "gemv", "ger", "axpy", "scal", "nrm2")
        self._xgemm, self._xgemv, self._xger, self._xaxpy, self._xscal, self._xnrm2 = (
            getattr(cublas, prefix + name) for name in routines)
        step = "selecting the device"
        try:
            self._device = cupy.cuda.Device(info.index)
            with self._device:
                step = "creating a stream"
                self._stream = cupy.cuda.Stream(non_blocking=True)
                self._pool = cupy.get_default_memory_pool()
                step = "allocating pinned host memory for uploads"
                self._staging = _Staging(cupy, STAGING_BYTES)
        except (*self._errors, MemoryError) as error:
            raise DeviceUnavailable(
                f"{step} failed on device {info} ({type(error).__name__}: {error})") from None
        with self._device:
            try:
                self._handle = cublas.create()
                # CuPy rebinds the handle to the current stream on every call; this binding
                # only holds until the first one
                cublas.setStream(self._handle, self._stream.ptr)
                cublas.setPointerMode(self._handle, cublas.CUBLAS_POINTER_MODE_HOST)
            except Exception as error:
                raise DeviceUnavailable(
                    f"cuBLAS could not start on device {info} ({type(error).__name__}: {error}); "
                    f"the CUDA libraries come with: {CUDA_PIP}") from None
            try:
                module = cupy.RawModule(code=kernels.source(), options=kernels.NVRTC_OPTIONS,
                                        name_expressions=kernels.name_expressions(dtype))
                module.compile()
                ctype = kernels.CTYPES[dtype]
                self._functions = {name: module.get_function(f"{name}<{ctype}>")
                                   for name in kernels.signatures()}
            except Exception as error:
                self.release()
                raise DeviceUnavailable(
                    f"NVRTC could not compile nnfs-cuda's kernels for device {info} "
                    f"({type(error).__name__}: {error}); the CUDA libraries come with: "
                    f"{CUDA_PIP}") from None

    # --- every call: on the device, on the stream, device errors made nnfs errors ------------

    def _on_stream(self, operation: str, call: Callable, *keep: Any) -> Callable[[], Any]:
        """``call`` run with this device and this stream current, device errors turned into
        nnfs errors naming ``operation``. ``keep``: objects the call's raw pointers point into
        (host scalars, device arrays), held as long as the prepared call lives."""
        device, stream, errors, failure = self._device, self._stream, self._errors, self._failure

        def run(_keep=keep):
            try:
                with device, stream:
                    return call()
            except errors as error:
                raise failure(operation, error) from None

        return run

    def _failure(self, operation: str, error: BaseException) -> Exception:
        """The nnfs error for ``error``, which CuPy raised during ``operation``."""
        status = getattr(error, "status", None)
        raw = f"{type(error).__name__}: {error}"
        if isinstance(error, self._cublas.CUBLASError):
            memory = status == _CUBLAS_ALLOC_FAILED
        else:
            memory = status == _RUNTIME_OUT_OF_MEMORY
        if memory:
            available = None
            with contextlib.suppress(Exception):  # the device may not answer any more
                available = self.memory_info()[0] + self.pool_free_bytes()
            known = f"; {available} bytes are available" if available is not None else ""
            return nnfs.OutOfDeviceMemory(
                f"cuda: {operation} on device {self.info} ran out of device memory "
                f"({raw}){known}", None, available)
        return nnfs.DeviceError(
            f"cuda: {operation} on device {self.info} failed ({raw}). CUDA reports a fault of a "
            "kernel or a copy at the next call that launches or waits, so the work that failed "
            "may be any queued on this factory's stream since it last waited; run with "
            "CUDA_LAUNCH_BLOCKING=1 to have each fault reported where it happens. After a "
            "kernel fault such as an illegal address, every later call in this process fails: "
            "restart it.")

    # --- memory -------------------------------------------------------------------------------

    def allocate(self, size: int, dtype: str | None = None):
        zeros = functools.partial(self._cupy.zeros, size, dtype=dtype or self.dtype)
        return self._on_stream("allocating device memory", zeros)()

    def view(self, storage, offset: int, size: int):
        return storage[offset:offset + size]

    def memory_info(self) -> tuple[int, int]:
        with self._device:
            free, total = self._runtime.memGetInfo()
        return int(free), int(total)

    def pool_held_bytes(self) -> int:
        with self._device:
            return int(self._pool.total_bytes())

    def pool_free_bytes(self) -> int:
        with self._device:
            return int(self._pool.free_bytes())

    # --- transfers ----------------------------------------------------------------------------

    def upload(self, host: np.ndarray, view) -> None:
        staging, stream = self._staging, self._stream
        assert staging is not None  # None only once released
        self._on_stream("upload", lambda: staging.upload(host, view, stream))()

    def download(self, view, host: np.ndarray) -> None:
        stream = self._stream
        self._on_stream("download", lambda: view.get(stream=stream, out=host, blocking=False))()

    def synchronize(self) -> None:
        self._on_stream("synchronize (waiting for the stream)", self._stream.synchronize)()
        assert self._staging is not None  # None only once released
        self._staging.reset()

    # --- cuBLAS -------------------------------------------------------------------------------

    def _scalars(self, *values: float) -> tuple[np.ndarray, list[int]]:
        """Host copies of cuBLAS's scalars in the layer's dtype, and their addresses."""
        held = np.array(values, dtype=self.dtype)
        return held, [held.ctypes.data + i * held.itemsize for i in range(len(values))]

    def gemm(self, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        held, (alpha_at, beta_at) = self._scalars(alpha, beta)
        call = functools.partial(
            self._xgemm, self._handle, _op(self._cublas, trans_a), _op(self._cublas, trans_b),
            m, n, k, alpha_at, a.data.ptr, lda, b.data.ptr, ldb, beta_at, c.data.ptr, ldc)
        return self._on_stream(f"cuBLAS {self._prefix}gemm ({m}×{n}×{k})", call, held, a, b, c)

    def gemv(self, trans, m, n, alpha, a, lda, x, beta, y):
        held, (alpha_at, beta_at) = self._scalars(alpha, beta)
        call = functools.partial(self._xgemv, self._handle, _op(self._cublas, trans), m, n,
                                 alpha_at, a.data.ptr, lda, x.data.ptr, 1, beta_at, y.data.ptr, 1)
        return self._on_stream(f"cuBLAS {self._prefix}gemv ({m}×{n})", call, held, a, x, y)

    def ger(self, m, n, alpha, x, y, a, lda):
        held, (alpha_at,) = self._scalars(alpha)
        call = functools.partial(self._xger, self._handle, m, n, alpha_at, x.data.ptr, 1,
                                 y.data.ptr, 1, a.data.ptr, lda)
        return self._on_stream(f"cuBLAS {self._prefix}ger ({m}×{n})", call, held, x, y, a)

    def axpy(self, n, alpha, x, y):
        held, (alpha_at,) = self._scalars(alpha)
        call = functools.partial(self._xaxpy, self._handle, n, alpha_at, x.data.ptr, 1,
                                 y.data.ptr, 1)
        return self._on_stream(f"cuBLAS {self._prefix}axpy ({n})", call, held, x, y)

    def scal(self, n, alpha, x):
        held, (alpha_at,) = self._scalars(alpha)
        call = functools.partial(self._xscal, self._handle, n, alpha_at, x.data.ptr, 1)
        return self._on_stream(f"cuBLAS {self._prefix}scal ({n})", call, held, x)

    def nrm2(self, n, x):
        result = np.zeros(1, dtype=self.dtype)
        call = functools.partial(self._xnrm2, self._handle, n, x.data.ptr, 1, result.ctypes.data)

        def norm() -> float:  # host pointer mode: cuBLAS returns once the result is written
            call()
            return float(result[0])

        return self._on_stream(f"cuBLAS {self._prefix}nrm2 ({n})", norm, x, result)

    def copy(self, n, x, y):
        nbytes = n * np.dtype(self.dtype).itemsize
        call = functools.partial(self._runtime.memcpyAsync, y.data.ptr, x.data.ptr, nbytes,
                                 self._runtime.memcpyDeviceToDevice, self._stream.ptr)
        return self._on_stream(f"device-to-device copy ({nbytes} bytes)", call, x, y)

    # --- NCCL -------------------------------------------------------------------------------

    def nccl_available(self) -> bool:
        try:
            from cupy.cuda import nccl
        except ImportError:
            return False
        return bool(getattr(nccl, "available", False))

    def nccl_communicator(self, communicator):
        from cupy.cuda import nccl

        nccl_error = getattr(nccl, "NcclError", None)
        if nccl_error is not None and nccl_error not in self._errors:
            self._errors = (*self._errors, nccl_error)
        rank, size = communicator.Get_rank(), communicator.Get_size()
        unique = communicator.bcast(nccl.get_unique_id() if rank == 0 else None, root=0)
        joined = self._on_stream("joining an NCCL communicator",
                                 lambda: nccl.NcclCommunicator(size, unique, rank))()
        self._nccl.append(joined)
        return joined

    def allreduce_sum(self, n, x, nccl_communicator):
        from cupy.cuda import nccl

        kind = nccl.NCCL_FLOAT32 if self.dtype == "float32" else nccl.NCCL_FLOAT64
        call = functools.partial(nccl_communicator.allReduce, x.data.ptr, x.data.ptr, n, kind,
                                 nccl.NCCL_SUM, self._stream.ptr)
        return self._on_stream(f"NCCL allreduce ({n} elements)", call, x, nccl_communicator)

    # --- kernels.cu ---------------------------------------------------------------------------

    def kernel(self, name, grid, block, *args):
        function = self._functions[name]
        values = kernels.arguments(name, args, self.dtype)
        call = functools.partial(function, (int(grid),), (int(block),), values,
                                 stream=self._stream)
        return self._on_stream(f"kernel {name} ({grid}×{block} threads)", call, *args)

    def release(self) -> None:
        """Wait for the stream, then free the cuBLAS handle, the NCCL communicators and the
        pinned memory, even when the wait reports a device error (which is then raised)."""
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            self._on_stream("release (waiting for the stream)", self._stream.synchronize)()
        finally:  # after a fault these may fail too: the wait's error is the one to report
            with self._device, contextlib.suppress(*self._errors):
                self._cublas.destroy(handle)
                for joined in self._nccl:
                    joined.destroy()
            self._nccl.clear()
            self._staging = None


def _op(cublas: Any, transpose: bool) -> int:
    return cublas.CUBLAS_OP_T if transpose else cublas.CUBLAS_OP_N
