"""The device layer: every call nnfs-cuda makes into CuPy, and nothing else.

The factory (``factory.py``) decides *what* runs: which cuBLAS routine with which dimensions,
leading dimensions and transposes, which kernel of ``kernels.cu`` over which range, how much
memory to ask for, and when to wait. It says so to a device layer, which only does it. The one
real layer is :class:`CupyDevice`; :class:`DeviceLayer` below is the protocol any layer follows.

The test suite runs the factory over a numpy *stand-in* for this layer (``tests/cuda_standin.py``,
class ``NumpyStandIn``), which is how the factory's logic is tested on machines without a GPU.
What only this module does — the cuBLAS calls, NVRTC compiling ``kernels.cu``, the kernels
themselves, the stream, CuPy's memory pool — is verified only on a GPU (see the README).

Importing this module does not import CuPy; :func:`find_devices` and :class:`CupyDevice` do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol

import numpy as np

from . import kernels

#: Compute capabilities whose float64 runs at half the float32 rate (data-centre GPUs: P100,
#: V100, A100, H100, B100/B200). Others run float64 at 1/32 to 1/64 of their float32 rate.
#: Used when the driver does not report the ratio itself.
FAST_FLOAT64 = frozenset({(6, 0), (7, 0), (8, 0), (9, 0), (10, 0)})

#: The pip command that brings the CUDA libraries nnfs-cuda loads, without a CUDA toolkit.
CUDA_LIBRARIES_PIP = "pip install 'cuda-toolkit[cublas,cudart,nvrtc]==12.*'"


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
        """Queue a copy of ``host`` (1-D, the view's size) into ``view``; ``host`` may be
        reused as soon as this returns."""

    def download(self, view: Any, host: np.ndarray) -> None:
        """Queue a copy of ``view`` into ``host``; read ``host`` only after synchronize()."""

    def synchronize(self) -> None:
        """Wait until everything queued on the stream has run."""

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


def find_devices() -> list[DeviceInfo]:
    """The CUDA devices of this machine, or DeviceUnavailable saying why there are none.

    Cheap (no CUDA context is created) and never raises anything else: ``nnfs backends`` and
    the plugin's probe call it on machines without a GPU.
    """
    try:
        from cupy.cuda import runtime
    except Exception as error:  # ImportError, or a broken CuPy installation
        raise DeviceUnavailable(
            f"CuPy cannot be imported ({type(error).__name__}: {error}); install it with: "
            "pip install cupy-cuda12x") from None
    wheels = _cupy_distributions()
    if len(wheels) > 1:
        raise DeviceUnavailable(
            f"several CuPy distributions are installed ({', '.join(wheels)}) and overwrite each "
            "other's files; uninstall all of them, then install one (pip install cupy-cuda12x)")
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

class CupyDevice:
    """The device layer on CuPy: one device, one dtype, one non-blocking stream, one cuBLAS
    handle bound to that stream (host pointer mode), and kernels.cu compiled once by NVRTC.

    Every launch runs with this device current and, for kernels, this stream current; cuBLAS
    calls go to the stream through the handle. Memory comes from CuPy's default memory pool,
    allocated on the stream, so it is reused in stream order.
    """

    devices = staticmethod(find_devices)

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
        self._nccl: list[Any] = []  # NCCL communicators joined, destroyed on release
        self._device = cupy.cuda.Device(info.index)
        prefix = "s" if dtype == "float32" else "d"
        routines = ("gemm", "gemv", "ger", "axpy", "scal", "nrm2")
        self._xgemm, self._xgemv, self._xger, self._xaxpy, self._xscal, self._xnrm2 = (
            getattr(cublas, prefix + name) for name in routines)
        with self._device:
            self._stream = cupy.cuda.Stream(non_blocking=True)
            self._pool = cupy.get_default_memory_pool()
            try:
                self._handle = cublas.create()
                cublas.setStream(self._handle, self._stream.ptr)
                cublas.setPointerMode(self._handle, cublas.CUBLAS_POINTER_MODE_HOST)
            except Exception as error:
                raise DeviceUnavailable(
                    f"cuBLAS could not start on device {info} ({type(error).__name__}: {error}); "
                    f"the CUDA libraries come with: {CUDA_LIBRARIES_PIP}") from None
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
                    f"{CUDA_LIBRARIES_PIP}") from None

    # --- memory -------------------------------------------------------------------------------

    def allocate(self, size: int, dtype: str | None = None):
        with self._device, self._stream:
            return self._cupy.zeros(size, dtype=dtype or self.dtype)

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
        with self._device:
            view.set(host, stream=self._stream)

    def download(self, view, host: np.ndarray) -> None:
        with self._device:
            view.get(stream=self._stream, out=host, blocking=False)

    def synchronize(self) -> None:
        self._stream.synchronize()

    # --- cuBLAS -------------------------------------------------------------------------------

    def _on_device(self, call: Callable, *keep: Any) -> Callable[[], Any]:
        """``call`` run with this device current. ``keep``: objects the call's raw pointers
        point into (host scalars, device arrays), held as long as the prepared call lives."""
        device = self._device

        def run(_keep=keep):
            with device:
                return call()

        return run

    def _scalars(self, *values: float) -> tuple[np.ndarray, list[int]]:
        """Host copies of cuBLAS's scalars in the layer's dtype, and their addresses."""
        held = np.array(values, dtype=self.dtype)
        return held, [held.ctypes.data + i * held.itemsize for i in range(len(values))]

    def gemm(self, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        held, (alpha_at, beta_at) = self._scalars(alpha, beta)
        call = functools.partial(
            self._xgemm, self._handle, _op(self._cublas, trans_a), _op(self._cublas, trans_b),
            m, n, k, alpha_at, a.data.ptr, lda, b.data.ptr, ldb, beta_at, c.data.ptr, ldc)
        return self._on_device(call, held, a, b, c)

    def gemv(self, trans, m, n, alpha, a, lda, x, beta, y):
        held, (alpha_at, beta_at) = self._scalars(alpha, beta)
        call = functools.partial(self._xgemv, self._handle, _op(self._cublas, trans), m, n,
                                 alpha_at, a.data.ptr, lda, x.data.ptr, 1, beta_at, y.data.ptr, 1)
        return self._on_device(call, held, a, x, y)

    def ger(self, m, n, alpha, x, y, a, lda):
        held, (alpha_at,) = self._scalars(alpha)
        call = functools.partial(self._xger, self._handle, m, n, alpha_at, x.data.ptr, 1,
                                 y.data.ptr, 1, a.data.ptr, lda)
        return self._on_device(call, held, x, y, a)

    def axpy(self, n, alpha, x, y):
        held, (alpha_at,) = self._scalars(alpha)
        call = functools.partial(self._xaxpy, self._handle, n, alpha_at, x.data.ptr, 1,
                                 y.data.ptr, 1)
        return self._on_device(call, held, x, y)

    def scal(self, n, alpha, x):
        held, (alpha_at,) = self._scalars(alpha)
        call = functools.partial(self._xscal, self._handle, n, alpha_at, x.data.ptr, 1)
        return self._on_device(call, held, x)

    def nrm2(self, n, x):
        result = np.zeros(1, dtype=self.dtype)
        call = functools.partial(self._xnrm2, self._handle, n, x.data.ptr, 1, result.ctypes.data)

        def norm() -> float:  # host pointer mode: cuBLAS returns once the result is written
            call()
            return float(result[0])

        return self._on_device(norm, x)

    def copy(self, n, x, y):
        nbytes = n * np.dtype(self.dtype).itemsize
        call = functools.partial(self._runtime.memcpyAsync, y.data.ptr, x.data.ptr, nbytes,
                                 self._runtime.memcpyDeviceToDevice, self._stream.ptr)
        return self._on_device(call, x, y)

    # --- NCCL -------------------------------------------------------------------------------

    def nccl_available(self) -> bool:
        try:
            from cupy.cuda import nccl
        except ImportError:
            return False
        return bool(getattr(nccl, "available", False))

    def nccl_communicator(self, communicator):
        from cupy.cuda import nccl

        rank, size = communicator.Get_rank(), communicator.Get_size()
        unique = communicator.bcast(nccl.get_unique_id() if rank == 0 else None, root=0)
        with self._device:
            joined = nccl.NcclCommunicator(size, unique, rank)
        self._nccl.append(joined)
        return joined

    def allreduce_sum(self, n, x, nccl_communicator):
        from cupy.cuda import nccl

        kind = nccl.NCCL_FLOAT32 if self.dtype == "float32" else nccl.NCCL_FLOAT64
        call = functools.partial(nccl_communicator.allReduce, x.data.ptr, x.data.ptr, n, kind,
                                 nccl.NCCL_SUM, self._stream.ptr)
        return self._on_device(call, x, nccl_communicator)

    # --- kernels.cu ---------------------------------------------------------------------------

    def kernel(self, name, grid, block, *args):
        function = self._functions[name]
        values = kernels.arguments(name, args, self.dtype)
        grid_shape, block_shape = (int(grid),), (int(block),)
        device, stream = self._device, self._stream

        def launch() -> None:
            with device, stream:
                function(grid_shape, block_shape, values)

        return launch

    def release(self) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        with self._device:
            self._stream.synchronize()
            self._cublas.destroy(handle)
            for joined in self._nccl:
                joined.destroy()
            self._nccl.clear()


def _op(cublas: Any, transpose: bool) -> int:
    return cublas.CUBLAS_OP_T if transpose else cublas.CUBLAS_OP_N
