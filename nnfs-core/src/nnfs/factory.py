"""The factory contract: what a backend provides, and the operations on its matrices and vectors.

A :class:`Factory` owns memory on one device for one dtype. It allocates matrices and vectors,
moves data between them and the host, and runs the operations the networks are written with:
BLAS-style linear algebra (``gemm``, ``gemv``, ``rank1_update``, ``axpy``...), the vector math of
the activations and costs, and ``synchronize``.

Two tiers sit in one class:

* the **public methods** (``gemm``, ``matrix``...) check every argument, raise an
  :class:`nnfs.NnfsError` naming what is wrong, and only then call
* the **backend methods**, whose names start with an underscore (``_gemm``, ``_allocate``...).
  A backend subclasses :class:`Factory` and implements these. They receive arguments that were
  already checked: shapes agree, every matrix is live and belongs to this factory, scalars are
  finite floats. They do not check again. The training loop calls them directly.

Layout. A matrix is ``rows × cols`` with one sample per column (as in the article), a window
of one buffer (see :mod:`nnfs.arrays`). A backend stores whatever it needs per window in
``handle`` (a numpy view, a device pointer and offset...), created by
``_matrix_handle``/``_vector_handle``.
"""

from __future__ import annotations

import abc
import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import _checks as check
from ._args import dtype_name, format_bytes
from .arrays import Buffer, Matrix, Vector
from .kinds import ActivationKind, CostKind, DeltaKind, Operation
from .errors import (
    NnfsTypeError,
    NnfsValueError,
    OutOfDeviceMemory,
    ShapeError,
    UnsupportedOperation,
)

def _steps(plan: Callable[[], Any] | list[Callable[[], Any]]) -> list[Callable[[], Any]]:
    """A plan (one function, or a list of them to call in order) as a list."""
    return list(plan) if isinstance(plan, (list, tuple)) else [plan]


def _run_plan(plan: Callable[[], Any] | list[Callable[[], Any]]) -> None:
    for step in _steps(plan):
        step()


@dataclass(frozen=True)
class MemoryStats:
    """What a factory has allocated, for tests and benchmarks.

    ``allocations`` counts every device allocation the factory has made (never decreases), so a
    test can read it before and after some epochs and require no change. ``bytes_in_use`` is what
    live buffers hold now and ``peak_bytes`` the most they ever held. ``synchronizations``
    counts ``synchronize()`` calls.
    """

    allocations: int
    bytes_in_use: int
    peak_bytes: int
    synchronizations: int


@dataclass(frozen=True)
class MemoryLimits:
    """How much memory a device offers: in all, and in one allocation (None: unknown)."""

    total_bytes: int | None
    max_allocation_bytes: int | None


def _supported(operation: Operation) -> Callable:
    """Decorate a public operation so that it first refuses when the backend does not have it."""

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def checked(self: Factory, *args: Any, **kwargs: Any) -> Any:
            if operation in self.unsupported:
                raise UnsupportedOperation(
                    f"the {self.name} backend does not provide {operation}() "
                    f"(it declares it unsupported)"
                )
            check.live(self, f"the {self.name} factory")
            return method(self, *args, **kwargs)

        return checked

    return decorate


class Factory(abc.ABC):
    """Base class of every backend's factory: memory of one dtype on one device, and the
    operations on it.

    Subclasses set the capability constants below and implement the abstract underscore
    methods. See the module docstring for the two tiers and the memory layout, and
    ``examples/nnfs-reference-backend`` in the nnfs repository for the smallest complete backend.
    """

    #: The backend name this factory belongs to ("cpu", "opencl"...).
    name: ClassVar[str] = "?"
    #: The dtypes this backend can work in.
    dtypes: ClassVar[tuple[str, ...]] = ("float32",)
    #: How often the training loop must drain the device's queue: every this many epochs, or 0
    #: when it never needs to (work is synchronous, or the queue copes with any amount of work).
    #: Results are always synchronised where they are read.
    sync_every: ClassVar[int] = 0
    #: True when operations are queued and results arrive later (GPUs): reading a number back
    #: then waits for the queue. sgd on a synchronous backend (False) reads each epoch's cost,
    #: which is free there; on an asynchronous one it reads costs only every ``sync_every``
    #: epochs (or only at the end), and keeps a copy of the parameters to roll back to.
    asynchronous: ClassVar[bool] = False
    #: True when ``gemm`` and ``gemv`` with β = 1 add the product into their output in the
    #: same pass that computes it (one BLAS call), so that ``W += δ·aᵀ`` costs no more than
    #: the product alone. The single-process training loop then updates each layer's weights
    #: inside the product that makes their gradient, instead of writing the gradient and adding
    #: it in a second pass; both give the same numbers up to rounding.
    accumulates: ClassVar[bool] = False
    #: Operations (``nnfs.kinds.Operation``) the backend does not provide; calling one raises
    #: ``UnsupportedOperation``.
    unsupported: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, dtype: object = "float32"):
        dtype = dtype_name(dtype)
        if dtype not in self.dtypes:
            raise UnsupportedOperation(
                f"the {self.name} backend does not support {dtype}; it supports "
                f"{', '.join(self.dtypes)}"
            )
        self.dtype = dtype
        self.numpy_dtype = np.dtype(dtype)
        self.itemsize = self.numpy_dtype.itemsize
        self._allocations = 0
        self._bytes_in_use = 0
        self._peak_bytes = 0
        self._synchronizations = 0
        self._released = False
        self._buffers: weakref.WeakSet[Buffer] = weakref.WeakSet()

    # --- what a backend implements ----------------------------------------------------------

    @abc.abstractmethod
    def _allocate(self, size: int) -> Any:
        """Allocate ``size`` elements of ``self.dtype``, zero-filled; return the storage object.

        Raise :class:`nnfs.OutOfDeviceMemory` when the device refuses (a ``MemoryError`` is
        turned into one by the caller).
        """

    def _free(self, storage: Any) -> None:
        """Give ``storage`` back to the device. The default drops the reference."""

    @abc.abstractmethod
    def _matrix_handle(self, storage: Any, offset: int, rows: int, cols: int) -> Any:
        """What the backend wants to keep for a ``rows × cols`` column-major window of
        ``storage`` starting ``offset`` elements in (a numpy view, a pointer and offset...)."""

    @abc.abstractmethod
    def _vector_handle(self, storage: Any, offset: int, size: int) -> Any:
        """Like ``_matrix_handle``, for ``size`` consecutive elements."""

    @abc.abstractmethod
    def _read(self, x: Matrix | Vector) -> np.ndarray:
        """A new host array: ``rows × cols`` in C order for a matrix, 1-D for a vector."""

    @abc.abstractmethod
    def _write(self, host: np.ndarray, x: Matrix | Vector) -> None:
        """Copy ``host`` (C-ordered, ``x``'s shape and dtype) into ``x``."""

    def _write_samples(self, host: np.ndarray, x: Matrix) -> None:
        """Copy ``host``, C-ordered ``x.cols × x.rows`` (one sample per row, as in numpy and
        scikit-learn), into ``x``: row j of host becomes column j of x.

        That is the very memory layout of a column-major matrix, so a backend can copy the
        bytes as they are; the default goes through ``_write`` with a transposed copy.
        """
        self._write(np.ascontiguousarray(host.T), x)

    def _read_samples(self, x: Matrix, out: np.ndarray) -> None:
        """Copy ``x`` into ``out``, a C-ordered ``x.cols × x.rows`` host array (one sample per
        row). The default goes through ``_read``."""
        out[...] = self._read(x).T

    @abc.abstractmethod
    def _gemm(self, alpha: float, a: Matrix, b: Matrix, beta: float, c: Matrix,
              trans_a: bool, trans_b: bool) -> None:
        """``c ← alpha·op(a)·op(b) + beta·c``, op transposing when asked (BLAS gemm). When
        beta is 0, ``c``'s old contents are ignored (even NaN)."""

    @abc.abstractmethod
    def _gemv(self, alpha: float, a: Matrix, x: Vector, beta: float, y: Vector,
              trans: bool) -> None:
        """``y ← alpha·op(a)·x + beta·y`` (BLAS gemv); beta 0 ignores ``y``'s contents."""

    @abc.abstractmethod
    def _rank1_update(self, alpha: float, x: Vector, y: Vector, a: Matrix) -> None:
        """``a ← a + alpha·x·yᵀ`` (BLAS ger)."""

    @abc.abstractmethod
    def _axpy(self, alpha: float, x: Matrix | Vector, y: Matrix | Vector) -> None:
        """``y ← alpha·x + y`` (BLAS axpy), elementwise over equal shapes."""

    @abc.abstractmethod
    def _scal(self, alpha: float, x: Matrix | Vector) -> None:
        """``x ← alpha·x`` (BLAS scal)."""

    @abc.abstractmethod
    def _copy(self, x: Matrix | Vector, y: Matrix | Vector) -> None:
        """``y ← x`` (BLAS copy)."""

    @abc.abstractmethod
    def _fill(self, x: Matrix | Vector, value: float) -> None:
        """Set every entry of ``x`` to ``value``."""

    @abc.abstractmethod
    def _nrm2(self, x: Matrix | Vector) -> float:
        """The Euclidean norm of all entries (BLAS nrm2), as a Python float."""

    @abc.abstractmethod
    def _sub(self, x: Matrix | Vector, y: Matrix | Vector, out: Matrix | Vector) -> None:
        """``out ← x − y`` elementwise; ``out`` may be ``x`` or ``y``."""

    @abc.abstractmethod
    def _mul(self, x: Matrix | Vector, y: Matrix | Vector, out: Matrix | Vector) -> None:
        """``out ← x ⊙ y`` elementwise; ``out`` may be ``x`` or ``y``."""

    @abc.abstractmethod
    def _activation(self, kind: str, z: Matrix, bias: Vector | None, out: Matrix) -> None:
        """``out ← f(z + bias·1ᵀ)`` for the activation ``kind`` of ``ActivationKind``.

        ``bias`` (one entry per row) may be None. ``out`` may be ``z``. ``softmax`` normalises
        each column: ``out[:, j] = exp(s_j) / Σ exp(s_j)`` with ``s_j = z[:, j] + bias``,
        computed without overflow.
        """

    @abc.abstractmethod
    def _activation_backward(self, kind: str, a: Matrix, delta: Matrix) -> None:
        """``delta ← delta ⊙ f'(z)``, the derivative expressed through the output ``a = f(z)``.

        linear: 1; sigmoid: a(1 − a); tanh: 1 − a²; relu: 1 where a > 0, else 0. softmax,
        whose Jacobian is not diagonal, takes each column ``g`` of ``delta`` to
        ``a ⊙ (g − (aᵀg))``. ``a`` is left unchanged.
        """

    def _cost_delta(self, kind: str, activation: str, scale: float, y: Matrix, a: Matrix,
                    out: Matrix) -> None:
        """``out ← scale · ∂ℓ/∂z`` of an output layer of ``activation`` with ``a = f(z)``:

        quadratic: ``scale·(a − y) ⊙ f'(z)``; cross_entropy (sigmoid or softmax outputs):
        ``scale·(a − y)``. The default composes ``_sub``, ``_scal`` and ``_activation_backward``;
        a backend may fuse it.
        """
        self._sub(a, y, out)
        self._scal(scale, out)
        if kind == "quadratic":
            self._activation_backward(activation, a, out)

    @abc.abstractmethod
    def _cost_sum(self, kind: str, y: Matrix, a: Matrix) -> float:
        """The sum over all entries of a cost's terms, as a Python float:

        quadratic: Σ (a − y)²; binary_cross_entropy: −Σ [y·ln a + (1 − y)·ln(1 − a)];
        categorical_cross_entropy: −Σ y·ln a; with ``a`` clipped to
        ``[eps, 1 − eps]``, ``eps = numpy.finfo(dtype).eps``, inside the logarithms.
        """

    def _synchronize(self) -> None:
        """Wait until every operation queued so far has finished. Default: nothing to wait for."""

    def memory_limits(self) -> MemoryLimits:
        """The device's memory: total bytes available and the largest single allocation.

        Networks check what they need against this before allocating anything. The default
        says nothing is known; device backends override it.
        """
        return MemoryLimits(None, None)

    def describe(self) -> str:
        """A short description for messages and ``repr``: backend, dtype, device."""
        return f"{self.name} {self.dtype}"

    # --- data-parallel training: summing a vector across processes --------------------------

    def _device_collective(self) -> str | None:
        """The library this factory sums device vectors across processes with, or None.

        Data-parallel training (``nnfs.fit(..., data_parallel=world)``, see ``nnfs.mpi``) sums
        every step's gradient over the processes of an MPI job. By default it goes through one
        host buffer: ``_read_samples`` of the gradient, an MPI allreduce, ``_write_samples``. A
        backend that can sum on its device without host copies (CUDA with NCCL) returns the
        library's name here, such as ``"nccl"``, and implements :meth:`_prepare_allreduce`;
        the device way is taken when every process of the job returns the same name.
        """
        return None

    def _prepare_allreduce(self, x: Vector, communicator: Any) -> Callable[[], None]:
        """A function of no arguments that replaces ``x`` by its sum over every process of
        ``communicator`` (an mpi4py communicator, one process per device), on the device, in
        place, queued like any other operation. Making it and calling it are collective: every
        process does both at the same point. Only called when :meth:`_device_collective`
        returned a name."""
        raise UnsupportedOperation(
            f"the {self.name} backend sums vectors across processes through the host only "
            "(its _device_collective() is None)")

    # --- the plan hook: prepared operations for the training loop --------------------------

    def _prepare_layer(self, kind: str, weights: Matrix, x: Matrix, bias: Vector,
                       out: Matrix, ones: Vector) -> list[Callable[[], Any]]:
        """The prepared forward pass of one fully connected layer, ``out = f(W·x + b)``, for
        the training loop: by default the product into ``out``, then the activation with its
        bias in place. ``ones`` is a vector of ``out.cols`` ones, the network's own, which a
        backend may use to add the bias as a product. A backend may do the steps together
        (the CPU backend with MKL folds the activation's first scaling into the product)."""
        return [*self._prepare_steps("gemm", 1.0, weights, x, 0.0, out, False, False),
                *self._prepare_steps("activation", kind, out, bias, out)]

    def _prepare(self, operation: str, *args: Any) -> Callable[[], Any]:
        """A function of no arguments that runs ``_<operation>(*args)``, for the training loop.

        The loop prepares its operations once, when a network is built, and then only calls
        them. Arguments are checked already. Raises ``UnsupportedOperation`` if the backend
        declared the operation unsupported.
        """
        steps = self._prepare_steps(operation, *args)
        if len(steps) == 1:
            return steps[0]
        return functools.partial(_run_plan, steps)

    def _prepare_steps(self, operation: str, *args: Any) -> list[Callable[[], Any]]:
        """Like ``_prepare``, as a list of functions to call in order, so that the training
        loop can run one flat list of steps per epoch."""
        if operation in self.unsupported:
            raise UnsupportedOperation(
                f"the {self.name} backend does not provide {operation}(), which training needs"
            )
        return _steps(self._plan(operation, *args))

    def _plan(self, operation: str, *args: Any) -> Callable[[], Any] | list[Callable[[], Any]]:
        """Bind ``_<operation>`` to ``args``: a function of no arguments, or a list of them to
        call in order. A backend can override this to bind as much as possible ahead of time
        (the CPU backend binds numpy functions to their arrays). A plan that returns a value
        (``nrm2``, ``cost_sum``) must be a single function."""
        return functools.partial(getattr(self, "_" + operation), *args)

    # --- accounting, used by the base class and by backends with internal allocations -------

    def _account_allocation(self, nbytes: int) -> None:
        self._allocations += 1
        self._bytes_in_use += nbytes
        self._peak_bytes = max(self._peak_bytes, self._bytes_in_use)

    def _account_free(self, nbytes: int) -> None:
        self._bytes_in_use -= nbytes

    def _new_buffer(self, size: int) -> Buffer:
        """Allocate a buffer of ``size`` elements, counted, with memory errors made nnfs errors."""
        nbytes = size * self.itemsize
        self.check_fits(nbytes, nbytes, "the allocation")
        try:
            storage = self._allocate(size)
        except OutOfDeviceMemory:
            raise
        except MemoryError as error:
            raise OutOfDeviceMemory(
                f"{self.describe()}: the device refused an allocation of {format_bytes(nbytes)} "
                f"({error})", nbytes, None
            ) from None
        self._account_allocation(nbytes)
        buffer = Buffer(self, size, storage)
        self._buffers.add(buffer)
        return buffer

    def stats(self) -> MemoryStats:
        """Allocation and synchronisation counters (see :class:`MemoryStats`)."""
        return MemoryStats(
            self._allocations, self._bytes_in_use, self._peak_bytes, self._synchronizations
        )

    def check_fits(self, total_bytes: int, largest_bytes: int, what: str) -> None:
        """Raise :class:`nnfs.OutOfDeviceMemory` if ``total_bytes`` (of which the largest single
        allocation is ``largest_bytes``) cannot fit on the device; do nothing if unknown."""
        limits = self.memory_limits()
        if limits.total_bytes is not None and total_bytes > limits.total_bytes:
            raise OutOfDeviceMemory(
                f"{what} needs {format_bytes(total_bytes)}, but {self.describe()} has "
                f"{format_bytes(limits.total_bytes)} available",
                total_bytes,
                limits.total_bytes,
            )
        if limits.max_allocation_bytes is not None and largest_bytes > limits.max_allocation_bytes:
            raise OutOfDeviceMemory(
                f"{what} needs one allocation of {format_bytes(largest_bytes)}, but "
                f"{self.describe()} allows at most {format_bytes(limits.max_allocation_bytes)} "
                "in one allocation",
                largest_bytes,
                limits.max_allocation_bytes,
            )

    # --- public, checked operations ---------------------------------------------------------

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Release every buffer this factory still holds, then the factory. Idempotent."""
        if not self._released:
            for buffer in list(self._buffers):
                buffer.release()
            self._released = True

    def __enter__(self) -> Factory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = ", released" if self._released else ""
        return f"<{type(self).__name__} {self.describe()}{state}>"

    def matrix(self, rows: int, cols: int, data: object = None) -> Matrix:
        """A new ``rows × cols`` matrix, zero-filled or holding ``data``.

        ``data`` is given row by row as on the host: a nested sequence or numpy array of shape
        ``rows × cols``, or a flat sequence of ``rows·cols`` numbers read row by row.
        """
        check.live(self, f"the {self.name} factory")
        rows = check.count(rows, "matrix: rows")
        cols = check.count(cols, "matrix: cols")
        host = None
        if data is not None:
            host = check.host_array(data, (rows, cols), self.numpy_dtype, "matrix: data")
        buffer = self._new_buffer(rows * cols)
        result = Matrix(buffer, 0, rows, cols, owns=True)
        if host is not None:
            self._write(host, result)
        return result

    def vector(self, n: int, data: object = None) -> Vector:
        """A new vector of ``n`` entries, zero-filled or holding ``data`` (a sequence of n)."""
        check.live(self, f"the {self.name} factory")
        n = check.count(n, "vector: n")
        host = None
        if data is not None:
            host = check.host_array(data, (n,), self.numpy_dtype, "vector: data")
        result = Vector(self._new_buffer(n), 0, n, owns=True)
        if host is not None:
            self._write(host, result)
        return result

    def to_host(self, x: Matrix | Vector) -> np.ndarray:
        """A numpy copy of ``x``: ``rows × cols`` for a matrix, 1-D for a vector."""
        check.on_factory(self, x, "to_host: x")
        return self._read(x)

    def from_host(self, data: object, x: Matrix | Vector) -> Matrix | Vector:
        """Copy host ``data`` (see :meth:`matrix`) into ``x``; return ``x``."""
        check.on_factory(self, x, "from_host: destination")
        self._write(check.host_array(data, x.shape, self.numpy_dtype, "from_host: data"), x)
        return x

    @_supported(Operation.GEMM)
    def gemm(self, alpha: float, a: Matrix, b: Matrix, beta: float, c: Matrix, *,
             trans_a: bool = False, trans_b: bool = False) -> Matrix:
        """``c ← alpha·op(a)·op(b) + beta·c`` (BLAS gemm); op transposes when asked. Returns c."""
        alpha = check.real(alpha, "gemm: alpha")
        beta = check.real(beta, "gemm: beta")
        check.matrix(self, a, "gemm: a")
        check.matrix(self, b, "gemm: b")
        check.matrix(self, c, "gemm: c")
        m, k = (a.cols, a.rows) if trans_a else (a.rows, a.cols)
        k2, n = (b.cols, b.rows) if trans_b else (b.rows, b.cols)
        if k != k2 or c.rows != m or c.cols != n:
            op_a = "aᵀ" if trans_a else "a"
            op_b = "bᵀ" if trans_b else "b"
            raise ShapeError(
                f"gemm: {op_a} is {m}×{k} and {op_b} is {k2}×{n}, so c must be {m}×{n} and the "
                f"inner dimensions must agree; got c {c.rows}×{c.cols}"
            )
        check.no_overlap(c, a, "gemm: c", "a")
        check.no_overlap(c, b, "gemm: c", "b")
        self._gemm(alpha, a, b, beta, c, bool(trans_a), bool(trans_b))
        return c

    @_supported(Operation.GEMV)
    def gemv(self, alpha: float, a: Matrix, x: Vector, beta: float, y: Vector, *,
             trans: bool = False) -> Vector:
        """``y ← alpha·op(a)·x + beta·y`` (BLAS gemv). Returns y."""
        alpha = check.real(alpha, "gemv: alpha")
        beta = check.real(beta, "gemv: beta")
        check.matrix(self, a, "gemv: a")
        rows, cols = (a.cols, a.rows) if trans else (a.rows, a.cols)
        check.vector(self, x, "gemv: x", cols)
        check.vector(self, y, "gemv: y", rows)
        check.no_overlap(y, a, "gemv: y", "a")
        check.no_overlap(y, x, "gemv: y", "x")
        self._gemv(alpha, a, x, beta, y, bool(trans))
        return y

    @_supported(Operation.RANK1_UPDATE)
    def rank1_update(self, alpha: float, x: Vector, y: Vector, a: Matrix) -> Matrix:
        """``a ← a + alpha·x·yᵀ`` (BLAS ger): x has a's rows, y its columns. Returns a."""
        alpha = check.real(alpha, "rank1_update: alpha")
        check.matrix(self, a, "rank1_update: a")
        check.vector(self, x, "rank1_update: x", a.rows)
        check.vector(self, y, "rank1_update: y", a.cols)
        check.no_overlap(a, x, "rank1_update: a", "x")
        check.no_overlap(a, y, "rank1_update: a", "y")
        self._rank1_update(alpha, x, y, a)
        return a

    @_supported(Operation.AXPY)
    def axpy(self, alpha: float, x: Matrix | Vector, y: Matrix | Vector) -> Matrix | Vector:
        """``y ← alpha·x + y`` (BLAS axpy) for matrices or vectors of one shape. Returns y."""
        alpha = check.real(alpha, "axpy: alpha")
        self._elementwise("axpy", x, y)
        self._axpy(alpha, x, y)
        return y

    @_supported(Operation.SCAL)
    def scal(self, alpha: float, x: Matrix | Vector) -> Matrix | Vector:
        """``x ← alpha·x`` (BLAS scal). Returns x."""
        alpha = check.real(alpha, "scal: alpha")
        check.on_factory(self, x, "scal: x")
        self._scal(alpha, x)
        return x

    @_supported(Operation.COPY)
    def copy(self, x: Matrix | Vector, y: Matrix | Vector) -> Matrix | Vector:
        """``y ← x`` (BLAS copy). Returns y."""
        self._elementwise("copy", x, y)
        self._copy(x, y)
        return y

    @_supported(Operation.FILL)
    def fill(self, x: Matrix | Vector, value: float) -> Matrix | Vector:
        """Set every entry of ``x`` to ``value``. Returns x."""
        value = check.real(value, "fill: value")
        check.on_factory(self, x, "fill: x")
        self._fill(x, value)
        return x

    @_supported(Operation.NRM2)
    def nrm2(self, x: Matrix | Vector) -> float:
        """The Euclidean norm of all entries of ``x`` (BLAS nrm2)."""
        check.on_factory(self, x, "nrm2: x")
        return self._nrm2(x)

    @_supported(Operation.SUB)
    def sub(self, x: Matrix | Vector, y: Matrix | Vector, out: Matrix | Vector) -> Matrix | Vector:
        """``out ← x − y`` elementwise; ``out`` may be x or y. Returns out."""
        self._elementwise("sub", x, y, out)
        self._sub(x, y, out)
        return out

    @_supported(Operation.MUL)
    def mul(self, x: Matrix | Vector, y: Matrix | Vector, out: Matrix | Vector) -> Matrix | Vector:
        """``out ← x ⊙ y`` elementwise; ``out`` may be x or y. Returns out."""
        self._elementwise("mul", x, y, out)
        self._mul(x, y, out)
        return out

    @_supported(Operation.ACTIVATION)
    def activation(self, kind: str, z: Matrix, out: Matrix, bias: Vector | None = None) -> Matrix:
        """``out ← f(z + bias·1ᵀ)`` for ``kind`` in ``ActivationKind`` (bias optional).

        ``out`` may be ``z``. Returns out.
        """
        kind = ActivationKind.parse(kind, "activation")
        check.matrix(self, z, "activation: z")
        check.matrix(self, out, "activation: out", z.rows, z.cols)
        check.elementwise_alias(out, z, "activation: out", "z")
        if bias is not None:
            check.vector(self, bias, "activation: bias", z.rows)
            check.no_overlap(out, bias, "activation: out", "bias")
        self._activation(kind, z, bias, out)
        return out

    @_supported(Operation.ACTIVATION_BACKWARD)
    def activation_backward(self, kind: str, a: Matrix, delta: Matrix) -> Matrix:
        """``delta ← delta ⊙ f'(z)``, with the derivative taken through ``a = f(z)``
        (softmax: each column g becomes ``a ⊙ (g − aᵀg)``). Returns delta."""
        kind = ActivationKind.parse(kind, "activation_backward")
        check.matrix(self, a, "activation_backward: a")
        check.matrix(self, delta, "activation_backward: delta", a.rows, a.cols)
        check.no_overlap(delta, a, "activation_backward: delta", "a")
        self._activation_backward(kind, a, delta)
        return delta

    @_supported(Operation.COST_DELTA)
    def cost_delta(self, kind: str, activation: str, scale: float, y: Matrix, a: Matrix,
                   out: Matrix) -> Matrix:
        """``out ← scale · ∂ℓ/∂z`` for an output layer of ``activation`` (see ``_cost_delta``);
        ``kind`` in ``DeltaKind``. Returns out."""
        kind = DeltaKind.parse(kind, "cost_delta")
        activation = ActivationKind.parse(activation, "cost_delta")
        if kind == "cross_entropy" and activation not in ("sigmoid", "softmax"):
            raise NnfsValueError(f"cost_delta: cross_entropy needs a sigmoid or softmax output, "
                                 f"got {activation}")
        scale = check.real(scale, "cost_delta: scale")
        check.matrix(self, a, "cost_delta: a")
        check.matrix(self, y, "cost_delta: y", a.rows, a.cols)
        check.matrix(self, out, "cost_delta: out", a.rows, a.cols)
        check.no_overlap(out, a, "cost_delta: out", "a")
        check.no_overlap(out, y, "cost_delta: out", "y")
        self._cost_delta(kind, activation, scale, y, a, out)
        return out

    @_supported(Operation.COST_SUM)
    def cost_sum(self, kind: str, y: Matrix, a: Matrix) -> float:
        """The sum of a cost's terms over all entries (see ``_cost_sum``) for ``kind`` in
        ``CostKind``."""
        kind = CostKind.parse(kind, "cost_sum")
        check.matrix(self, a, "cost_sum: a")
        check.matrix(self, y, "cost_sum: y", a.rows, a.cols)
        return self._cost_sum(kind, y, a)

    def synchronize(self) -> None:
        """Wait until the device has finished all queued work (no-op on synchronous devices)."""
        check.live(self, f"the {self.name} factory")
        self._synchronizations += 1
        self._synchronize()

    # --- helpers of the checks --------------------------------------------------------------

    def _elementwise(self, operation: str, *operands: Matrix | Vector) -> None:
        names = ("x", "y", "out")
        for name, operand in zip(names, operands):
            check.on_factory(self, operand, f"{operation}: {name}")
        for name, operand in zip(names[1:], operands[1:]):
            check.same_shape(operands[0], operand, f"{operation}: x", f"{operation}: {name}")
        if len(operands) == 3:
            check.elementwise_alias(operands[2], operands[0], f"{operation}: out", "x")
            check.elementwise_alias(operands[2], operands[1], f"{operation}: out", "y")
        elif operation in ("copy", "axpy"):
            check.elementwise_alias(operands[1], operands[0], f"{operation}: y", "x")


class PlannedFactory(Factory):
    """A factory written as plans: a backend implements ``_plan_<operation>`` for each
    operation, returning a function of no arguments (or a list of them) with everything bound
    that can be bound ahead of time; the training loop keeps the plans, and the one-off
    ``_<operation>`` methods below make a plan and run it. The CPU, OpenCL and CUDA backends
    are written this way; a simple backend can implement the ``_<operation>`` methods of
    :class:`Factory` directly instead.
    """

    def _plan(self, operation: str, *args: Any) -> Callable[[], Any] | list[Callable[[], Any]]:
        return getattr(self, "_plan_" + operation)(*args)

    @abc.abstractmethod
    def _plan_gemm(self, alpha, a, b, beta, c, trans_a, trans_b): ...

    @abc.abstractmethod
    def _plan_gemv(self, alpha, a, x, beta, y, trans): ...

    @abc.abstractmethod
    def _plan_rank1_update(self, alpha, x, y, a): ...

    @abc.abstractmethod
    def _plan_axpy(self, alpha, x, y): ...

    @abc.abstractmethod
    def _plan_scal(self, alpha, x): ...

    @abc.abstractmethod
    def _plan_copy(self, x, y): ...

    @abc.abstractmethod
    def _plan_fill(self, x, value): ...

    @abc.abstractmethod
    def _plan_nrm2(self, x):
        """A single function returning the norm as a Python float."""

    @abc.abstractmethod
    def _plan_sub(self, x, y, out): ...

    @abc.abstractmethod
    def _plan_mul(self, x, y, out): ...

    @abc.abstractmethod
    def _plan_activation(self, kind, z, bias, out): ...

    @abc.abstractmethod
    def _plan_activation_backward(self, kind, a, delta): ...

    @abc.abstractmethod
    def _plan_cost_sum(self, kind, y, a):
        """A single function returning the sum as a Python float."""

    def _plan_cost_delta(self, kind, activation, scale, y, a, out):
        """``scale·(a − y)``, then ``⊙ f'(z)`` for the quadratic cost, from the plans of sub,
        scal and activation_backward; a backend may fuse it."""
        steps = [*_steps(self._plan_sub(a, y, out)), *_steps(self._plan_scal(scale, out))]
        if kind == "quadratic":
            steps += _steps(self._plan_activation_backward(activation, a, out))
        return steps

    def _gemm(self, *args) -> None:
        _run_plan(self._plan_gemm(*args))

    def _gemv(self, *args) -> None:
        _run_plan(self._plan_gemv(*args))

    def _rank1_update(self, *args) -> None:
        _run_plan(self._plan_rank1_update(*args))

    def _axpy(self, *args) -> None:
        _run_plan(self._plan_axpy(*args))

    def _scal(self, *args) -> None:
        _run_plan(self._plan_scal(*args))

    def _copy(self, *args) -> None:
        _run_plan(self._plan_copy(*args))

    def _fill(self, *args) -> None:
        _run_plan(self._plan_fill(*args))

    def _nrm2(self, *args) -> float:
        return self._plan_nrm2(*args)()

    def _sub(self, *args) -> None:
        _run_plan(self._plan_sub(*args))

    def _mul(self, *args) -> None:
        _run_plan(self._plan_mul(*args))

    def _activation(self, *args) -> None:
        _run_plan(self._plan_activation(*args))

    def _activation_backward(self, *args) -> None:
        _run_plan(self._plan_activation_backward(*args))

    def _cost_delta(self, *args) -> None:
        _run_plan(self._plan_cost_delta(*args))

    def _cost_sum(self, *args) -> float:
        return self._plan_cost_sum(*args)()
