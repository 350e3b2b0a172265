"""The OpenCL backend: nnfs's backend contract on pyopencl.

Layout. Every matrix and vector is a contiguous window of one ``pyopencl.Buffer``; its handle
is ``(buffer, offset)``, the offset in elements. Kernels take the buffer and the offset, so a
column view costs nothing (OpenCL sub-buffers would need aligned offsets).

Kernels. ``kernels/elementwise.cl`` (BLAS levels 1 and 2, activations, costs, reductions) and
one gemm program (see :mod:`nnfs_opencl.gemm`) are built once, when the factory is created.

Plans. Each operation returns a plan: a function of no arguments that enqueues a kernel whose
arguments were set in advance (each plan has its own kernel object, so plans never disturb
each other's arguments). The training loop keeps those functions: an epoch is a sequence of
enqueues, and sgd drains the queue (``finish``) every ``sync_every`` epochs: every epoch with
CLBlast, which may allocate inside a call, every :data:`~nnfs_opencl.gemm.QUEUED_EPOCHS` with
the built-in kernels, which do not. The factory's one-off calls make a plan and run it.

Numbers that change every step (an optimizer's learning rate and bias corrections, dropout's
step and first sample) are set as kernel arguments each time the plan queues its kernel: OpenCL
copies an argument's value when it is set and a queued kernel keeps the values it was queued
with, so core may rewrite its host array as soon as the plan returns.

Memory. Buffers are zero-filled when allocated and the queue is drained there, so a driver
that commits memory lazily reports a failure at once, as :class:`nnfs.OutOfDeviceMemory`.
The reductions (nrm2, costs) write their partial results per work-group into a buffer
allocated with the factory, and the host combines them: nothing is allocated while training.
nrm2 keeps its sum of squares scaled by the largest entry, as reference BLAS does, so it
neither overflows nor underflows for any finite entries.

Errors. Whatever the driver reports while building, enqueueing, copying or waiting becomes an
nnfs error naming the operation and the device (:meth:`OpenclBackend._device_error`): a
refused allocation is :class:`nnfs.OutOfDeviceMemory`; ``CL_OUT_OF_RESOURCES``, which may be
memory or, on NVIDIA's driver, a kernel's fault reported at a later command or wait, is an
:class:`nnfs.DeviceError` that says both; anything else is an :class:`nnfs.DeviceError`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyopencl as cl

import nnfs
from nnfs import Matrix, Vector, backend_api as api
from nnfs.backend_api import Hyper, MemoryLimits
from nnfs.philox import keep_scale, threshold

from .device import select_device
from .gemm import STRATEGIES, make_gemm
from .plugin import DTYPES
from .programs import build_fitting

Plan = Callable[[], Any]

#: The largest work-group the element-wise kernels use (a power of two).
MAX_GROUP = 256

#: Partial results per work-group that a reduction may write: nrm2 writes three.
PARTIALS_PER_GROUP = 3

#: OpenCL errors that mean "not enough memory" (the driver's words for OutOfDeviceMemory).
_MEMORY_ERRORS = ("MEM_OBJECT_ALLOCATION_FAILURE", "OUT_OF_HOST_MEMORY", "INVALID_BUFFER_SIZE")

#: The error that may be memory or a kernel's fault (NVIDIA reports both this way).
_OUT_OF_RESOURCES = "OUT_OF_RESOURCES"


def _nothing() -> None:
    return None


def _power_of_two_at_most(limit: int, cap: int) -> int:
    size = 1
    while size * 2 <= min(limit, cap):
        size *= 2
    return size


def _status(error: Exception) -> str | None:
    """The name of the OpenCL status that ``error`` reports, among those nnfs tells apart
    (by its code, else by the words of its message, as CLBlast's errors have them)."""
    names = (*_MEMORY_ERRORS, _OUT_OF_RESOURCES)
    code = getattr(error, "code", None)
    for name in names:
        if code is not None and code == getattr(cl.status_code, name, None):
            return name
    text = str(error)
    return next((name for name in names if name in text), None)


def _from_driver(error: Exception) -> bool:
    """Whether ``error`` is the OpenCL driver's (pyopencl's errors, pyclblast's RuntimeError)."""
    return isinstance(error, cl.Error) or str(error).startswith("PyCLBlast")


def _guarded(call: Plan, operation: str, backend: OpenclBackend) -> Plan:
    """``call``, with an error of the driver's that it raises made an nnfs error naming
    ``operation`` and the device."""

    def run() -> Any:
        try:
            return call()
        except Exception as error:
            if not _from_driver(error):
                raise
            raise backend._device_error(error, operation) from None

    return run


def _combine_scaled(scales: np.ndarray, sums: np.ndarray, unusual: np.ndarray) -> float:
    """The norm from the pairs of ``nrm2_scaled`` (group g's squares are scales[g]²·sums[g])
    and the sums of the non-finite entries' magnitudes (inf or NaN, which win)."""
    odd = float(unusual.sum())
    if odd != 0.0:  # also when NaN
        return odd
    largest = float(scales.max())
    if largest == 0.0:
        return 0.0
    return largest * math.sqrt(float(np.dot(sums, np.square(scales / largest))))


class OpenclBackend(api.Backend):
    """nnfs's backend on one OpenCL device, with its own context and in-order queue.

    Options (``nnfs.backend("opencl", device=..., gemm=...)``):

    * ``device`` — a number, ``"platform:device"`` or part of a device or platform name; by
      default ``NNFS_OPENCL_DEVICE``, else the first GPU, else the first device.
    * ``gemm`` — ``"auto"`` (the built-in kernel for the device's kind), ``"blocked"`` (the
      CPU kernel), ``"tiled"`` (the GPU kernel) or ``"clblast"`` (needs pyclblast).
    """

    name = "opencl"
    dtypes = DTYPES  # float64 where the device has cl_khr_fp64

    def __init__(self, dtype: object = "float32", device: object = None, gemm: str = "auto"):
        super().__init__(dtype)
        # enqueued kernels run later, and a read waits for the queue; how often sgd drains it
        # comes from the gemm, once it is chosen (below)
        self.capabilities = api.Capabilities(asynchronous=True, sync_every=1)
        if gemm not in STRATEGIES:
            raise nnfs.NnfsValueError(
                f"the opencl backend's gemm option must be one of {', '.join(STRATEGIES)}, "
                f"got {gemm!r}")
        self.device = select_device(device)
        if self.dtype == "float64" and not self.device.supports_float64:
            raise nnfs.UnsupportedOperation(
                f"the OpenCL device {self.device.name} ({self.device.platform_name}) does not "
                "support float64 (it lacks cl_khr_fp64); use float32, or choose another device "
                "with the device option or NNFS_OPENCL_DEVICE")
        cl_device = self.device.cl_device
        self.context = cl.Context([cl_device])
        self.queue = cl.CommandQueue(self.context, cl_device)
        self.build_options = ["-Dreal=" + ("double" if self.dtype == "float64" else "float")]
        if self.dtype == "float64":
            self.build_options.append("-DUSE_DOUBLE")
        # the work-group of every element-wise kernel and reduction: a power of two that the
        # device and each built kernel allow (CL_KERNEL_WORK_GROUP_SIZE), at most MAX_GROUP
        def group(limit: int) -> int:
            return _power_of_two_at_most(limit, MAX_GROUP)

        self.program, limit, self.group_limit = build_fitting(
            self.context, cl_device, self.device.name, "elementwise.cl",
            lambda limit: [*self.build_options, f"-DGROUP={group(limit)}"], group,
            cl_device.max_work_group_size, "the element-wise kernels")
        self.group = group(limit)
        self.gemm_strategy = make_gemm(self, gemm)
        # CLBlast may allocate inside a call: drain every epoch, as the article had to; the
        # built-in kernels allocate nothing: drain every QUEUED_EPOCHS, a bound on the queue
        self.capabilities = api.Capabilities(asynchronous=True,
                                             sync_every=self.gemm_strategy.sync_every)
        # the partial results of each work-group of a reduction, combined on the host
        self._reduction_groups = min(256, 4 * cl_device.max_compute_units)
        partials = PARTIALS_PER_GROUP * self._reduction_groups
        self._partial = self.allocate(partials)
        self.memory.allocated(partials * self.itemsize)
        self._partial_host = np.zeros(partials, dtype=self.numpy_dtype)

    # --- memory -----------------------------------------------------------------------------

    def allocate(self, size: int) -> cl.Buffer:
        nbytes = size * self.itemsize
        buffer = None
        try:
            buffer = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, nbytes)
            cl.enqueue_fill_buffer(self.queue, buffer, np.zeros(1, self.numpy_dtype), 0, nbytes)
            self.queue.finish()  # a driver that allocates lazily fails here, not in an epoch
        except cl.Error as error:
            if buffer is not None:
                buffer.release()
            if _status(error) not in _MEMORY_ERRORS:  # OUT_OF_RESOURCES may be a kernel's
                raise self._device_error(error, f"allocating {nbytes} bytes") from None
            limits = self.memory_limits()
            raise nnfs.OutOfDeviceMemory(
                f"{self.describe()}: the driver refused {nbytes} bytes ({error}); the device "
                f"has {limits.total_bytes} bytes available and allows "
                f"{limits.max_allocation_bytes} bytes in one allocation",
                nbytes, limits.total_bytes) from None
        return buffer

    def _device_error(self, error: Exception, operation: str) -> nnfs.NnfsError:
        """The nnfs error for ``error``, which the OpenCL driver (or CLBlast) raised during
        ``operation``: it names the operation and the device, and says what it may be."""
        where = f"{operation} on {self.describe()}"
        text = " ".join(str(error).split())
        later = ("OpenCL runs commands after they are queued, so the command at fault may be "
                 "one queued before this call")
        status = _status(error)
        if status == _OUT_OF_RESOURCES:
            return nnfs.DeviceError(
                f"{where}: the OpenCL driver reported CL_OUT_OF_RESOURCES ({text}). The "
                "device may have run out of memory or of another resource for a command, or a "
                "kernel may have faulted: NVIDIA's OpenCL driver reports an out-of-bounds "
                f"access this way, at the next command or wait ({later}). A smaller network "
                "or batch tells the first from the second")
        if status in _MEMORY_ERRORS:
            available = self.memory_limits().total_bytes
            return nnfs.OutOfDeviceMemory(
                f"{where}: the OpenCL driver could not allocate device memory ({text}); "
                f"{available} bytes of the device's memory are not held by this factory",
                None, available)
        return nnfs.DeviceError(f"{where}: the OpenCL driver failed it ({text}); {later}")

    def free(self, storage: cl.Buffer) -> None:
        storage.release()  # OpenCL frees it once the commands that use it have finished

    def matrix_view(self, storage: cl.Buffer, offset: int, rows: int, cols: int) -> tuple:
        return (storage, offset)

    def vector_view(self, storage: cl.Buffer, offset: int, size: int) -> tuple:
        return (storage, offset)

    def memory_limits(self) -> MemoryLimits:
        """The device's global memory less what this factory holds, and its largest single
        allocation (CL_DEVICE_MAX_MEM_ALLOC_SIZE)."""
        device = self.device.cl_device
        available = max(0, device.global_mem_size - self.memory.bytes_in_use)
        return MemoryLimits(available, device.max_mem_alloc_size)

    def describe(self) -> str:
        strategy = getattr(self, "gemm_strategy", None)  # None while __init__ runs
        if strategy is None:
            return f"opencl {self.dtype}"
        return (f"opencl {self.dtype} on {self.device.name} ({self.device.platform_name}, "
                f"gemm {strategy.name})")

    def release(self) -> None:
        try:
            self._finish("release (waiting for the queued work)")
        finally:
            self._partial.release()
            self.memory.freed(PARTIALS_PER_GROUP * self._reduction_groups * self.itemsize)

    def _finish(self, operation: str) -> None:
        try:
            self.queue.finish()
        except cl.Error as error:
            raise self._device_error(error, operation) from None

    def _blocking_copy(self, operation: str, destination: Any, source: Any, **offset) -> None:
        """One blocking ``enqueue_copy`` between the host and the device."""
        try:
            cl.enqueue_copy(self.queue, destination, source, is_blocking=True, **offset)
        except cl.Error as error:
            raise self._device_error(error, operation) from None

    def read(self, x: Matrix | Vector) -> np.ndarray:
        buffer, offset = x.handle
        host = np.empty(x.size, dtype=self.numpy_dtype)
        self._blocking_copy(f"reading a {x.shape_text} back", host, buffer,
                            src_offset=offset * self.itemsize)
        if isinstance(x, Matrix):  # column by column on the device
            return np.ascontiguousarray(host.reshape(x.cols, x.rows).T)
        return host

    def write(self, host: np.ndarray, x: Matrix | Vector) -> None:
        buffer, offset = x.handle
        flat = np.ascontiguousarray(host.T if isinstance(x, Matrix) else host).reshape(-1)
        self._blocking_copy(f"writing a {x.shape_text}", buffer, flat,
                            dst_offset=offset * self.itemsize)

    def write_samples(self, host: np.ndarray, x: Matrix) -> None:
        # one sample per row on the host is one sample per column on the device: the same bytes
        buffer, offset = x.handle
        flat = np.ascontiguousarray(host, dtype=self.numpy_dtype)  # no copy from fit's buffers
        self._blocking_copy(f"writing a batch of {x.cols} samples", buffer, flat,
                            dst_offset=offset * self.itemsize)

    def read_samples(self, x: Matrix, out: np.ndarray) -> None:
        if not out.flags.c_contiguous or out.dtype != self.numpy_dtype:
            super().read_samples(x, out)
            return
        buffer, offset = x.handle
        self._blocking_copy(f"reading a batch of {x.cols} samples back", out, buffer,
                            src_offset=offset * self.itemsize)

    def synchronize(self) -> None:
        self._finish("synchronize (waiting for the queued work)")

    # --- launching --------------------------------------------------------------------------

    def _real(self, value: float) -> np.generic:
        return self.numpy_dtype.type(value)

    def _launch(self, name: str, items: int, *arguments: Any) -> Plan:
        """A plan that runs kernel ``name`` on ``items`` work-items (rounded up to whole
        work-groups), with ``arguments`` bound to a kernel object of its own."""
        kernel = cl.Kernel(self.program, name)
        kernel.set_args(*arguments)
        size = -(-items // self.group) * self.group
        enqueue = functools.partial(cl.enqueue_nd_range_kernel, self.queue, kernel, (size,),
                                    (self.group,))
        return _guarded(enqueue, f"the kernel {name}", self)

    def _window(self, x: Matrix | Vector) -> tuple[cl.Buffer, np.int64]:
        buffer, offset = x.handle
        return buffer, np.int64(offset)

    def _partials(self, reduction: Plan, count: int) -> np.ndarray:
        """Run a reduction and read the first ``count`` partial results back, in float64."""
        reduction()
        host = self._partial_host[:count]
        self._blocking_copy("reading a reduction's partial results back", host, self._partial)
        return host.astype(np.float64)

    def _total(self, reduction: Plan) -> float:
        """Run a reduction that writes one partial sum per group, and add them up."""
        return float(self._partials(reduction, self._reduction_groups).sum())

    def _reduction(self, name: str, *arguments: Any) -> Plan:
        return self._launch(name, self._reduction_groups * self.group, *arguments,
                            self._partial)

    # --- plans ------------------------------------------------------------------------------

    def gemm(self, alpha, a, b, beta, c, trans_a, trans_b) -> Plan:
        plan = self.gemm_strategy.plan(alpha, a, b, beta, c, trans_a, trans_b)
        return _guarded(plan, f"gemm ({self.gemm_strategy.name})", self)

    def gemv(self, alpha, a, x, beta, y, trans) -> Plan:
        arguments = (np.int32(a.rows), np.int32(a.cols), self._real(alpha), *self._window(a),
                     *self._window(x), self._real(beta), *self._window(y))
        if trans:  # one work-group per column of A
            return self._launch("gemv_t", a.cols * self.group, *arguments)
        return self._launch("gemv_n", a.rows, *arguments)

    def rank1_update(self, alpha, x, y, a) -> Plan:
        return self._launch("rank1_update", a.size, np.int64(a.size), np.int32(a.rows),
                            self._real(alpha), *self._window(x), *self._window(y),
                            *self._window(a))

    def axpy(self, alpha, x, y) -> Plan:
        return self._launch("axpy", x.size, np.int64(x.size), self._real(alpha),
                            *self._window(x), *self._window(y))

    def scal(self, alpha, x) -> Plan:
        return self._launch("scal", x.size, np.int64(x.size), self._real(alpha),
                            *self._window(x))

    def copy(self, x, y) -> Plan:
        (source, source_offset), (target, target_offset) = x.handle, y.handle
        if source is target and source_offset == target_offset:
            return _nothing  # a window onto itself, which clEnqueueCopyBuffer refuses
        copy = functools.partial(cl.enqueue_copy, self.queue, target, source,
                                 byte_count=x.size * self.itemsize,
                                 src_offset=source_offset * self.itemsize,
                                 dst_offset=target_offset * self.itemsize)
        return _guarded(copy, "copy", self)

    def fill(self, x, value) -> Plan:
        return self._launch("fill", x.size, np.int64(x.size), *self._window(x),
                            self._real(value))

    def nrm2(self, x) -> Plan:
        pairs = self._reduction("nrm2_scaled", np.int64(x.size), *self._window(x))
        groups = self._reduction_groups

        def nrm2() -> float:
            partial = self._partials(pairs, PARTIALS_PER_GROUP * groups)
            return _combine_scaled(*partial.reshape(PARTIALS_PER_GROUP, groups))

        return nrm2

    def sub(self, x, y, out) -> Plan:
        return self._launch("sub", x.size, np.int64(x.size), *self._window(x),
                            *self._window(y), *self._window(out))

    def mul(self, x, y, out) -> Plan:
        return self._launch("mul", x.size, np.int64(x.size), *self._window(x),
                            *self._window(y), *self._window(out))

    def activation(self, kind, z, bias, out) -> Plan:
        # without a bias the kernel gets z in its place and never reads it as one
        b = self._window(z if bias is None else bias)
        items = z.cols if kind == "softmax" else z.size  # softmax: one work-item per column
        return self._launch(f"activation_{kind}", items, np.int64(z.size), np.int32(z.rows),
                            *self._window(z), *b, np.int32(bias is not None),
                            *self._window(out))

    def activation_backward(self, kind, a, delta) -> Plan:
        if kind == "linear":
            return _nothing
        items = a.cols if kind == "softmax" else a.size
        return self._launch(f"activation_backward_{kind}", items, np.int64(a.size),
                            np.int32(a.rows), *self._window(a), *self._window(delta))

    def cost_sum(self, kind, y, a) -> Plan:
        eps = self._real(np.finfo(self.numpy_dtype).eps)
        terms = self._reduction(f"cost_{kind}", np.int64(a.size), *self._window(y),
                                *self._window(a), eps)
        return functools.partial(self._total, terms)

    # --- training beyond plain SGD ----------------------------------------------------------

    #: The kernel arguments of optimizer_step that a step's host array sets, in order, and the
    #: entry of the host array each comes from: η, λ, μ, β₁, β₂, ε, α, c.
    _HYPER_ARGUMENTS = (Hyper.ETA, Hyper.WEIGHT_DECAY, Hyper.MOMENTUM, Hyper.BETA1,
                        Hyper.BETA2, Hyper.EPS, Hyper.STEP_SIZE, Hyper.ROOT_CORRECTION)

    def optimizer_step(self, kind, parameters, gradient, state, decay, hyper) -> Plan:
        kernel = cl.Kernel(self.program, f"optimizer_{kind}")
        moments = [*state, parameters, parameters][:2]  # unkept state: p, never touched
        fixed = (np.int64(parameters.size), *self._window(parameters), *self._window(gradient),
                 *self._window(moments[0]), *self._window(moments[1]),
                 *self._window(parameters if decay is None else decay),
                 np.int32(decay is not None))
        kernel.set_args(*fixed, *(self._real(0.0) for _ in self._HYPER_ARGUMENTS))
        first, real, slots = len(fixed), self.numpy_dtype.type, self._HYPER_ARGUMENTS
        size = -(-parameters.size // self.group) * self.group
        queue, group = self.queue, (self.group,)

        def run() -> None:
            for index, slot in enumerate(slots, first):  # this step's numbers, captured now
                kernel.set_arg(index, real(hyper[slot]))
            cl.enqueue_nd_range_kernel(queue, kernel, (size,), group)

        return run

    def dropout_mask(self, mask, rate, seed, layer, counter) -> Plan:
        kernel = cl.Kernel(self.program, "dropout_mask")
        fixed = (np.int64(mask.size), np.int64(mask.rows), *self._window(mask),
                 np.uint32(seed), np.uint32(layer), np.uint64(threshold(rate)),
                 self._real(keep_scale(rate, self.numpy_dtype)))
        kernel.set_args(*fixed, np.uint64(0), np.uint64(0))
        blocks = mask.size // 4 + 2  # the blocks of the entries, whatever the first's word
        size = -(-blocks // self.group) * self.group
        queue, group, step_at = self.queue, (self.group,), len(fixed)

        def run() -> None:
            kernel.set_arg(step_at, np.uint64(counter[0]))  # this step's, captured now
            kernel.set_arg(step_at + 1, np.uint64(counter[1]))
            cl.enqueue_nd_range_kernel(queue, kernel, (size,), group)

        return run
