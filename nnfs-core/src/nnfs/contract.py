"""The backend contract, version 2: what a backend implements.

A backend is one class, a subclass of :class:`Backend`: memory of one dtype on one device and
the operations on it. nnfs wraps each backend in an :class:`nnfs.Factory`, which users call:
the factory checks every argument (shapes agree, every operand is live and belongs to this
factory, scalars are finite floats, kinds are known) and only then asks the backend. A backend
never checks again.

Three kinds of method, and ``help(Backend)`` shows them all:

* **must implement** (abstract): memory (``allocate``, ``matrix_view``, ``vector_view``),
  transfers (``read``, ``write``) and the operations (``gemm`` ... ``cost_sum``);
* **may implement**, declared unsupported otherwise: the operations of training beyond
  plain SGD, ``optimizer_step`` (momentum, Nesterov, Adam, AdamW, weight decay) and
  ``dropout_mask`` (dropout); their defaults raise :class:`nnfs.UnsupportedOperation`, and a
  backend without them lists them in ``capabilities.unsupported``;
* **may override**, each with a working default: ``free``, ``read_samples``,
  ``write_samples``, ``write_rows``, ``cost_delta``, ``layer_forward``, ``synchronize``,
  ``memory_limits``, ``describe``, ``allreduce``, ``audit_memory``, ``release``;
* **may call**: ``memory`` (the allocation ledger), ``dtype``, ``numpy_dtype``, ``itemsize``,
  ``capabilities``.

Operations are **prepared**. Every operation method returns a *plan*: a function of no
arguments that does the work when called, or a list of such functions to call in order, with
everything that can be bound ahead of time bound (arrays, views, kernel arguments, BLAS
dimensions). The training loop prepares its operations once, when a network is built, and
then only calls them, so a backend can make a plan as fast to run as it likes; a simple
backend returns ``functools.partial`` of a function that does the work. Plans of ``nrm2`` and
``cost_sum`` are one function that returns a Python float. The factory's eager calls
(``factory.gemm(...)``) make a plan and run it.

Numbers that change every step. A plan binds its scalars when it is made, but a schedule's
learning rate and Adam's bias corrections change at every step, and making a plan per step
would cost time (and, on a device, memory). So ``optimizer_step`` and ``dropout_mask`` are
given a small float64 **host array** that core rewrites in place before each step: the plan
reads it each time it runs. On a queued backend the plan must capture the numbers when it
queues its work (as kernel arguments, or in a copy to the device queued before the kernel),
never let the device read the host array later, since core changes it for the next step as
soon as the plan returns. Integers in such an array (dropout's step) are exact below 2⁵³.

Memory. nnfs asks for flat buffers (``allocate``) and describes every matrix and vector as a
window of one (see :mod:`nnfs.arrays`): a ``rows × cols`` matrix is stored column by column,
``offset`` elements into its buffer. Each window's ``handle`` is what ``matrix_view`` or
``vector_view`` returned for it; operations read their operands' handles.

The smallest complete backend is ``examples/nnfs-reference-backend`` in the nnfs repository;
``python -m nnfs.testing NAME`` runs the conformance kit on an installed backend.

.. versionchanged:: 0.2 (plugin API 2) a backend is a :class:`Backend` with public method
   names, wrapped by the factory; in API 1 it was a subclass of the factory with underscore
   methods (see the migration note in ``docs/backend-api-2.md``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ._args import dtype_name
from .errors import NnfsValueError, UnsupportedOperation
from .kinds import ActivationKind, CostKind, DeltaKind, Operation, OptimizerKind

if TYPE_CHECKING:
    from .arrays import Matrix, Vector

#: One step of a plan: a function of no arguments.
Step = Callable[[], Any]

#: What an operation returns: one step, or a list of steps to run in order.
Plan = Step | list[Step] | tuple[Step, ...]


def steps(plan: Plan) -> list[Step]:
    """A plan as a list of steps."""
    return list(plan) if isinstance(plan, (list, tuple)) else [plan]


def run(plan: Plan) -> None:
    """Run every step of a plan, in order."""
    for step in steps(plan):
        step()


@dataclass(frozen=True)
class Capabilities:
    """What one backend does, declared once, by the backend (``Backend.capabilities``).

    Attributes:
        asynchronous: operations are queued and results arrive later (GPUs): reading a number
            back waits for the queue. sgd on a synchronous backend reads each epoch's cost,
            which is free there; on an asynchronous one it queues the epochs, drains the queue
            every ``sync_every`` epochs, and reads the cost at the end of each (epochs, eta)
            pair.
        sync_every: how often the training loop must drain the queue: every this many epochs,
            or 0 when it never needs to (the work is synchronous, or the queue copes with any
            amount of it). Results are always synchronised where they are read. A backend
            whose need depends on its options sets ``self.capabilities`` in ``__init__``
            (OpenCL: 1 with CLBlast, which may allocate inside a call; 32 with its own kernels).
        accumulates: ``gemm`` and ``gemv`` with β = 1 add the product into their output in
            the pass that computes it (one BLAS call), so that ``W += δ·aᵀ`` costs no more
            than the product: plain SGD then updates each layer's weights inside the product
            that makes their gradient.
        unsupported: operations the backend does not provide; calling one raises
            :class:`nnfs.UnsupportedOperation`, and the conformance kit skips them.
        collective: the library ``allreduce`` sums vectors across processes with on the
            device (``"nccl"``), or None to sum through the host (see ``Backend.allreduce``).
    """

    asynchronous: bool = False
    sync_every: int = 0
    accumulates: bool = False
    unsupported: frozenset[Operation] = frozenset()
    collective: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sync_every, bool) or not isinstance(self.sync_every, int) \
                or self.sync_every < 0:
            raise NnfsValueError(f"Capabilities: sync_every must be an int ≥ 0, "
                                 f"got {self.sync_every!r}")
        unsupported = frozenset(Operation.parse(op, "Capabilities: unsupported")
                                for op in self.unsupported)
        object.__setattr__(self, "unsupported", unsupported)


class MemoryLedger:
    """What a backend has allocated: every device allocation counted, and the bytes live.

    The factory counts the buffers it asks for itself; a backend that allocates memory of its
    own (scratch, partial sums, staging) calls :meth:`allocated` and :meth:`freed`, so that
    tests can prove an epoch allocates nothing (``factory.stats()``).
    """

    __slots__ = ("allocations", "bytes_in_use", "peak_bytes")

    def __init__(self) -> None:
        self.allocations = 0
        self.bytes_in_use = 0
        self.peak_bytes = 0

    def allocated(self, nbytes: int) -> None:
        """Count one allocation of ``nbytes``."""
        self.allocations += 1
        self.bytes_in_use += nbytes
        self.peak_bytes = max(self.peak_bytes, self.bytes_in_use)

    def freed(self, nbytes: int) -> None:
        """Count ``nbytes`` given back."""
        self.bytes_in_use -= nbytes


@dataclass(frozen=True)
class MemoryLimits:
    """How much memory a device offers: in all, and in one allocation (None: unknown)."""

    total_bytes: int | None
    max_allocation_bytes: int | None


class Backend(abc.ABC):
    """Base class of every backend: memory of one dtype on one device, and the operations.

    A subclass sets :attr:`name`, :attr:`dtypes` and, if it differs from the default,
    :attr:`capabilities`; calls ``super().__init__(dtype)`` first in its own ``__init__`` (which
    takes the backend's options as keyword arguments); and implements the abstract methods.
    """

    #: The backend name this class implements ("cpu", "opencl"...).
    name: ClassVar[str] = "?"
    #: The dtypes this backend can work in, on some device.
    dtypes: ClassVar[tuple[str, ...]] = ("float32",)
    #: What this backend does: declared once, on the class, or in ``__init__`` when it depends
    #: on the device or the options.
    capabilities: Capabilities = Capabilities()

    def __init__(self, dtype: object = "float32") -> None:
        dtype = dtype_name(dtype)
        if dtype not in self.dtypes:
            raise UnsupportedOperation(
                f"the {self.name} backend does not support {dtype}; it supports "
                f"{', '.join(self.dtypes)}")
        #: "float32" or "float64".
        self.dtype: str = dtype
        #: The numpy dtype of ``dtype``.
        self.numpy_dtype: np.dtype = np.dtype(dtype)
        #: Bytes of one element.
        self.itemsize: int = self.numpy_dtype.itemsize
        #: The allocation ledger (may call): count memory the backend allocates itself.
        self.memory: MemoryLedger = MemoryLedger()

    # --- memory and transfers: must implement -----------------------------------------------

    @abc.abstractmethod
    def allocate(self, size: int) -> Any:
        """``size`` elements of :attr:`dtype`, zero-filled, as a storage object of the
        backend's choice. Raise :class:`MemoryError` (or :class:`nnfs.OutOfDeviceMemory`) when
        the device refuses; the factory reports it with the bytes asked for."""

    @abc.abstractmethod
    def matrix_view(self, storage: Any, offset: int, rows: int, cols: int) -> Any:
        """What the backend keeps as the handle of a ``rows × cols`` column-major window of
        ``storage`` that starts ``offset`` elements in (a numpy view, a pointer and offset...)."""

    @abc.abstractmethod
    def vector_view(self, storage: Any, offset: int, size: int) -> Any:
        """Like :meth:`matrix_view`, for ``size`` consecutive elements."""

    @abc.abstractmethod
    def read(self, x: Matrix | Vector) -> np.ndarray:
        """A new host array that shares no memory with the device: ``rows × cols`` in C order
        for a matrix, 1-D for a vector. Waits for the work queued before it."""

    @abc.abstractmethod
    def write(self, host: np.ndarray, x: Matrix | Vector) -> None:
        """Copy ``host`` (C-ordered, ``x``'s shape and dtype, finite) into ``x``. ``host``
        may be reused as soon as this returns."""

    # --- memory and transfers: may override --------------------------------------------------

    def free(self, storage: Any) -> None:
        """Give ``storage`` back to the device. The default drops the reference."""

    def write_samples(self, host: np.ndarray, x: Matrix) -> None:
        """Copy ``host``, C-ordered ``x.cols × x.rows`` (one sample per row, as in numpy and
        scikit-learn), into ``x``: row j of host becomes column j of x.

        That is the very memory layout of a column-major matrix, so a backend can copy the
        bytes as they are; the default goes through :meth:`write` with a transposed copy.
        """
        self.write(np.ascontiguousarray(host.T), x)

    def write_rows(self, host: np.ndarray, rows: np.ndarray | slice, x: Matrix,
                   staging: np.ndarray) -> None:
        """Copy the rows ``rows`` of ``host`` into ``x``: row ``rows[j]`` becomes column j.

        This is how ``fit`` moves a mini-batch to the device, once per batch. ``host`` is a
        2-D host array of :attr:`dtype`, one sample per row and ``x.rows`` columns, C-ordered
        (the user's data, possibly memory-mapped: only the rows named are read). ``rows`` is a
        1-D integer array of ``x.cols`` row numbers, each in range (checked by the caller), or
        a ``slice`` of step 1 over ``x.cols`` consecutive rows (the batches of an epoch in the
        data's own order). ``staging`` is a C-ordered ``x.cols × x.rows`` host array of
        :attr:`dtype`, the caller's, allocated once with the other buffers: the default gathers
        the rows into it (no allocation: ``numpy.take`` with ``mode="wrap"``, which does not
        buffer) and then calls :meth:`write_samples`; consecutive rows go to
        :meth:`write_samples` as they are, without a gather. A backend whose matrices are
        host memory (the CPU's) gathers straight into ``x``, one copy instead of two.

        .. versionadded:: 0.2
        """
        if isinstance(rows, slice):
            self.write_samples(host[rows], x)
            return
        host.take(rows, axis=0, out=staging, mode="wrap")
        self.write_samples(staging, x)

    def read_samples(self, x: Matrix, out: np.ndarray) -> None:
        """Copy ``x`` into ``out``, a C-ordered ``x.cols × x.rows`` host array (one sample
        per row). The default goes through :meth:`read`."""
        out[...] = self.read(x).T

    def synchronize(self) -> None:
        """Wait until every operation queued so far has finished. Default: nothing to wait
        for."""

    def memory_limits(self) -> MemoryLimits:
        """The device's memory: bytes available and the largest single allocation.

        Networks check what they need against this, once, before allocating anything. The
        default says nothing is known; device backends override it.
        """
        return MemoryLimits(None, None)

    def describe(self) -> str:
        """A short description for messages and ``repr``: backend, dtype, device."""
        return f"{self.name} {self.dtype}"

    def audit_memory(self) -> None:
        """Count in :attr:`memory` what was allocated outside the backend's own calls (a
        library's memory pool that grew behind its back), before the ledger is read. Default:
        nothing to count."""

    def release(self) -> None:
        """Give back what the backend holds beyond its buffers (queues, handles, threads),
        after the factory released every buffer. Called once."""

    # --- BLAS: must implement ------------------------------------------------------------------

    @abc.abstractmethod
    def gemm(self, alpha: float, a: Matrix, b: Matrix, beta: float, c: Matrix,
             trans_a: bool, trans_b: bool) -> Plan:
        """``c ← alpha·op(a)·op(b) + beta·c``, op transposing when asked (BLAS gemm). When
        beta is 0, ``c``'s old contents are ignored, even NaN. ``c`` overlaps neither a nor b."""

    @abc.abstractmethod
    def gemv(self, alpha: float, a: Matrix, x: Vector, beta: float, y: Vector,
             trans: bool) -> Plan:
        """``y ← alpha·op(a)·x + beta·y`` (BLAS gemv); beta 0 ignores ``y``'s contents."""

    @abc.abstractmethod
    def rank1_update(self, alpha: float, x: Vector, y: Vector, a: Matrix) -> Plan:
        """``a ← a + alpha·x·yᵀ`` (BLAS ger)."""

    @abc.abstractmethod
    def axpy(self, alpha: float, x: Matrix | Vector, y: Matrix | Vector) -> Plan:
        """``y ← alpha·x + y`` (BLAS axpy), elementwise over equal shapes."""

    @abc.abstractmethod
    def scal(self, alpha: float, x: Matrix | Vector) -> Plan:
        """``x ← alpha·x`` (BLAS scal)."""

    @abc.abstractmethod
    def copy(self, x: Matrix | Vector, y: Matrix | Vector) -> Plan:
        """``y ← x`` (BLAS copy); ``y`` may be ``x`` itself (then nothing changes)."""

    @abc.abstractmethod
    def fill(self, x: Matrix | Vector, value: float) -> Plan:
        """Set every entry of ``x`` to ``value``."""

    @abc.abstractmethod
    def nrm2(self, x: Matrix | Vector) -> Step:
        """One function returning the Euclidean norm of all entries (BLAS nrm2) as a Python
        float, finite for every finite input (no overflow of the squares)."""

    # --- elementwise and the vector math of layers and costs: must implement -------------------

    @abc.abstractmethod
    def sub(self, x: Matrix | Vector, y: Matrix | Vector, out: Matrix | Vector) -> Plan:
        """``out ← x − y`` elementwise; ``out`` may be ``x`` or ``y``."""

    @abc.abstractmethod
    def mul(self, x: Matrix | Vector, y: Matrix | Vector, out: Matrix | Vector) -> Plan:
        """``out ← x ⊙ y`` elementwise; ``out`` may be ``x`` or ``y``."""

    @abc.abstractmethod
    def activation(self, kind: ActivationKind, z: Matrix, bias: Vector | None,
                   out: Matrix) -> Plan:
        """``out ← f(z + bias·1ᵀ)`` for the activation ``kind`` (see :class:`ActivationKind`).

        ``bias`` (one entry per row) may be None. ``out`` may be ``z``. ``softmax``
        normalises each column: ``out[:, j] = exp(s_j) / Σ exp(s_j)`` with
        ``s_j = z[:, j] + bias``, computed without overflow.
        """

    @abc.abstractmethod
    def activation_backward(self, kind: ActivationKind, a: Matrix, delta: Matrix) -> Plan:
        """``delta ← delta ⊙ f'(z)``, the derivative taken through the output ``a = f(z)``
        (see :class:`ActivationKind`); softmax takes each column ``g`` of ``delta`` to
        ``a ⊙ (g − aᵀg)``. ``a`` is left unchanged."""

    @abc.abstractmethod
    def cost_sum(self, kind: CostKind, y: Matrix, a: Matrix) -> Step:
        """One function returning the sum over all entries of a cost's terms (see
        :class:`CostKind`) as a Python float."""

    # --- composed operations: may override -----------------------------------------------------

    def cost_delta(self, kind: DeltaKind, activation: ActivationKind, scale: float, y: Matrix,
                   a: Matrix, out: Matrix) -> Plan:
        """``out ← scale · ∂ℓ/∂z`` of an output layer of ``activation`` with ``a = f(z)``
        (see :class:`DeltaKind`). The default composes :meth:`sub`, :meth:`scal` and, for the
        quadratic cost, :meth:`activation_backward`; a backend may fuse them."""
        plan = [*steps(self.sub(a, y, out)), *steps(self.scal(scale, out))]
        if kind == DeltaKind.QUADRATIC:
            plan += steps(self.activation_backward(activation, a, out))
        return plan

    def layer_forward(self, kind: ActivationKind, weights: Matrix, x: Matrix, bias: Vector,
                      out: Matrix, ones: Vector) -> Plan:
        """The forward pass of one fully connected layer, ``out = f(W·x + b)``, for the
        training loop: by default the product into ``out``, then the activation with its bias
        in place. ``ones`` is a vector of ``out.cols`` ones, the network's own, which a backend
        may use to add the bias as a product (the CPU backend with MKL does)."""
        return [*steps(self.gemm(1.0, weights, x, 0.0, out, False, False)),
                *steps(self.activation(kind, out, bias, out))]

    # --- training beyond plain SGD: may implement (declared unsupported otherwise) -----------

    def optimizer_step(self, kind: OptimizerKind, parameters: Vector, gradient: Vector,
                       state: Sequence[Vector], decay: Vector | None,
                       hyper: np.ndarray) -> Plan:
        """One step of the optimizer ``kind`` (see :class:`nnfs.kinds.OptimizerKind` for
        each rule) in **one pass** over the flat vectors: every element of ``parameters`` is
        read and written once, with its ``gradient``, its ``state`` entries and its ``decay``
        mask entry, not one pass per term of the rule.

        * ``gradient`` — the gradient of the mean loss of the batch (``+∂L/∂p``, not scaled
          by the learning rate). The plan may leave it changed (it is the step's scratch).
        * ``state`` — ``kind.state_size`` vectors (velocity; or first and second moments),
          allocated and zeroed by core when training starts, updated in place.
        * ``decay`` — None (no weight decay), or a vector of 1 on weights and 0 on biases,
          so that weight decay applies to weights only (PyTorch decays every parameter it is
          given unless told otherwise; nnfs decays weights, as Keras' kernel regularizers
          and scikit-learn's ``alpha`` do).
        * ``hyper`` — a float64 host array of :data:`nnfs.kinds.HYPER_SIZE` entries laid out
          by :class:`nnfs.kinds.Hyper` (η, λ, μ, β₁, β₂, ε, α, c), which core rewrites before
          each step: read it when the plan runs (see "Numbers that change every step" above).

        Every vector has the size of ``parameters``; none overlaps another.

        .. versionadded:: 0.2
        """
        raise UnsupportedOperation(f"the {self.name} backend does not provide optimizer_step")

    def dropout_mask(self, mask: Matrix, rate: float, seed: int, layer: int,
                     counter: np.ndarray) -> Plan:
        """Fill ``mask`` with dropout's factors: each entry 0 with probability ``rate``,
        else ``1 / (1 − rate)`` (rounded once to the dtype), from the counter-based generator
        Philox-4x32-10 (see :mod:`nnfs.philox`), so that every backend draws the very same
        mask for the same seed, layer, step and entry.

        Entry (i, j) of the ``rows × cols`` mask is drawn from element ``n = (first + j)·rows
        + i`` of the stream keyed by ``(seed, layer)`` (each below 2³²) at ``step``: Philox's
        counter is ``(b mod 2³², b div 2³², step mod 2³², step div 2³²)`` for ``b = n div 4``,
        its output word ``n mod 4`` is w, and the entry is 0 when ``w < ⌊rate·2³²⌋``, else the
        factor. ``step`` and ``first`` are ``counter[0]`` and ``counter[1]``, a float64 host
        array that core rewrites before each step (read it when the plan runs); ``first`` is
        the batch's first sample, so that a batch split across processes draws the entries of
        the whole batch. ``0 ≤ rate < 1``.

        .. versionadded:: 0.2
        """
        raise UnsupportedOperation(f"the {self.name} backend does not provide dropout_mask")

    # --- data-parallel training: may override --------------------------------------------------

    def allreduce(self, x: Vector, communicator: Any) -> Step:
        """A function of no arguments that replaces ``x`` by its sum over every process of
        ``communicator`` (an mpi4py communicator, one process per device), on the device, in
        place, queued like any other operation. Making it and calling it are collective:
        every process does both at the same point. Only called when
        ``capabilities.collective`` names a library; otherwise nnfs sums through the host
        (``read_samples``, an MPI allreduce, ``write_samples``)."""
        raise UnsupportedOperation(
            f"the {self.name} backend sums vectors across processes through the host only "
            "(its capabilities.collective is None)")


def unimplemented(backend: Backend) -> frozenset[Operation]:
    """The operations a backend may implement (``optimizer_step``, ``dropout_mask``) that its
    class does not: the factory counts them as declared unsupported, so that a backend written
    before they existed is refused cleanly rather than failing inside training."""
    kind = type(backend)
    return frozenset(operation for operation, name in _MAY_IMPLEMENT.items()
                     if getattr(kind, name) is getattr(Backend, name))


_MAY_IMPLEMENT = {Operation.OPTIMIZER_STEP: "optimizer_step",
                  Operation.DROPOUT_MASK: "dropout_mask"}


__all__ = ["Backend", "Capabilities", "MemoryLedger", "MemoryLimits", "Plan", "Step", "run",
           "steps", "unimplemented"]
