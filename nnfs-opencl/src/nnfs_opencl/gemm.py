"""The matrix products (BLAS gemm) of the OpenCL backend, one class per way of computing them.

* :class:`BlockedGemm` (``kernels/gemm_blocked.cl``) — for CPU devices: one work-item per
  block of C, register micro-tiles as wide as the device's vectors.
* :class:`TiledGemm` (``kernels/gemm_tiled.cl``) — for GPUs: work-groups sharing tiles in
  local memory, the work-group shape taken from the device.
* :class:`ClblastGemm` — CLBlast through pyclblast, where it is installed.

``gemm="auto"`` (the default) takes the blocked kernel on CPU devices and the tiled one on any
other. Each class builds its program once, when the factory is created, and ``plan`` binds the
arguments of one product to a kernel of its own, so running the plan is one enqueue. The tiles
of the built-in kernels fit what their built kernels allow (see :mod:`nnfs_opencl.programs`),
not only the device's maximum work-group.

Layout: nnfs matrices are column-major windows (offset, rows, cols, leading dimension = rows).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

import nnfs

from .programs import build_fitting

if TYPE_CHECKING:
    from .backend import OpenclBackend

Plan = Callable[[], Any]

#: The ways to compute gemm, for the ``gemm`` option of the factory.
STRATEGIES = ("auto", "blocked", "tiled", "clblast")

#: Epochs that sgd may queue between two drains when the products are the built-in kernels,
#: which allocate nothing: a bound on the commands waiting in the queue (and on the host
#: memory a driver such as PoCL keeps for each) that costs one queue.finish() per 32 epochs.
QUEUED_EPOCHS = 32


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class _KernelGemm:
    """What the two built-in kernels share: building, binding and launching."""

    name = "?"
    source = "?"
    #: The factory's sync_every with this gemm: the kernels allocate nothing, so the queue
    #: only needs a bound.
    sync_every = QUEUED_EPOCHS

    def __init__(self, factory: OpenclBackend):
        self.factory = factory
        device = factory.device

        def options(limit: int) -> list[str]:
            parameters = self.choose_parameters(factory, limit)
            return [*factory.build_options, *(f"-D{k}={v}" for k, v in parameters.items())]

        def needed(limit: int) -> int:
            return self.group_size(self.choose_parameters(factory, limit))

        self.program, limit, self.allowed = build_fitting(
            factory.context, device.cl_device, device.name, self.source, options, needed,
            device.cl_device.max_work_group_size, f"the {self.name} gemm")
        self.parameters = self.choose_parameters(factory, limit)

    def choose_parameters(self, factory: OpenclBackend, limit: int) -> dict[str, int]:
        """The kernel's build parameters for work-groups of at most ``limit`` items."""
        raise NotImplementedError

    def group_size(self, parameters: dict[str, int]) -> int:
        """The work-items of one work-group launched with ``parameters``."""
        raise NotImplementedError

    def launch_shape(self, m: int, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
        raise NotImplementedError

    def plan(self, alpha: float, a, b, beta: float, c, trans_a: bool, trans_b: bool) -> Plan:
        import pyopencl as cl

        factory = self.factory
        real = factory.numpy_dtype.type
        m, n = c.rows, c.cols
        k = a.rows if trans_a else a.cols
        name = f"gemm_{'t' if trans_a else 'n'}{'t' if trans_b else 'n'}"
        kernel = cl.Kernel(self.program, name)
        (a_buffer, a_offset), (b_buffer, b_offset), (c_buffer, c_offset) = (
            a.handle, b.handle, c.handle)
        kernel.set_args(np.int32(m), np.int32(n), np.int32(k), real(alpha),
                        a_buffer, np.int64(a_offset), np.int32(a.rows),
                        b_buffer, np.int64(b_offset), np.int32(b.rows), real(beta),
                        c_buffer, np.int64(c_offset), np.int32(c.rows))
        global_size, local_size = self.launch_shape(m, n)
        return functools.partial(cl.enqueue_nd_range_kernel, factory.queue, kernel,
                                 global_size, local_size)

    def describe(self) -> str:
        shape = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
        return f"{self.name} ({shape})"


class BlockedGemm(_KernelGemm):
    """One work-item per BM × BN block of C, for CPU devices (see ``gemm_blocked.cl``)."""

    name = "blocked"
    source = "gemm_blocked.cl"

    def choose_parameters(self, factory: OpenclBackend, limit: int) -> dict[str, int]:
        device = factory.device.cl_device
        preferred = (device.preferred_vector_width_double if factory.dtype == "float64"
                     else device.preferred_vector_width_float)
        vw = preferred if preferred in (4, 8, 16) else 4
        vector_bytes = vw * factory.itemsize
        # registers: 32 vector registers of 64 bytes (AVX-512), else 16 (AVX2, SSE, NEON);
        # the micro-tile takes MV·NR of them, op(A)'s column MV and the broadcast one more
        if vector_bytes >= 64:
            mv, nr = 2, 8
        elif vector_bytes >= 32:
            mv, nr = 2, 6
        else:
            mv, nr = 2, 4
        mr = mv * vw
        mb, nb = max(1, 128 // mr), max(1, 128 // nr)  # blocks of about 128 × 128
        kc = 256
        while kc > 16 and (mb * mr + nb * nr) * kc * factory.itemsize > device.local_mem_size:
            kc //= 2
        return {"VW": vw, "MV": mv, "NR": nr, "MB": mb, "NB": nb, "KC": kc}

    def group_size(self, parameters: dict[str, int]) -> int:
        return 1  # one work-item per work-group: every kernel allows it

    def launch_shape(self, m: int, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
        p = self.parameters
        bm, bn = p["MB"] * p["MV"] * p["VW"], p["NB"] * p["NR"]
        return (_ceil_div(m, bm), _ceil_div(n, bn)), (1, 1)


class TiledGemm(_KernelGemm):
    """Work-groups sharing tiles in local memory, for GPUs (see ``gemm_tiled.cl``)."""

    name = "tiled"
    source = "gemm_tiled.cl"

    def choose_parameters(self, factory: OpenclBackend, limit: int) -> dict[str, int]:
        device = factory.device.cl_device
        side = 16  # the largest square work-group of at most limit items
        while side > 1 and side * side > limit:
            side //= 2
        mr = nr = 4
        kc = 16
        while kc > 1 and side * (mr + nr) * kc * factory.itemsize > device.local_mem_size:
            kc //= 2
        return {"TM": side, "TN": side, "MR": mr, "NR": nr, "KC": kc}

    def group_size(self, parameters: dict[str, int]) -> int:
        return parameters["TM"] * parameters["TN"]

    def launch_shape(self, m: int, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
        p = self.parameters
        tm, tn = p["TM"], p["TN"]
        return ((_ceil_div(m, tm * p["MR"]) * tm, _ceil_div(n, tn * p["NR"]) * tn), (tm, tn))


#: The last pyclblast release known to return CLBlast's event with a retain of its own.
#: CLBlast hands the caller the event of each call, owned; pyclblast wraps it with
#: ``pyopencl.Event.from_int_ptr(event)``, whose default ``retain=True`` adds a reference,
#: so the wrapper's release leaves one behind: one leaked cl_event per product (28.8 MB over
#: 20,000 epochs of an 8-16-3 network on PoCL). Up to this release the plan drops the
#: reference CLBlast handed over; a later release is trusted to have fixed it, and the
#: resident-memory test of the test suite tells if it has not.
PYCLBLAST_RETAINS_UP_TO = (1, 4)


def _pyclblast_leaks_events() -> bool:
    from importlib import metadata

    try:
        version = metadata.version("pyclblast")
    except metadata.PackageNotFoundError:  # imported from a build of its own: as released
        return True
    numbers = []
    for part in version.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        numbers.append(int(digits or 0))
    return tuple(numbers) <= PYCLBLAST_RETAINS_UP_TO


class ClblastGemm:
    """CLBlast's gemm through pyclblast (the ``clblast`` extra).

    pyclblast works in row-major order; a column-major m × n matrix is the row-major n × m
    matrix Cᵀ, so ``C = op(A)·op(B)`` is computed as ``Cᵀ = op(B)ᵀ·op(A)ᵀ``. CLBlast may
    allocate temporary buffers inside a call, which nnfs's allocation counter cannot see
    (the article's out-of-memory story); the factory drains its queue after every epoch
    with it (``sync_every = 1``), so they never pile up. Each call's event is released (see
    :data:`PYCLBLAST_RETAINS_UP_TO`).
    """

    name = "clblast"
    sync_every = 1

    def __init__(self, factory: OpenclBackend):
        try:
            import pyclblast
        except ImportError as error:
            raise nnfs.BackendUnavailable(
                f"gemm='clblast' needs pyclblast and the CLBlast library ({error}); install them "
                "with pip install 'nnfs-opencl[clblast]', or use the built-in gemm='auto'"
            ) from None
        self.pyclblast = pyclblast
        self.factory = factory
        self.parameters: dict[str, int] = {}
        self.releases_events = _pyclblast_leaks_events()

    def _array(self, matrix) -> Any:
        import pyopencl.array as cl_array

        buffer, _ = matrix.handle
        # pyclblast reads only the buffer and the number of dimensions of the array
        return cl_array.Array(self.factory.queue, (matrix.cols, matrix.rows),
                              self.factory.numpy_dtype, data=buffer)

    def plan(self, alpha: float, a, b, beta: float, c, trans_a: bool, trans_b: bool) -> Plan:
        import pyopencl as cl

        k = a.rows if trans_a else a.cols
        gemm = functools.partial(
            self.pyclblast.gemm, self.factory.queue, c.cols, c.rows, k,
            self._array(b), self._array(a), self._array(c), b.rows, a.rows, c.rows,
            alpha=alpha, beta=beta, a_transp=trans_b, b_transp=trans_a,
            a_offset=b.handle[1], b_offset=a.handle[1], c_offset=c.handle[1])
        if not self.releases_events:
            return gemm
        take = cl.Event.from_int_ptr

        def gemm_releasing_its_event() -> None:
            event = gemm()
            # a wrapper that owns CLBlast's reference (retain=False), dropped at once: with
            # pyclblast's own wrapper, the event's last two references are released
            take(event.int_ptr, retain=False)

        return gemm_releasing_its_event

    def describe(self) -> str:
        return "clblast"


def make_gemm(factory: OpenclBackend, strategy: str):
    """The gemm object of ``strategy`` (one of STRATEGIES) for ``factory``."""
    if strategy == "auto":
        strategy = "blocked" if factory.device.is_cpu else "tiled"
    return {"blocked": BlockedGemm, "tiled": TiledGemm, "clblast": ClblastGemm}[strategy](factory)


def clblast_available() -> bool:
    """True if pyclblast can be imported here."""
    try:
        import pyclblast  # noqa: F401
    except ImportError:
        return False
    return True
