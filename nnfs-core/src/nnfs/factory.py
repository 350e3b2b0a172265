"""The factory: memory of one dtype on one device, and the checked operations on it.

A :class:`Factory` is what users hold: ``nnfs.backend("cpu")`` returns one. It allocates
matrices and vectors (:mod:`nnfs.arrays`), moves data between them and the host, and runs the
operations the networks are written with: BLAS-style linear algebra (``gemm``, ``gemv``,
``rank1_update``, ``axpy``...), the vector math of the activations and costs, and
``synchronize``.

Every public method checks its arguments and raises an :class:`nnfs.NnfsError` naming what is
wrong before any work is done; then it asks the factory's :class:`nnfs.contract.Backend`, which
a backend distribution implements, for the operation's plan and runs it. The training loop
prepares the backend's plans once and calls them directly (see :mod:`nnfs.training`).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

import numpy as np

from . import _checks as check
from ._args import format_bytes
from .arrays import Buffer, Matrix, Vector
from .contract import Backend, Capabilities, MemoryLimits, run, unimplemented
from .errors import (
    NnfsTypeError,
    NnfsValueError,
    OutOfDeviceMemory,
    ShapeError,
    UnsupportedOperation,
)
from .kinds import HYPER_SIZE, ActivationKind, CostKind, DeltaKind, Operation, OptimizerKind


@dataclass(frozen=True)
class MemoryStats:
    """What a factory has allocated, for tests and benchmarks.

    ``allocations`` counts every device allocation the factory and its backend have made
    (never decreases), so a test can read it before and after some epochs and require no
    change. ``bytes_in_use`` is what live buffers hold now and ``peak_bytes`` the most they ever
    held. ``synchronizations`` counts ``synchronize()`` calls.
    """

    allocations: int
    bytes_in_use: int
    peak_bytes: int
    synchronizations: int


_F = TypeVar("_F", bound=Callable[..., Any])


def _supported(operation: Operation) -> Callable[[_F], _F]:
    """Decorate a public operation so that it first refuses when the backend does not have it."""

    def decorate(method: _F) -> _F:
        @functools.wraps(method)
        def checked(self: Factory, *args: Any, **kwargs: Any) -> Any:
            if operation in self.unsupported:
                raise UnsupportedOperation(
                    f"the {self.name} backend does not provide {operation}() "
                    f"(it declares it unsupported)"
                )
            check.live(self, f"the {self.name} factory")
            with self._lock:
                return method(self, *args, **kwargs)

        return cast(_F, checked)

    return decorate


class Factory:
    """Memory of one dtype on one device, and the checked operations on it.

    Get one with :func:`nnfs.backend`; ``Factory(backend)`` wraps a backend object made
    directly (tests, and backend authors trying theirs). ``with`` or :meth:`release` gives
    every buffer back.
    """

    def __init__(self, backend: Backend):
        if not isinstance(backend, Backend):
            raise NnfsTypeError(
                "Factory: backend must be an nnfs.contract.Backend (a backend's "
                f"implementation, such as nnfs_cpu.CpuBackend()), got {type(backend).__name__}")
        self._released = False
        #: The backend that runs this factory's operations.
        self.backend = backend
        self._synchronizations = 0
        self._buffers: weakref.WeakSet[Buffer] = weakref.WeakSet()
        # One thread at a time runs operations of this factory (its backend's scratch, queue
        # and handles are shared): each eager operation and each training step holds the lock,
        # and releasing memory waits for it. Buffers released so far, which a training loop
        # compares once per step to notice a release made between its steps.
        self._lock = threading.RLock()
        self._releases = 0

    # --- what the backend declares ------------------------------------------------------------

    @property
    def name(self) -> str:
        """The backend's name ("cpu", "opencl"...)."""
        return self.backend.name

    @property
    def dtype(self) -> str:
        """"float32" or "float64"."""
        return self.backend.dtype

    @property
    def numpy_dtype(self) -> np.dtype:
        return self.backend.numpy_dtype

    @property
    def itemsize(self) -> int:
        return self.backend.itemsize

    @property
    def dtypes(self) -> tuple[str, ...]:
        """The dtypes the backend can work in."""
        return type(self.backend).dtypes

    @property
    def capabilities(self) -> Capabilities:
        """What the backend does (see :class:`nnfs.contract.Capabilities`)."""
        return self.backend.capabilities

    @property
    def asynchronous(self) -> bool:
        return self.backend.capabilities.asynchronous

    @property
    def sync_every(self) -> int:
        return self.backend.capabilities.sync_every

    @property
    def accumulates(self) -> bool:
        return self.backend.capabilities.accumulates

    @property
    def unsupported(self) -> frozenset[Operation]:
        """The operations the backend declares unsupported, and those it may implement but
        does not (see :func:`nnfs.contract.unimplemented`)."""
        return self.backend.capabilities.unsupported | unimplemented(self.backend)

    def describe(self) -> str:
        """A short description for messages and ``repr``: backend, dtype, device."""
        return self.backend.describe()

    def memory_limits(self) -> MemoryLimits:
        """The device's memory: bytes available and the largest single allocation."""
        return self.backend.memory_limits()

    # --- life ---------------------------------------------------------------------------------

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Release every buffer this factory still holds, then the backend. Idempotent. Waits
        for a training step that another thread is running on this factory."""
        with self._lock:
            if not self._released:
                self._released = True
                self._releases += 1
                for buffer in list(self._buffers):
                    buffer.release()
                self.backend.release()

    def __enter__(self) -> Factory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        if not hasattr(self, "backend"):  # __init__ refused its argument
            return "<nnfs.Factory, not made>"
        state = ", released" if self._released else ""
        return f"<nnfs.Factory {self.describe()}{state}>"

    # --- public, checked operations ---------------------------------------------------------

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
            self.backend.write(host, result)
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
            self.backend.write(host, result)
        return result

    def to_host(self, x: Matrix | Vector) -> np.ndarray:
        """A numpy copy of ``x``: ``rows × cols`` for a matrix, 1-D for a vector."""
        check.on_factory(self, x, "to_host: x")
        return self.backend.read(x)

    def from_host(self, data: object, x: Matrix | Vector) -> Matrix | Vector:
        """Copy host ``data`` (see :meth:`matrix`) into ``x``; return ``x``."""
        check.on_factory(self, x, "from_host: destination")
        self.backend.write(check.host_array(data, x.shape, self.numpy_dtype, "from_host: data"), x)
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
        run(self.backend.gemm(alpha, a, b, beta, c, bool(trans_a), bool(trans_b)))
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
        run(self.backend.gemv(alpha, a, x, beta, y, bool(trans)))
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
        run(self.backend.rank1_update(alpha, x, y, a))
        return a

    @_supported(Operation.AXPY)
    def axpy(self, alpha: float, x: Matrix | Vector, y: Matrix | Vector) -> Matrix | Vector:
        """``y ← alpha·x + y`` (BLAS axpy) for matrices or vectors of one shape. Returns y."""
        alpha = check.real(alpha, "axpy: alpha")
        self._check_elementwise("axpy", x, y)
        run(self.backend.axpy(alpha, x, y))
        return y

    @_supported(Operation.SCAL)
    def scal(self, alpha: float, x: Matrix | Vector) -> Matrix | Vector:
        """``x ← alpha·x`` (BLAS scal). Returns x."""
        alpha = check.real(alpha, "scal: alpha")
        check.on_factory(self, x, "scal: x")
        run(self.backend.scal(alpha, x))
        return x

    @_supported(Operation.COPY)
    def copy(self, x: Matrix | Vector, y: Matrix | Vector) -> Matrix | Vector:
        """``y ← x`` (BLAS copy). Returns y."""
        self._check_elementwise("copy", x, y)
        run(self.backend.copy(x, y))
        return y

    @_supported(Operation.FILL)
    def fill(self, x: Matrix | Vector, value: float) -> Matrix | Vector:
        """Set every entry of ``x`` to ``value``. Returns x."""
        value = check.real(value, "fill: value")
        check.on_factory(self, x, "fill: x")
        run(self.backend.fill(x, value))
        return x

    @_supported(Operation.NRM2)
    def nrm2(self, x: Matrix | Vector) -> float:
        """The Euclidean norm of all entries of ``x`` (BLAS nrm2)."""
        check.on_factory(self, x, "nrm2: x")
        return self.backend.nrm2(x)()

    @_supported(Operation.SUB)
    def sub(self, x: Matrix | Vector, y: Matrix | Vector, out: Matrix | Vector) -> Matrix | Vector:
        """``out ← x − y`` elementwise; ``out`` may be x or y. Returns out."""
        self._check_elementwise("sub", x, y, out)
        run(self.backend.sub(x, y, out))
        return out

    @_supported(Operation.MUL)
    def mul(self, x: Matrix | Vector, y: Matrix | Vector, out: Matrix | Vector) -> Matrix | Vector:
        """``out ← x ⊙ y`` elementwise; ``out`` may be x or y. Returns out."""
        self._check_elementwise("mul", x, y, out)
        run(self.backend.mul(x, y, out))
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
        run(self.backend.activation(kind, z, bias, out))
        return out

    @_supported(Operation.ACTIVATION_BACKWARD)
    def activation_backward(self, kind: str, a: Matrix, delta: Matrix) -> Matrix:
        """``delta ← delta ⊙ f'(z)``, with the derivative taken through ``a = f(z)``
        (softmax: each column g becomes ``a ⊙ (g − aᵀg)``). Returns delta."""
        kind = ActivationKind.parse(kind, "activation_backward")
        check.matrix(self, a, "activation_backward: a")
        check.matrix(self, delta, "activation_backward: delta", a.rows, a.cols)
        check.no_overlap(delta, a, "activation_backward: delta", "a")
        run(self.backend.activation_backward(kind, a, delta))
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
        run(self.backend.cost_delta(kind, activation, scale, y, a, out))
        return out

    @_supported(Operation.COST_SUM)
    def cost_sum(self, kind: str, y: Matrix, a: Matrix) -> float:
        """The sum of a cost's terms over all entries (see ``_cost_sum``) for ``kind`` in
        ``CostKind``."""
        kind = CostKind.parse(kind, "cost_sum")
        check.matrix(self, a, "cost_sum: a")
        check.matrix(self, y, "cost_sum: y", a.rows, a.cols)
        return self.backend.cost_sum(kind, y, a)()

    @_supported(Operation.OPTIMIZER_STEP)
    def optimizer_step(self, kind: str, parameters: Vector, gradient: Vector,
                       state: tuple[Vector, ...] = (), decay: Vector | None = None,
                       hyper: object = None) -> Vector:
        """One step of the optimizer ``kind`` (see :class:`nnfs.kinds.OptimizerKind`) on
        ``parameters``, from ``gradient`` (which may be left changed), updating the ``state``
        vectors in place; ``decay`` (1 on weights, 0 on biases) selects what weight decay
        applies to; ``hyper`` holds the step's numbers as :class:`nnfs.kinds.Hyper` lays
        them out. Returns parameters. Training prepares this once and reruns it
        (``Backend.optimizer_step``)."""
        kind = OptimizerKind.parse(kind, "optimizer_step")
        check.vector(self, parameters, "optimizer_step: parameters")
        vectors = {"gradient": gradient}
        if not isinstance(state, (tuple, list)):
            raise NnfsTypeError(f"optimizer_step: state must be a tuple of vectors, got "
                                f"{type(state).__name__}")
        if len(state) != kind.state_size:
            raise NnfsValueError(f"optimizer_step: {kind} keeps {kind.state_size} state "
                                 f"vector(s), got {len(state)}")
        vectors.update({f"state[{i}]": v for i, v in enumerate(state)})
        if decay is not None:
            vectors["decay"] = decay
        for name, vector in vectors.items():
            check.vector(self, vector, f"optimizer_step: {name}", parameters.size)
        named = [("parameters", parameters), *vectors.items()]
        for i, (name, vector) in enumerate(named):
            for other_name, other in named[i + 1:]:
                check.no_overlap(vector, other, f"optimizer_step: {name}", other_name)
        numbers = check.host_array(np.zeros(HYPER_SIZE) if hyper is None else hyper,
                                   (HYPER_SIZE,), np.dtype(np.float64), "optimizer_step: hyper")
        run(self.backend.optimizer_step(kind, parameters, gradient, tuple(state), decay,
                                        np.ascontiguousarray(numbers, dtype=np.float64)))
        return parameters

    @_supported(Operation.DROPOUT_MASK)
    def dropout_mask(self, mask: Matrix, rate: float, seed: int, layer: int, step: int = 0,
                     first: int = 0) -> Matrix:
        """Fill ``mask`` with dropout's factors (0 with probability ``rate``, else
        ``1/(1 − rate)``) drawn by Philox-4x32-10 for ``seed``, ``layer``, ``step`` and the
        batch's ``first`` sample (see :mod:`nnfs.philox`). Returns mask."""
        check.matrix(self, mask, "dropout_mask: mask")
        rate = check.real(rate, "dropout_mask: rate")
        if not 0.0 <= rate < 1.0:
            raise NnfsValueError(f"dropout_mask: rate must be in [0, 1), got {rate}")
        numbers = {}
        for name, value, limit in (("seed", seed, 2**32), ("layer", layer, 2**32),
                                   ("step", step, 2**53), ("first", first, 2**53)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or not 0 <= value < limit:
                raise NnfsValueError(f"dropout_mask: {name} must be an integer in [0, "
                                     f"{limit}), got {value!r}")
            numbers[name] = int(value)
        counter = np.array([numbers["step"], numbers["first"]], dtype=np.float64)
        run(self.backend.dropout_mask(mask, rate, numbers["seed"], numbers["layer"], counter))
        return mask

    def synchronize(self) -> None:
        """Wait until the device has finished all queued work (no-op on synchronous devices)."""
        check.live(self, f"the {self.name} factory")
        self._synchronizations += 1
        self.backend.synchronize()

    def stats(self) -> MemoryStats:
        """Allocation and synchronisation counters (see :class:`MemoryStats`)."""
        self.backend.audit_memory()
        memory = self.backend.memory
        return MemoryStats(memory.allocations, memory.bytes_in_use, memory.peak_bytes,
                           self._synchronizations)

    def check_fits(self, total_bytes: int, largest_bytes: int, what: str,
                   limits: MemoryLimits | None = None) -> None:
        """Raise :class:`nnfs.OutOfDeviceMemory` if ``total_bytes`` (of which the largest single
        allocation is ``largest_bytes``) cannot fit on the device; do nothing if unknown.
        ``limits`` are the device's, read once by the caller, or read here."""
        if limits is None:
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

    # --- core only ----------------------------------------------------------------------------

    def _check_elementwise(self, operation: str, *operands: Matrix | Vector) -> None:
        names = ("x", "y", "out")
        for name, operand in zip(names, operands, strict=False):  # 2 or 3 operands
            check.on_factory(self, operand, f"{operation}: {name}")
        for name, operand in zip(names[1:], operands[1:], strict=False):
            check.same_shape(operands[0], operand, f"{operation}: x", f"{operation}: {name}")
        if len(operands) == 3:
            check.elementwise_alias(operands[2], operands[0], f"{operation}: out", "x")
            check.elementwise_alias(operands[2], operands[1], f"{operation}: out", "y")
        elif operation in ("copy", "axpy"):
            check.elementwise_alias(operands[1], operands[0], f"{operation}: y", "x")

    def _new_buffer(self, size: int, *, checked: bool = True) -> Buffer:
        """Allocate a buffer of ``size`` elements, counted, with memory errors made nnfs
        errors. ``checked=False`` when the caller has checked that it fits (networks check
        all their buffers at once, reading the device's memory once)."""
        nbytes = size * self.itemsize
        if checked:
            self.check_fits(nbytes, nbytes, "the allocation")
        try:
            storage = self.backend.allocate(size)
        except OutOfDeviceMemory:
            raise
        except MemoryError as error:
            raise OutOfDeviceMemory(
                f"{self.describe()}: the device refused an allocation of {format_bytes(nbytes)} "
                f"({error})", nbytes, None
            ) from None
        self.backend.memory.allocated(nbytes)
        buffer = Buffer(self, size, storage)
        self._buffers.add(buffer)
        return buffer


_Destination = TypeVar("_Destination", Matrix, Vector)


@overload
def transfer(source: Matrix | Vector, destination: None = None) -> np.ndarray: ...


@overload
def transfer(source: object, destination: _Destination) -> _Destination: ...


def transfer(source: object,
             destination: Matrix | Vector | None = None) -> np.ndarray | Matrix | Vector:
    """Move data between the host and a device, as the article's ``transfer!``/``transfer``.

    * ``transfer(data, destination)`` copies host data (nested lists or a numpy array, given row
      by row as on the host) or a matrix of any backend into ``destination``, and returns it.
    * ``transfer(matrix)`` returns a numpy copy of a matrix (rows × cols) or vector.
    """
    if destination is None:
        if not isinstance(source, (Matrix, Vector)):
            raise NnfsTypeError(
                "transfer: with one argument, source must be an nnfs Matrix or Vector to copy to "
                f"the host, got {type(source).__name__}; to copy host data to the device, give a "
                "destination: transfer(data, destination)"
            )
        check.live(source, "transfer: source")
        return source.factory.to_host(source)
    if not isinstance(destination, (Matrix, Vector)):
        raise NnfsTypeError(
            "transfer: destination must be an nnfs Matrix or Vector, "
            f"got {type(destination).__name__}"
        )
    check.live(destination, "transfer: destination")
    factory = destination.factory
    if isinstance(source, (Matrix, Vector)):
        check.live(source, "transfer: source")
        if source.shape != destination.shape:
            raise ShapeError(
                f"transfer: source is a {source.shape_text} but destination is a "
                f"{destination.shape_text}"
            )
        if source.factory is factory:
            return factory.copy(source, destination)
    host = check.host_array(source, destination.shape, factory.numpy_dtype, "transfer: source")
    factory.backend.write(host, destination)
    return destination
