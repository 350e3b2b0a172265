"""A recording fake of the CuPy that nnfs-cuda uses, so that its real device layer runs here.

``Recorder`` puts fake ``cupy``, ``cupy.cuda`` (runtime, driver, memory, compiler, nccl) and
``cupy_backends.cuda.libs.cublas`` modules in ``sys.modules`` (``with recorder.installed():``),
and nnfs-cuda's own ``CupyDevice`` — not a stand-in for it — runs over them. It is NOT a GPU
and NOT CuPy: it is the part of CuPy's behaviour that decides *where* work goes and *when*
memory is read, written down from CuPy's source, and enforced:

* **Streams and the current stream.** Each device has a stack of current streams, as in CuPy
  (``with stream:`` pushes onto the stack of the stream's device and refuses a stream of
  another device; the bottom is the legacy default stream, pointer 0). Work is queued on a
  stream and runs only when the host waits for it: ``Stream.synchronize``, an event's
  ``synchronize``, a blocking ``get``, a cuBLAS ``nrm2`` in host pointer mode. Work queued on
  the default stream never runs in a non-blocking stream's wait — the worst a real device can
  do, and what it does when nothing else happens to run first.
* **cuBLAS.** Each routine first binds the handle to the *current* stream of the *current*
  device, as CuPy's wrappers do (``_setStream(handle)`` in ``cupy_backends/cuda/libs/cublas.pyx``),
  whatever ``setStream`` said before; reads alpha and beta from host memory when called (host
  pointer mode); and queues the product on the handle's stream.
* **Kernels, copies, memsets, NCCL.** A launch goes to its ``stream=`` or the current stream;
  ``memcpyAsync`` and ``ncclAllReduce`` to the stream pointer they are given; ``cupy.zeros``
  clears memory on the current stream. ``copy_from_host_async`` must read pinned memory (CuPy's
  documentation says so; from pageable memory the driver decides whether the data is staged
  before the call returns); the copy reads its source when the stream gets to it, not when it
  is queued.
* **The memory pool.** Blocks come from one pool per device with one arena per current stream
  (CuPy's ``_get_stream_identifier``), freed blocks are cached in their arena, and the pool
  grows within the device's capacity, else ``OutOfMemoryError``. Fresh memory holds NaN bytes
  until it is cleared, and a host buffer a copy will write holds NaN bytes until the copy runs,
  so a read that does not wait reads NaN.

Every operation is recorded (kind, stream, device, the memory it touches) in ``operations``.
The rules it enforces, each a :class:`RecorderViolation` (an ``AssertionError``) raised where
the rule is broken, and kept in ``violations``:

1. an operation is issued on the stream whose pool arena holds the memory it touches, never on
   the legacy default stream, with the device of its stream, handle or module current;
2. when a stream is waited for, no other stream has queued work on that stream's memory;
3. a host buffer a copy reads is pinned, and is still alive and unchanged when the copy runs;
   a host buffer a copy writes is alive when it runs.

The arithmetic is the numpy stand-in's (``cuda_standin.KERNEL_MATH``, ``column_major``), so
that the conformance kit can run over the recorder; the stand-in checks arithmetic, the
recorder checks ordering and lifetimes. Nothing here measures speed or touches a driver.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import functools
import hashlib
import sys
import types
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cuda_standin import _EXTENTS, KERNEL_MATH, column_major

from nnfs_cuda import kernels

#: Rounding of the fake pool's blocks (CuPy's is 512 bytes).
POOL_ROUNDING = 512
#: What fresh device memory and not-yet-written host buffers hold: NaN in float32 and float64.
POISON = 0xFF

# status codes, as CUDA, cuBLAS and NCCL number them
CUDA_ERROR_MEMORY_ALLOCATION = 2
CUDA_ERROR_INVALID_DEVICE = 101
CUDA_ERROR_ILLEGAL_ADDRESS = 700
CUBLAS_STATUS_ALLOC_FAILED = 3
CUBLAS_STATUS_EXECUTION_FAILED = 13
NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 7, 8, 0

_RUNTIME_NAMES = {
    CUDA_ERROR_MEMORY_ALLOCATION: ("cudaErrorMemoryAllocation", "out of memory"),
    CUDA_ERROR_INVALID_DEVICE: ("cudaErrorInvalidDevice", "invalid device ordinal"),
    CUDA_ERROR_ILLEGAL_ADDRESS: ("cudaErrorIllegalAddress",
                                 "an illegal memory access was encountered"),
}
_DRIVER_NAMES = {
    CUDA_ERROR_ILLEGAL_ADDRESS: ("CUDA_ERROR_ILLEGAL_ADDRESS",
                                 "an illegal memory access was encountered"),
}
_CUBLAS_NAMES = {CUBLAS_STATUS_ALLOC_FAILED: "CUBLAS_STATUS_ALLOC_FAILED",
                 CUBLAS_STATUS_EXECUTION_FAILED: "CUBLAS_STATUS_EXECUTION_FAILED"}


class RecorderViolation(AssertionError):
    """A rule of streams, memory or host buffers that the code under test broke."""


# --- the exceptions CuPy raises, with CuPy's constructors -----------------------------------------

class CUDARuntimeError(RuntimeError):
    def __init__(self, status: int):
        self.status = status
        name, text = _RUNTIME_NAMES.get(status, (f"cudaError{status}", "unknown error"))
        super().__init__(f"{name}: {text}")


class CUDADriverError(RuntimeError):
    def __init__(self, status: int):
        self.status = status
        name, text = _DRIVER_NAMES.get(status, (f"CUDA_ERROR_{status}", "unknown error"))
        super().__init__(f"{name}: {text}")


class CUBLASError(RuntimeError):
    def __init__(self, status: int):
        self.status = status
        super().__init__(_CUBLAS_NAMES.get(status, f"CUBLAS_STATUS_{status}"))


class NcclError(RuntimeError):
    def __init__(self, status: int, text: str = "NCCL error"):
        self.status = status
        super().__init__(text)


class OutOfMemoryError(MemoryError):
    def __init__(self, size: int, total: int, limit: int = 0):
        super().__init__(f"Out of memory allocating {size:,} bytes "
                         f"(allocated so far: {total:,} bytes).")


class CompileException(Exception):
    def __init__(self, msg, source, name, options, backend="nvrtc"):
        self._msg = msg
        super().__init__()

    def __str__(self) -> str:
        return self._msg


# --- what is recorded -----------------------------------------------------------------------------

@dataclass(eq=False)
class Operation:
    """One operation as it was issued: what, on which stream of which device, touching which
    device memory; ``done`` once the stream has run it."""

    kind: str
    stream: Stream
    device: int
    blocks: tuple[Block, ...]
    work: Callable[[], None] | None = None
    done: bool = False

    def __str__(self) -> str:
        return f"{self.kind} on {self.stream}"


@dataclass(frozen=True)
class Wait:
    """The host waited for ``stream`` (``why``), which then held ``queued`` operations."""

    why: str
    stream: Stream
    queued: int


@dataclass(eq=False)
class Block:
    """Device memory from the pool: ``nbytes`` bytes of one arena (a stream) of one device."""

    device: int
    arena: Stream
    memory: np.ndarray  # uint8, the bytes "on the device"
    in_use: bool = True

    @property
    def address(self) -> int:
        return self.memory.ctypes.data

    def typed(self, offset: int, dtype: Any) -> np.ndarray:
        """The block's bytes from ``offset`` on, as a 1-D array of ``dtype``."""
        dtype = np.dtype(dtype)
        count = (self.memory.size - offset) // dtype.itemsize
        return self.memory[offset:offset + count * dtype.itemsize].view(dtype)


def _base(array: Any) -> Any:
    """The object that owns ``array``'s memory (following numpy views to their base)."""
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array


def _digest(address: int, nbytes: int) -> bytes:
    return hashlib.blake2b(ctypes.string_at(address, nbytes), digest_size=16).digest()


# --- streams, events, devices ---------------------------------------------------------------------

class Stream:
    """A fake ``cupy.cuda.Stream``: a queue of operations run when the host waits."""

    def __init__(self, recorder: Recorder, device: int, ptr: int, non_blocking: bool):
        self.recorder, self.device_id, self.ptr = recorder, device, ptr
        self.non_blocking = non_blocking
        self.queue: deque[Operation] = deque()

    def __repr__(self) -> str:
        what = "the legacy default stream" if self.ptr == 0 else f"stream {self.ptr:#x}"
        return f"{what} of device {self.device_id}"

    def __enter__(self) -> Stream:
        recorder = self.recorder
        if recorder.current_device != self.device_id:  # CuPy's check_stream_device_match
            raise RuntimeError(
                f"The device that the stream is created on ({self.device_id}) does not match "
                f"with the current device ({recorder.current_device})")
        recorder.stream_stacks[self.device_id].append(self)
        recorder.entered.append(self.device_id)
        return self

    def __exit__(self, *exc) -> None:
        device = self.recorder.entered.pop()
        self.recorder.stream_stacks[device].pop()

    def use(self) -> Stream:
        self.recorder.stream_stacks[self.device_id][-1] = self
        return self

    def synchronize(self) -> None:
        self.recorder.wait(self, None, "Stream.synchronize")

    @property
    def done(self) -> bool:
        return not self.queue


class Event:
    """A fake ``cupy.cuda.Event``: a marker in a stream's queue."""

    def __init__(self, recorder: Recorder, block=False, disable_timing=False, interprocess=False):
        self.recorder = recorder
        self.marker: Operation | None = None

    def record(self, stream: Stream | None = None) -> None:
        recorder = self.recorder
        stream = stream or recorder.current_stream()
        self.marker = Operation("event record", stream, stream.device_id, ())
        stream.queue.append(self.marker)

    def synchronize(self) -> None:
        if self.marker is not None and not self.marker.done:
            self.recorder.wait(self.marker.stream, self.marker, "Event.synchronize")

    @property
    def done(self) -> bool:
        return self.marker is None or self.marker.done


class Device:
    """A fake ``cupy.cuda.Device``: ``with Device(i):`` makes device i current."""

    def __init__(self, recorder: Recorder, index: int | None = None):
        self.recorder = recorder
        self.id = recorder.current_device if index is None else int(index)
        if not 0 <= self.id < len(recorder.devices):
            raise CUDARuntimeError(CUDA_ERROR_INVALID_DEVICE)
        self._previous: list[int] = []

    def __enter__(self) -> Device:
        self._previous.append(self.recorder.current_device)
        self.recorder.current_device = self.id
        return self

    def __exit__(self, *exc) -> None:
        self.recorder.current_device = self._previous.pop()

    def use(self) -> None:
        self.recorder.current_device = self.id

    def synchronize(self) -> None:
        for stream in self.recorder.streams_of(self.id):
            self.recorder.wait(stream, None, "Device.synchronize", check=False)

    @property
    def compute_capability(self) -> str:
        major, minor = self.recorder.compute_capability
        return f"{major}{minor}"


# --- device memory --------------------------------------------------------------------------------

class Memory:
    """What holds a block in use; the block goes back to its arena when this is collected."""

    def __init__(self, block: Block):
        self.block = block
        weakref.finalize(self, _give_back, block)


def _give_back(block: Block) -> None:
    block.in_use = False


class MemoryPointer:
    """A fake ``cupy.cuda.MemoryPointer``: a place in device memory."""

    def __init__(self, recorder: Recorder, memory: Memory, offset: int):
        self.recorder, self.mem, self.offset = recorder, memory, offset
        self.device_id = memory.block.device

    @property
    def ptr(self) -> int:
        return self.mem.block.address + self.offset

    def __add__(self, offset: int) -> MemoryPointer:
        return MemoryPointer(self.recorder, self.mem, self.offset + int(offset))

    def copy_from_host_async(self, mem: int, size: int, stream: Stream | None = None,
                             _source: Any = None) -> None:
        self.recorder.host_to_device(self, int(mem), int(size), stream, _source)

    def copy_to_host_async(self, mem: int, size: int, stream: Stream | None = None,
                           _destination: Any = None) -> None:
        self.recorder.device_to_host(self, int(mem), int(size), stream, _destination)

    def memset_async(self, value: int, size: int, stream: Stream | None = None) -> None:
        self.recorder.memset(self, value, size, stream)


class FakeArray:
    """A fake ``cupy.ndarray``, one-dimensional (all nnfs-cuda uses)."""

    def __init__(self, recorder: Recorder, memory: Memory, offset: int, size: int, dtype):
        self.recorder, self._memory, self._offset = recorder, memory, offset
        self.dtype = np.dtype(dtype)
        self.size = int(size)
        self.shape = (self.size,)
        self.ndim = 1

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def data(self) -> MemoryPointer:
        return MemoryPointer(self.recorder, self._memory, self._offset)

    @property
    def device(self) -> Device:
        return Device(self.recorder, self._memory.block.device)

    @property
    def block(self) -> Block:
        return self._memory.block

    def numpy(self) -> np.ndarray:
        """The elements as a numpy view of the "device" bytes (for the recorder's arithmetic)."""
        return self.block.typed(self._offset, self.dtype)[:self.size]

    def __getitem__(self, index: slice) -> FakeArray:
        start, stop, step = index.indices(self.size)
        if step != 1:
            raise NotImplementedError("the recorder's arrays take contiguous slices only")
        return FakeArray(self.recorder, self._memory, self._offset + start * self.dtype.itemsize,
                         max(0, stop - start), self.dtype)

    def __repr__(self) -> str:
        return f"<recorder array of {self.size} {self.dtype} on device {self.block.device}>"

    def set(self, arr: np.ndarray, stream: Stream | None = None) -> None:
        """As CuPy's ``ndarray.set``: an async copy from ``arr``'s memory, as it is."""
        if not isinstance(arr, np.ndarray) or arr.dtype != self.dtype or arr.shape != self.shape:
            raise TypeError(f"set: {arr!r:.60} does not match {self!r}")
        arr = np.ascontiguousarray(arr)
        self.data.copy_from_host_async(arr.ctypes.data, self.nbytes, stream, _source=arr)

    def get(self, stream: Stream | None = None, order="C", out: np.ndarray | None = None,
            blocking: bool = True) -> np.ndarray:
        """As CuPy's ``ndarray.get``: an async copy into ``out`` (or a new array), then a wait
        for the stream if ``blocking``."""
        recorder = self.recorder
        stream = stream or recorder.current_stream()
        if out is None:
            out = np.empty(self.shape, self.dtype)
        elif out.dtype != self.dtype or out.shape != self.shape or not out.flags.c_contiguous:
            raise TypeError(f"get: out {out.shape} {out.dtype} does not match {self!r}")
        self.data.copy_to_host_async(out.ctypes.data, self.nbytes, stream, _destination=out)
        if blocking:
            stream.synchronize()
        return out


class MemoryPool:
    """A fake ``cupy.cuda.MemoryPool``: per device, one arena of cached blocks per stream."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder

    def total_bytes(self) -> int:
        return self.recorder.held_bytes(self.recorder.current_device)

    def free_bytes(self) -> int:
        device = self.recorder.current_device
        return sum(b.memory.size for b in self.recorder.blocks if b.device == device
                   and not b.in_use)

    def used_bytes(self) -> int:
        return self.total_bytes() - self.free_bytes()

    def free_all_blocks(self, stream: Stream | None = None) -> None:
        self.recorder.free_cached(self.recorder.current_device)


class PinnedMemory(bytearray):
    """Fake pinned host memory (what ``cupy.cuda.alloc_pinned_memory`` returns): a buffer
    numpy can wrap, registered as pinned for as long as it lives."""

    @property
    def ptr(self) -> int:
        return np.frombuffer(self, np.uint8).ctypes.data


# --- kernels --------------------------------------------------------------------------------------

class RawModule:
    """A fake ``cupy.RawModule``: its functions run the stand-in's numpy version of each
    kernel of kernels.cu, launched on the device it was compiled for."""

    def __init__(self, recorder: Recorder, code: str, options=(), name_expressions=()):
        self.recorder, self.code = recorder, code
        self.name_expressions = tuple(name_expressions)
        self.device: int | None = None

    def compile(self, log_stream=None) -> None:
        recorder = self.recorder
        if recorder.compile_failure is not None:
            raise CompileException(recorder.compile_failure, self.code, "kernels.cu", ())
        if self.code != kernels.source():
            raise CompileException("the recorder compiles kernels.cu only", self.code, "", ())
        self.device = recorder.current_device

    def get_function(self, name: str) -> Function:
        if self.device is None:
            self.compile()
        if name not in self.name_expressions:
            raise CUDADriverError(500)  # CUDA_ERROR_NOT_FOUND
        kernel, _, ctype = name.partition("<")
        dtype = {v: k for k, v in kernels.CTYPES.items()}[ctype.rstrip(">")]
        return Function(self.recorder, kernel, dtype, self.device)


class Function:
    """A fake ``cupy.cuda.Function`` (``RawKernel``): called as (grid, block, args, stream=)."""

    def __init__(self, recorder: Recorder, kernel: str, dtype: str, device: int):
        self.recorder, self.kernel, self.dtype, self.device = recorder, kernel, dtype, device

    def __call__(self, grid: tuple, block: tuple, args: tuple, shared_mem: int = 0,
                 stream: Stream | None = None, enable_cooperative_groups: bool = False) -> None:
        self.recorder.launch(self, grid, block, args, stream)


# --- cuBLAS ---------------------------------------------------------------------------------------

@dataclass(eq=False)
class Handle:
    device: int
    stream: Stream
    pointer_mode: int = 0
    destroyed: bool = False


# --- NCCL -----------------------------------------------------------------------------------------

class NcclCommunicator:
    """A fake ``cupy.cuda.nccl.NcclCommunicator``: the sum goes through MPI (the job's world)
    with a communicator of its own, once the stream has run everything queued before it."""

    def __init__(self, recorder: Recorder, ndev: int, commId: tuple, rank: int):
        from mpi4py import MPI

        world = MPI.COMM_WORLD
        if (ndev, rank) != (world.Get_size(), world.Get_rank()):
            raise NcclError(4, f"NcclCommunicator({ndev}, ..., {rank}) in a world of "
                               f"{world.Get_size()} where this is rank {world.Get_rank()}")
        ids = world.allgather(hashlib.sha256(bytes(int(v) & 0xFF for v in commId)).digest())
        if len(set(ids)) != 1:
            raise NcclError(4, "the ranks joined with different unique ids")
        self.recorder, self.device = recorder, recorder.current_device
        self.comm = world.Dup()
        self.destroyed = False

    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int,
                  stream: int) -> None:
        self.recorder.allreduce(self, sendbuf, recvbuf, count, datatype, op, stream)

    def destroy(self) -> None:
        if not self.destroyed:
            self.destroyed = True
            self.comm.Free()


# --- the recorder ---------------------------------------------------------------------------------

@dataclass
class FakeDevice:
    name: str
    capacity: int


@dataclass
class Faults:
    """Failures to inject: the next kernel faults when it runs (the device then reports
    cudaErrorIllegalAddress at every later call, as a real one does); the next cuBLAS call
    fails with ``cublas_status``."""

    kernel: bool = False
    cublas_status: int | None = None
    sticky: set[int] = field(default_factory=set)  # devices whose context saw a fault


class Recorder:
    """The fake CuPy and what it saw. ``strict``: raise each violation where it happens
    (the default); otherwise only collect them in ``violations``."""

    def __init__(self, *, devices: int = 1, capacity: int = 1 << 30,
                 compute_capability: tuple[int, int] = (9, 0), float64_ratio: int = 2,
                 clock_khz: int = 1_000_000, nccl: bool = False, strict: bool = True):
        self.devices = [FakeDevice(f"Recorder (fake CuPy, not a GPU) {i}", capacity)
                        for i in range(devices)]
        self.compute_capability = compute_capability
        self.float64_ratio = float64_ratio
        self.clock_khz = clock_khz
        self.nccl = nccl
        self.strict = strict
        self.current_device = 0
        self.null_streams = [Stream(self, d, 0, non_blocking=False) for d in range(devices)]
        self.stream_stacks: list[list[Stream]] = [[s] for s in self.null_streams]
        self.entered: list[int] = []  # devices of the streams entered, innermost last
        self.streams: list[Stream] = []
        self.blocks: list[Block] = []
        self._addresses: list[tuple[int, Block]] = []  # sorted by address
        self._pinned: dict[int, tuple[int, weakref.ref]] = {}  # address → (nbytes, owner)
        self.handles: list[Handle] = []
        self.operations: list[Operation] = []
        self.violations: list[str] = []
        self.waits: list[Wait] = []
        self.mallocs = 0
        self.pinned_allocations = 0
        self.nccl_calls = 0
        self.compile_failure: str | None = None
        self.faults = Faults()
        self.modules = self._modules()

    # --- installing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def installed(self) -> Iterator[Recorder]:
        """The fake modules in ``sys.modules`` (and nothing of the real CuPy) while inside."""
        saved = {name: sys.modules.get(name) for name in self.modules}
        sys.modules.update(self.modules)
        try:
            yield self
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module

    def _modules(self) -> dict[str, types.ModuleType]:
        cupy = types.ModuleType("cupy")
        cuda = types.ModuleType("cupy.cuda")
        runtime = types.ModuleType("cupy.cuda.runtime")
        driver = types.ModuleType("cupy.cuda.driver")
        memory = types.ModuleType("cupy.cuda.memory")
        compiler = types.ModuleType("cupy.cuda.compiler")
        nccl = types.ModuleType("cupy.cuda.nccl")
        backends = types.ModuleType("cupy_backends")
        backends_cuda = types.ModuleType("cupy_backends.cuda")
        libs = types.ModuleType("cupy_backends.cuda.libs")
        cublas = types.ModuleType("cupy_backends.cuda.libs.cublas")

        cupy.cuda = cuda
        cupy.zeros = self.zeros
        cupy.empty = self.empty
        cupy.get_default_memory_pool = functools.partial(MemoryPool, self)
        cupy.RawModule = functools.partial(RawModule, self)
        cupy.ndarray = FakeArray
        cupy.float32, cupy.float64, cupy.uint8 = np.float32, np.float64, np.uint8
        cupy.__recorder__ = self

        cuda.runtime, cuda.driver, cuda.memory, cuda.compiler, cuda.nccl = (
            runtime, driver, memory, compiler, nccl)
        cuda.Device = functools.partial(Device, self)
        cuda.Stream = self.new_stream
        cuda.Event = functools.partial(Event, self)
        cuda.alloc_pinned_memory = self.alloc_pinned_memory
        cuda.get_current_stream = self.current_stream
        cuda.MemoryPointer = MemoryPointer

        runtime.CUDARuntimeError = CUDARuntimeError
        runtime.getDevice = lambda: self.current_device
        runtime.setDevice = self._set_device
        runtime.getDeviceCount = lambda: len(self.devices)
        runtime.driverGetVersion = lambda: 13000
        runtime.runtimeGetVersion = lambda: 13000
        runtime.getDeviceProperties = self._properties
        runtime.deviceGetAttribute = self._attribute
        runtime.cudaDevAttrSingleToDoublePrecisionPerfRatio = 87
        runtime.memGetInfo = self._memory_info
        runtime.memcpyAsync = self.memcpy_async
        runtime.memcpyHostToDevice, runtime.memcpyDeviceToHost = 1, 2
        runtime.memcpyDeviceToDevice, runtime.memcpyDefault = 3, 4
        runtime.deviceSynchronize = lambda: Device(self).synchronize()
        runtime.streamIsCapturing = lambda ptr: False
        driver.CUDADriverError = CUDADriverError
        memory.OutOfMemoryError = OutOfMemoryError
        memory.MemoryPointer = MemoryPointer
        compiler.CompileException = CompileException

        nccl.available = self.nccl
        nccl.NcclError = NcclError
        nccl.NCCL_FLOAT32, nccl.NCCL_FLOAT64, nccl.NCCL_SUM = NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM
        nccl.get_unique_id = lambda: tuple(int(b) - 128 for b in np.random.default_rng().bytes(128))
        nccl.NcclCommunicator = functools.partial(NcclCommunicator, self)

        backends.cuda, backends_cuda.libs, libs.cublas = backends_cuda, libs, cublas
        cublas.CUBLASError = CUBLASError
        cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_T = 0, 1
        cublas.CUBLAS_POINTER_MODE_HOST, cublas.CUBLAS_POINTER_MODE_DEVICE = 0, 1
        cublas.create = self.cublas_create
        cublas.destroy = self.cublas_destroy
        cublas.setStream = self.cublas_set_stream
        cublas.getStream = lambda handle: self._handle(handle).stream.ptr
        cublas.setPointerMode = self.cublas_set_pointer_mode
        cublas.getPointerMode = lambda handle: self._handle(handle).pointer_mode
        for prefix, dtype in (("s", np.float32), ("d", np.float64)):
            for name in ("gemm", "gemv", "ger", "axpy", "scal", "nrm2"):
                setattr(cublas, prefix + name,
                        functools.partial(getattr(self, "cublas_" + name), np.dtype(dtype)))

        return {"cupy": cupy, "cupy.cuda": cuda, "cupy.cuda.runtime": runtime,
                "cupy.cuda.driver": driver, "cupy.cuda.memory": memory,
                "cupy.cuda.compiler": compiler, "cupy.cuda.nccl": nccl,
                "cupy_backends": backends, "cupy_backends.cuda": backends_cuda,
                "cupy_backends.cuda.libs": libs, "cupy_backends.cuda.libs.cublas": cublas}

    # --- the driver's view ----------------------------------------------------------------

    def _set_device(self, index: int) -> None:
        if not 0 <= index < len(self.devices):
            raise CUDARuntimeError(CUDA_ERROR_INVALID_DEVICE)
        self.current_device = index

    def _properties(self, index: int) -> dict:
        major, minor = self.compute_capability
        return {"name": self.devices[index].name.encode(),
                "totalGlobalMem": self.devices[index].capacity, "major": major, "minor": minor,
                "multiProcessorCount": 4, "clockRate": self.clock_khz}

    def _attribute(self, attribute: int, index: int) -> int:
        if attribute == 87:
            return self.float64_ratio
        raise CUDARuntimeError(1)

    def _memory_info(self) -> tuple[int, int]:
        self._check_sticky(runtime=True)
        device = self.current_device
        capacity = self.devices[device].capacity
        return capacity - self.held_bytes(device), capacity

    def held_bytes(self, device: int) -> int:
        return sum(b.memory.size for b in self.blocks if b.device == device)

    # --- streams ----------------------------------------------------------------------------

    def new_stream(self, null: bool = False, non_blocking: bool = False,
                   ptds: bool = False) -> Stream:
        if null:
            return self.null_streams[self.current_device]
        stream = Stream(self, self.current_device, 0x5000 + 0x10 * len(self.streams),
                        non_blocking)
        self.streams.append(stream)
        return stream

    def current_stream(self) -> Stream:
        return self.stream_stacks[self.current_device][-1]

    def streams_of(self, device: int) -> list[Stream]:
        return [self.null_streams[device], *(s for s in self.streams if s.device_id == device)]

    def stream_at(self, ptr: int) -> Stream:
        if ptr == 0:
            return self.null_streams[self.current_device]
        for stream in self.streams:
            if stream.ptr == ptr:
                return stream
        raise CUDARuntimeError(400)  # cudaErrorInvalidResourceHandle

    def pending(self) -> list[Operation]:
        """Operations queued and not yet run, on every stream."""
        return [op for s in (*self.null_streams, *self.streams) for op in s.queue
                if op.work is not None]

    # --- the rules ----------------------------------------------------------------------------

    def violation(self, text: str) -> None:
        self.violations.append(text)
        if self.strict:
            raise RecorderViolation(text)

    def issue(self, kind: str, stream: Stream, blocks: tuple[Block, ...],
              work: Callable[[], None]) -> Operation:
        """Record an operation and queue it, checking rule 1."""
        device = self.current_device
        if stream.device_id != device:
            self.violation(f"{kind} issued on {stream} with device {device} current")
        if stream.ptr == 0:
            self.violation(f"{kind} issued on {stream}: nnfs-cuda's work belongs on its "
                           "factory's own stream")
        for block in blocks:
            if block.arena is not stream:
                self.violation(f"{kind} issued on {stream} touches memory allocated on "
                               f"{block.arena}, so it is not ordered with that stream's work")
            if not block.in_use:
                self.violation(f"{kind} touches device memory that was freed")
        operation = Operation(kind, stream, device, blocks, work)
        self.operations.append(operation)
        stream.queue.append(operation)
        return operation

    def wait(self, stream: Stream, until: Operation | None, why: str, check: bool = True) -> None:
        """The host waits for ``stream`` (up to ``until``): run its queue, then check rule 2."""
        self._check_sticky(runtime=True)
        self.waits.append(Wait(why, stream, sum(op.work is not None for op in stream.queue)))
        while stream.queue:
            operation = stream.queue.popleft()
            if operation.work is not None:
                operation.work()
            operation.done = True
            if self.faults.sticky.intersection({stream.device_id}):
                raise CUDARuntimeError(CUDA_ERROR_ILLEGAL_ADDRESS)
            if operation is until:
                break
        if not check or until is not None:
            return
        mine = {id(b) for b in self.blocks if b.arena is stream}
        for other in (*self.null_streams, *self.streams):
            if other is stream:
                continue
            late = [op for op in other.queue if op.work is not None
                    and any(id(b) in mine for b in op.blocks)]
            if late:
                self.violation(f"{why} of {stream} returned while {len(late)} operation(s) on "
                               f"its memory were still queued on {other} (the first: "
                               f"{late[0].kind})")

    def _check_sticky(self, runtime: bool) -> None:
        if self.current_device in self.faults.sticky:
            error = CUDARuntimeError if runtime else CUDADriverError
            raise error(CUDA_ERROR_ILLEGAL_ADDRESS)

    # --- memory -------------------------------------------------------------------------------

    def malloc(self, nbytes: int) -> Memory:
        """A block from the current device's pool, in the arena of the current stream."""
        device, arena = self.current_device, self.current_stream()
        size = -(-max(int(nbytes), 1) // POOL_ROUNDING) * POOL_ROUNDING
        self.mallocs += 1
        for block in self.blocks:
            if (not block.in_use and block.device == device and block.arena is arena
                    and block.memory.size == size):
                block.in_use = True
                return Memory(block)
        capacity = self.devices[device].capacity
        if self.held_bytes(device) + size > capacity:
            self.free_cached(device)  # as CuPy: give back the cache, try once more
        if self.held_bytes(device) + size > capacity:
            raise OutOfMemoryError(size, self.held_bytes(device))
        block = Block(device, arena, np.full(size, POISON, np.uint8))
        self.blocks.append(block)
        bisect.insort(self._addresses, (block.address, block), key=lambda item: item[0])
        return Memory(block)

    def free_cached(self, device: int) -> None:
        kept = [b for b in self.blocks if b.in_use or b.device != device]
        self.blocks = kept
        self._addresses = [(a, b) for a, b in self._addresses if b in kept]

    def zeros(self, size: int, dtype=float) -> FakeArray:
        array = self.empty(size, dtype)
        array.data.memset_async(0, array.nbytes)  # as cupy.zeros: on the current stream
        return array

    def empty(self, size: int, dtype=float) -> FakeArray:
        self._check_sticky(runtime=True)
        dtype = np.dtype(dtype)
        return FakeArray(self, self.malloc(int(size) * dtype.itemsize), 0, size, dtype)

    def block_at(self, ptr: int, nbytes: int, what: str) -> tuple[Block, int]:
        """The block holding device memory [ptr, ptr + nbytes), and ptr's offset in it."""
        index = bisect.bisect_right(self._addresses, ptr, key=lambda item: item[0]) - 1
        if index >= 0:
            address, block = self._addresses[index]
            if ptr + nbytes <= address + block.memory.size:
                return block, ptr - address
        self.violation(f"{what}: {ptr:#x} (+{nbytes} bytes) is not device memory of the pool")
        raise RecorderViolation(f"{what}: not device memory")

    def alloc_pinned_memory(self, nbytes: int) -> PinnedMemory:
        memory = PinnedMemory(int(nbytes))
        self.pinned_allocations += 1
        self._pinned[memory.ptr] = (int(nbytes), weakref.ref(memory))
        return memory

    def _pinned_owner(self, address: int, nbytes: int) -> Any:
        for start, (size, owner) in self._pinned.items():
            if start <= address and address + nbytes <= start + size and owner() is not None:
                return owner()
        return None

    # --- copies -------------------------------------------------------------------------------

    def host_to_device(self, pointer: MemoryPointer, source: int, nbytes: int,
                       stream: Stream | None, owner: Any) -> None:
        stream = stream or self.current_stream()
        self._check_sticky(runtime=True)
        block, offset = pointer.mem.block, pointer.offset
        pinned = self._pinned_owner(source, nbytes)
        if pinned is None:
            self.violation(f"copy_from_host_async on {stream} reads pageable host memory "
                           f"({nbytes} bytes at {source:#x}): CuPy requires pinned memory, and "
                           "from pageable memory the driver decides whether the bytes are "
                           "staged before the call returns")
        holder = pinned if pinned is not None else _base(owner)
        alive = weakref.ref(holder) if holder is not None else (lambda: None)
        digest = _digest(source, nbytes)

        def run() -> None:
            if alive() is None:  # its memory may be unmapped: never read it
                self.violation(f"a copy to the device on {stream} ran after the host buffer it "
                               f"reads ({nbytes} bytes) was freed")
                data = bytes([POISON]) * nbytes
            else:
                data = ctypes.string_at(source, nbytes)
                if _digest(source, nbytes) != digest:
                    self.violation(f"the host buffer a copy on {stream} reads ({nbytes} bytes) "
                                   "was changed after the copy was queued and before it ran")
            block.memory[offset:offset + nbytes] = np.frombuffer(data, np.uint8)

        self.issue(f"copy {nbytes} bytes host → device", stream, (block,), run)

    def device_to_host(self, pointer: MemoryPointer, destination: int, nbytes: int,
                       stream: Stream | None, owner: Any) -> None:
        stream = stream or self.current_stream()
        self._check_sticky(runtime=True)
        block, offset = pointer.mem.block, pointer.offset
        holder = self._pinned_owner(destination, nbytes) or _base(owner)
        if holder is None:
            self.violation(f"copy_to_host_async on {stream} writes host memory the recorder "
                           "cannot follow")
            return
        alive = weakref.ref(holder)
        ctypes.memset(destination, POISON, nbytes)  # not there until the copy has run

        def run() -> None:
            if alive() is None:
                self.violation(f"a copy to the host on {stream} ran after the host buffer it "
                               f"writes ({nbytes} bytes) was freed")
                return
            ctypes.memmove(destination, block.memory[offset:offset + nbytes].ctypes.data,
                           nbytes)

        self.issue(f"copy {nbytes} bytes device → host", stream, (block,), run)

    def memset(self, pointer: MemoryPointer, value: int, nbytes: int,
               stream: Stream | None) -> None:
        stream = stream or self.current_stream()
        block, offset = pointer.mem.block, pointer.offset

        def run() -> None:
            block.memory[offset:offset + nbytes] = value

        self.issue(f"memset {nbytes} bytes", stream, (block,), run)

    def memcpy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self._check_sticky(runtime=True)
        if kind != 3:
            self.violation(f"memcpyAsync of kind {kind}: nnfs-cuda copies host memory through "
                           "copy_from_host_async and get")
        target = self.stream_at(stream)
        (to, at), (frm, start) = (self.block_at(dst, nbytes, "memcpyAsync: dst"),
                                  self.block_at(src, nbytes, "memcpyAsync: src"))

        def run() -> None:
            to.memory[at:at + nbytes] = frm.memory[start:start + nbytes]

        self.issue(f"copy {nbytes} bytes device → device", target, (to, frm), run)

    # --- kernels ------------------------------------------------------------------------------

    def launch(self, function: Function, grid: tuple, block: tuple, args: tuple,
               stream: Stream | None) -> None:
        self._check_sticky(runtime=False)
        stream = stream or self.current_stream()
        name = function.kernel
        if function.device != self.current_device:
            self.violation(f"kernel {name} of device {function.device}'s module launched with "
                           f"device {self.current_device} current")
        signature = kernels.signatures()[name]
        if len(args) != len(signature):
            raise CUDADriverError(1)
        parameters, blocks = {}, []
        for (kind, pname), value in zip(signature, args, strict=True):
            if kind.endswith("*"):
                if not isinstance(value, FakeArray):
                    self.violation(f"kernel {name}: {pname} is not device memory")
                    return
                parameters[pname] = value.numpy()
                blocks.append(value.block)
            else:
                parameters[pname] = value
        grid_size, block_size = int(grid[0]), int(block[0])
        for pname, needed in _EXTENTS[name](grid=grid_size, block=block_size,
                                            **parameters).items():
            if parameters[pname].size < needed:
                self.violation(f"kernel {name} reads or writes {needed} elements of {pname}, "
                               f"which has {parameters[pname].size}")
        math = functools.partial(KERNEL_MATH[name], grid_size, block_size, **parameters)
        faulty, device = self.faults.kernel, self.current_device
        self.faults.kernel = False

        def run() -> None:
            if faulty:
                self.faults.sticky.add(device)  # the kernel read an illegal address
                return
            math()

        self.issue(f"kernel {name}", stream, tuple(dict.fromkeys(blocks)), run)

    # --- cuBLAS -------------------------------------------------------------------------------

    def cublas_create(self) -> int:
        self.handles.append(Handle(self.current_device, self.null_streams[self.current_device]))
        return len(self.handles)

    def _handle(self, handle: int) -> Handle:
        found = self.handles[handle - 1]
        if found.destroyed:
            raise CUBLASError(1)  # CUBLAS_STATUS_NOT_INITIALIZED
        return found

    def cublas_destroy(self, handle: int) -> None:
        self._handle(handle).destroyed = True

    def cublas_set_stream(self, handle: int, stream: int) -> None:
        self._handle(handle).stream = self.stream_at(stream)

    def cublas_set_pointer_mode(self, handle: int, mode: int) -> None:
        self._handle(handle).pointer_mode = mode

    def _blas_call(self, handle: int, routine: str) -> Handle:
        """What every CuPy cuBLAS wrapper does first: bind the handle to the current stream."""
        found = self._handle(handle)
        found.stream = self.current_stream()  # CuPy's _setStream(handle)
        if found.device != self.current_device:
            self.violation(f"cuBLAS {routine}: a handle of device {found.device} used with "
                           f"device {self.current_device} current")
        status, self.faults.cublas_status = self.faults.cublas_status, None
        if status is not None:
            raise CUBLASError(status)
        if self.current_device in self.faults.sticky:
            raise CUBLASError(CUBLAS_STATUS_EXECUTION_FAILED)
        if found.pointer_mode != 0:
            self.violation(f"cuBLAS {routine}: nnfs-cuda passes its scalars from the host, but "
                           "the handle is in device pointer mode")
        return found

    def _scalar(self, dtype: np.dtype, address: int) -> Any:
        return np.frombuffer(ctypes.string_at(address, dtype.itemsize), dtype)[0]

    def _operand(self, dtype: np.dtype, ptr: int, shape: tuple[int, int], ld: int,
                 what: str) -> tuple[np.ndarray, Block]:
        rows, cols = shape
        nbytes = (ld * (cols - 1) + rows) * dtype.itemsize if rows and cols else 0
        block, offset = self.block_at(ptr, nbytes, what)
        return column_major(block.typed(offset, dtype), shape, ld, what), block

    def _vector(self, dtype: np.dtype, ptr: int, n: int, inc: int, what: str):
        if inc != 1:
            self.violation(f"{what}: increment {inc}; nnfs-cuda's vectors are contiguous")
        block, offset = self.block_at(ptr, n * dtype.itemsize, what)
        return block.typed(offset, dtype)[:n], block

    def cublas_gemm(self, dtype, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb,
                    beta, C, ldc):
        found = self._blas_call(handle, "gemm")
        alpha, beta = self._scalar(dtype, alpha), self._scalar(dtype, beta)
        a, ablock = self._operand(dtype, A, (k, m) if transa else (m, k), lda, "gemm: A")
        b, bblock = self._operand(dtype, B, (n, k) if transb else (k, n), ldb, "gemm: B")
        c, cblock = self._operand(dtype, C, (m, n), ldc, "gemm: C")

        def run() -> None:
            product = alpha * ((a.T if transa else a) @ (b.T if transb else b))
            c[...] = product if beta == 0 else product + beta * c

        self.issue("cuBLAS gemm", found.stream, tuple(dict.fromkeys((ablock, bblock, cblock))),
                   run)

    def cublas_gemv(self, dtype, handle, trans, m, n, alpha, A, lda, x, incx, beta, y, incy):
        found = self._blas_call(handle, "gemv")
        alpha, beta = self._scalar(dtype, alpha), self._scalar(dtype, beta)
        a, ablock = self._operand(dtype, A, (m, n), lda, "gemv: A")
        xs, xblock = self._vector(dtype, x, m if trans else n, incx, "gemv: x")
        ys, yblock = self._vector(dtype, y, n if trans else m, incy, "gemv: y")

        def run() -> None:
            product = alpha * ((a.T if trans else a) @ xs)
            ys[...] = product if beta == 0 else product + beta * ys

        self.issue("cuBLAS gemv", found.stream, tuple(dict.fromkeys((ablock, xblock, yblock))),
                   run)

    def cublas_ger(self, dtype, handle, m, n, alpha, x, incx, y, incy, A, lda):
        found = self._blas_call(handle, "ger")
        alpha = self._scalar(dtype, alpha)
        xs, xblock = self._vector(dtype, x, m, incx, "ger: x")
        ys, yblock = self._vector(dtype, y, n, incy, "ger: y")
        a, ablock = self._operand(dtype, A, (m, n), lda, "ger: A")
        self.issue("cuBLAS ger", found.stream, tuple(dict.fromkeys((xblock, yblock, ablock))),
                   lambda: np.add(a, alpha * np.outer(xs, ys), out=a))

    def cublas_axpy(self, dtype, handle, n, alpha, x, incx, y, incy):
        found = self._blas_call(handle, "axpy")
        alpha = self._scalar(dtype, alpha)
        xs, xblock = self._vector(dtype, x, n, incx, "axpy: x")
        ys, yblock = self._vector(dtype, y, n, incy, "axpy: y")
        self.issue("cuBLAS axpy", found.stream, tuple(dict.fromkeys((xblock, yblock))),
                   lambda: np.add(ys, alpha * xs, out=ys))

    def cublas_scal(self, dtype, handle, n, alpha, x, incx):
        found = self._blas_call(handle, "scal")
        alpha = self._scalar(dtype, alpha)
        xs, xblock = self._vector(dtype, x, n, incx, "scal: x")
        self.issue("cuBLAS scal", found.stream, (xblock,), lambda: np.multiply(xs, alpha, out=xs))

    def cublas_nrm2(self, dtype, handle, n, x, incx, result):
        """Host pointer mode: cuBLAS returns once the result is written, so the host waits
        for the handle's stream up to the norm."""
        found = self._blas_call(handle, "nrm2")
        xs, xblock = self._vector(dtype, x, n, incx, "nrm2: x")
        def run() -> None:
            wide = xs.astype(np.float64)
            largest = float(np.max(np.abs(wide), initial=0.0))  # scaled, as cuBLAS's nrm2
            if largest != 0.0 and np.isfinite(largest):
                wide /= largest
                norm = largest * np.sqrt(np.dot(wide, wide))
            else:
                norm = largest
            value = np.array([norm], dtype)
            ctypes.memmove(result, value.ctypes.data, dtype.itemsize)

        operation = self.issue("cuBLAS nrm2", found.stream, (xblock,), run)
        self.wait(found.stream, operation, "cuBLAS nrm2 (host pointer mode)")

    # --- NCCL ---------------------------------------------------------------------------------

    def allreduce(self, communicator: NcclCommunicator, sendbuf: int, recvbuf: int, count: int,
                  datatype: int, op: int, stream: int) -> None:
        """Queued on ``stream`` like any operation; the recorder then runs that stream up to
        it at once (a sum that waited in one rank's queue while another rank waits in MPI
        could hang the job), which keeps the order of the stream."""
        from mpi4py import MPI

        if communicator.destroyed:
            raise NcclError(4, "allReduce on a destroyed communicator")
        dtype = {NCCL_FLOAT32: np.dtype(np.float32), NCCL_FLOAT64: np.dtype(np.float64)}.get(
            datatype)
        if dtype is None or op != NCCL_SUM:
            self.violation(f"ncclAllReduce with datatype {datatype} and op {op}")
            return
        target = self.stream_at(stream)
        source, sblock = self._vector(dtype, sendbuf, count, 1, "allReduce: sendbuf")
        result, rblock = self._vector(dtype, recvbuf, count, 1, "allReduce: recvbuf")

        def run() -> None:
            total = source.copy()
            communicator.comm.Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
            result[...] = total

        operation = self.issue("ncclAllReduce", target, tuple(dict.fromkeys((sblock, rblock))),
                               run)
        self.wait(target, operation, "ncclAllReduce", check=False)
        self.nccl_calls += 1

    # --- reading what happened ------------------------------------------------------------------

    def streams_used(self, since: int = 0) -> set[Stream]:
        return {op.stream for op in self.operations[since:]}

    def kinds(self, since: int = 0) -> list[str]:
        return [op.kind for op in self.operations[since:]]


def recorder_of(factory: Any) -> Recorder:
    """The recorder behind a CUDA factory built while one was installed."""
    return factory.backend._device._cupy.__recorder__
