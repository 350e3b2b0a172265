"""The training network and the training step.

A :class:`TrainingNetwork` binds an inference network to one batch of inputs and holds every
buffer training needs, allocated once, when it is built. Its :meth:`TrainingNetwork.step`
gives the :class:`TrainingStep` of a target, a cost and a learning rate: the prepared
operations of one step of gradient descent — forward, cost, gradient, update — which every
driver runs (``sgd``, ``fit``, data-parallel training, the benchmarks). Nothing is allocated
while a step runs.

Notation, per layer l with input ``a₋₁`` (features × samples):

* forward:  ``z = W·a₋₁``,  ``a = f(z + b)``
* backward: ``δ = g ⊙ f'(z)``                  (g: the gradient arriving from above)
            ``∇W = δ·a₋₁ᵀ``,  ``∇b = δ·1``,  ``g₋₁ = Wᵀ·δ``

The gradient vector has the layout of the parameters (each layer's ∇W column by column, then
its ∇b). ``δ`` of each layer is written into its ``z`` matrix, which the forward pass does not
need: derivatives are taken through ``a``.

Dropout, on a layer of rate r: the forward pass draws a mask ``m`` (each entry 0 with
probability r, else 1/(1 − r); Philox keyed by the seed, the layer, the step and the entry,
see :mod:`nnfs.philox`) and gives the next layer ``ã = a ⊙ m``; backward, the gradient
arriving at the layer is masked before its derivative, ``δ = (g ⊙ m) ⊙ f'(z)``, the
derivative still taken through the unmasked ``a``. The step and the batch's first sample
are the training network's ``dropout_counter``, which drivers set before each step.

An optimizer other than plain SGD (:mod:`nnfs.optimizers`) makes the step's gradient that of
the mean loss (``scale = 1/n``) and its update the optimizer's fused pass.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _checks as check
from .activations import Activation
from .arrays import Matrix, Vector
from .contract import Step, run, steps
from .costs import Cost
from .errors import (
    NnfsTypeError,
    NnfsValueError,
    OutOfDeviceMemory,
    ShapeError,
    UnsupportedOperation,
)
from .kinds import TRAINING_OPERATIONS, CostKind, Operation
from .network import InferenceLayer, InferenceNetwork, _training_sizes

if TYPE_CHECKING:
    from types import FrameType

    from .optimizers import OptimizerState


class TrainingLayer:
    """The training state of one layer: its views of the parameters and gradients, the
    ``z`` (later δ) and ``a`` matrices of the batch, and with dropout its ``mask`` and its
    masked output ``dropped`` (what the next layer reads)."""

    __slots__ = ("a", "bias_gradient", "dropped", "inference", "input", "mask",
                 "weights_gradient", "z")

    def __init__(self, inference: InferenceLayer, input: Matrix, z: Matrix, a: Matrix,
                 gradient: Vector, start: int, mask: Matrix | None = None,
                 dropped: Matrix | None = None):
        self.inference = inference
        self.input = input
        self.z = z
        self.a = a
        self.mask = mask
        self.dropped = dropped
        out_dim, in_dim = inference.out_dim, inference.in_dim
        self.weights_gradient = gradient.as_matrix(out_dim, in_dim, start)
        self.bias_gradient = gradient.subvector(start + out_dim * in_dim,
                                                start + out_dim * (in_dim + 1))

    @property
    def weights(self) -> Matrix:
        return self.inference.weights

    @property
    def bias(self) -> Vector:
        return self.inference.bias

    @property
    def activation(self) -> Activation:
        return self.inference.activation

    @property
    def output(self) -> Matrix:
        """What the next layer reads: ``a``, or ``a ⊙ mask`` with dropout."""
        return self.a if self.dropped is None else self.dropped

    def __repr__(self) -> str:
        dropout = f", dropout {self.inference.dropout}" if self.mask is not None else ""
        return (f"TrainingLayer({self.inference.in_dim}→{self.inference.out_dim}, "
                f"{self.activation!r}, batch {self.a.cols}{dropout})")


@dataclass(frozen=True)
class TrainingStep:
    """One step of gradient descent on a training network's batch, prepared: lists of
    functions of no arguments, each one operation of the backend.

    * ``forward`` — every layer's ``a = f(W·a₋₁ + b)``;
    * ``cost`` — returns the cost of the last forward pass against the target (reads the
      device: on a queued backend it waits for the work before it);
    * ``gradient`` — the output δ and the backward pass: leaves ``scale · Σ ∂ℓ/∂p`` in the
      network's ``gradient`` vector; when ``fused``, it also adds each layer's share into the
      parameters as soon as that layer's weights have served (inside the products that make
      it, on a backend whose products accumulate);
    * ``update`` — adds the gradient vector to the parameters; empty when ``fused``; with an
      ``optimizer``, its step (the host's count and numbers, then one fused pass of the
      backend over parameters, gradient and state).

    ``run()`` is forward, gradient and update without reading anything back. A driver that
    sums gradients across processes runs ``gradient``, sums, then ``update``.
    """

    network: TrainingNetwork
    scale: float
    forward: tuple[Step, ...]
    cost: Step
    gradient: tuple[Step, ...]
    update: tuple[Step, ...]
    fused: bool
    optimizer: OptimizerState | None = None

    def run(self) -> None:
        """One step: forward, gradient, update."""
        for step in self.forward:
            step()
        for step in self.gradient:
            step()
        for step in self.update:
            step()

    def forward_cost(self) -> float:
        """The forward pass, then its cost."""
        for step in self.forward:
            step()
        return self.cost()

    def descend(self) -> None:
        """After the forward pass: the gradient and the update."""
        for step in self.gradient:
            step()
        for step in self.update:
            step()

    def __repr__(self) -> str:
        fused = ", fused update" if self.fused else ""
        if self.optimizer is not None:
            fused = f", {self.optimizer.optimizer.kind} update"
        return (f"TrainingStep(batch {self.network.batch_size}, scale {self.scale:g}, "
                f"{len(self.forward)}+{len(self.gradient)}+{len(self.update)} operations"
                f"{fused})")


class TrainingNetwork:
    """An inference network bound to one batch of inputs, with every buffer training needs.

    Build it with :func:`training_network`; train it with :func:`nnfs.sgd`, or run the steps
    of :meth:`step` yourself. The input matrix is only read, never written. All memory is
    allocated here, once, after one look at the device's free memory: a step allocates
    nothing.
    """

    def __init__(self, inference: InferenceNetwork, x: Matrix,
                 shared: TrainingNetwork | None = None, seed: int = 0):
        factory = inference.factory
        needed = set(TRAINING_OPERATIONS)
        if any(layer.dropout for layer in inference.layers):
            needed |= {Operation.DROPOUT_MASK, Operation.MUL}
        missing = sorted(op for op in needed if op in factory.unsupported)
        if missing:  # refused here, before anything is allocated, not in the middle of sgd
            dropout = (" (dropout needs dropout_mask and mul)"
                       if {Operation.DROPOUT_MASK, Operation.MUL} & set(missing) else "")
            raise UnsupportedOperation(
                f"training_network: the {factory.name} backend does not provide "
                f"{', '.join(missing)}, which training needs (declared unsupported){dropout}"
            )
        self.factory = factory
        self.inference = inference
        self.input = x
        if shared is None:
            owned = self._allocate(inference, x.cols)
            gradient, backup, ones, *pairs = owned
            self.gradient: Vector = gradient
            self.backup: Vector = backup
            self.ones: Vector = ones
            run(factory.backend.fill(self.ones, 1.0))
            #: The seed of dropout's masks (below 2³²), and the step and first sample that
            #: the next forward pass draws them for: [step, first], which drivers set.
            self.dropout_seed = seed
            self.dropout_counter = np.zeros(2)
        else:  # the first columns of a wider network's buffers (a short last batch)
            owned = []
            self.gradient = shared.gradient
            self.backup = shared.backup
            self.ones = shared.ones.subvector(0, x.cols)
            pairs = [m.columns(0, x.cols) for m in shared._batch_matrices()]
            self.dropout_seed = shared.dropout_seed
            self.dropout_counter = shared.dropout_counter
        self._owned = owned
        count = len(inference.layers)
        extra = iter(pairs[2 * count:])  # a mask and a masked output per layer with dropout
        layers, source, start = [], x, 0
        for i, inference_layer in enumerate(inference.layers):
            z, a = pairs[2 * i], pairs[2 * i + 1]
            mask, dropped = (next(extra), next(extra)) if inference_layer.dropout else (None, None)
            layer = TrainingLayer(inference_layer, source, z, a, self.gradient, start, mask,
                                  dropped)
            layers.append(layer)
            start += inference_layer.parameter_count
            source = layer.output
        self.layers: tuple[TrainingLayer, ...] = tuple(layers)
        #: The prepared forward pass, shared by every step (with dropout's masks).
        self.forward_plan: tuple[Step, ...] = tuple(self._prepare_forward())
        #: The forward pass without dropout, for measuring (validation): the same as
        #: ``forward_plan`` when no layer has dropout.
        self.evaluation_plan: tuple[Step, ...] = (
            tuple(self._prepare_forward(dropout=False)) if self.has_dropout
            else self.forward_plan)
        self._steps: dict[tuple[Any, ...], TrainingStep] = {}
        self._narrowed: dict[int, TrainingNetwork] = {}

    @property
    def has_dropout(self) -> bool:
        return any(layer.mask is not None for layer in self.layers)

    def _batch_matrices(self) -> list[Matrix]:
        """z and a of each layer, then the mask and masked output of each with dropout."""
        found = [m for layer in self.layers for m in (layer.z, layer.a)]
        return found + [m for layer in self.layers for m in (layer.mask, layer.dropped)
                        if m is not None]

    def set_dropout_step(self, step: int, first: int = 0) -> None:
        """Draw the next forward pass's dropout masks for ``step`` and a batch whose first
        sample is ``first`` (of a batch split across processes; 0 otherwise)."""
        self.dropout_counter[0] = step
        self.dropout_counter[1] = first

    @staticmethod
    def plan_bytes(inference: InferenceNetwork, batch: int) -> tuple[int, int]:
        """The bytes a training network for ``batch`` samples needs, in all and in its largest
        single allocation (besides the parameters and the input)."""
        widths = [layer.out_dim for layer in inference.layers]
        sizes = _training_sizes(inference.parameter_count, widths, batch,
                                [layer.dropout for layer in inference.layers])
        itemsize = inference.factory.itemsize
        return sum(sizes) * itemsize, max(sizes) * itemsize

    @staticmethod
    def _allocate(inference: InferenceNetwork, n: int) -> list[Any]:
        """The gradient, the backup, the ones vector, and z and a of each layer; all or
        nothing, after one check that they fit.

        The largest buffers are allocated first, so that a device that refuses (one that cannot
        say beforehand how much it has) most likely refuses before anything was allocated."""
        factory = inference.factory
        total, largest = TrainingNetwork.plan_bytes(inference, n)
        factory.check_fits(total, largest, f"a training network for batch {n}")
        count = inference.parameter_count
        shapes: list[tuple[int, ...]] = [(count,), (count,), (n,)]
        shapes += [(layer.out_dim, n) for layer in inference.layers for _ in (0, 1)]
        shapes += [(layer.out_dim, n) for layer in inference.layers if layer.dropout
                   for _ in (0, 1)]
        order = sorted(range(len(shapes)), key=lambda i: -math.prod(shapes[i]))
        owned: list[Any] = [None] * len(shapes)  # Vectors, then Matrices, as in ``shapes``
        try:
            for i in order:
                shape = shapes[i]
                buffer = factory._new_buffer(math.prod(shape), checked=False)
                owned[i] = (Vector(buffer, 0, shape[0], owns=True) if len(shape) == 1
                            else Matrix(buffer, 0, shape[0], shape[1], owns=True))
        except BaseException as error:
            for window in owned:
                if window is not None:
                    window.release()
            if isinstance(error, OutOfDeviceMemory):
                raise OutOfDeviceMemory(f"a training network for batch {n}: {error}",
                                        error.requested, error.available) from None
            raise
        return owned

    def narrowed(self, count: int) -> TrainingNetwork:
        """A training network for the first ``count`` columns of this one's input, sharing its
        memory (for the short last batch of an epoch). Allocates nothing; made once per count."""
        count = check.count(count, "narrowed: count")
        if count > self.batch_size:
            raise NnfsValueError(f"narrowed: count must be at most {self.batch_size}, got {count}")
        if count == self.batch_size:
            return self
        found = self._narrowed.get(count)
        if found is None:
            found = TrainingNetwork(self.inference, self.input.columns(0, count), shared=self,
                                    seed=self.dropout_seed)
            self._narrowed[count] = found
        return found

    # --- the prepared operations ------------------------------------------------------------

    def _prepare_forward(self, dropout: bool = True) -> list[Step]:
        backend, plan, source = self.factory.backend, [], self.input
        for number, layer in enumerate(self.layers):
            # a = f(W·a₋₁ + b): the product goes straight into a and f works on it in place,
            # while it is still in the cache; z is not needed (derivatives are taken through a)
            # until backward
            plan += steps(backend.layer_forward(layer.activation.kind, layer.weights,
                                                source if not dropout else layer.input,
                                                layer.bias, layer.a, self.ones))
            source = layer.a
            if dropout and layer.mask is not None and layer.dropped is not None:
                # m: 0 or 1/(1 − r) per entry, for this step;  ã = a ⊙ m
                plan += steps(backend.dropout_mask(layer.mask, layer.inference.dropout,
                                                   self.dropout_seed, number,
                                                   self.dropout_counter))
                plan += steps(backend.mul(layer.a, layer.mask, layer.dropped))
        return plan

    def products(self) -> list[Step]:
        """Only the matrix products of one step, prepared on this network's own buffers: what
        benchmarks time as the floor a step cannot go below. They overwrite the gradient and
        the δ matrices."""
        backend, plan = self.factory.backend, []
        for i, layer in enumerate(self.layers):
            plan += steps(backend.gemm(1.0, layer.weights, layer.input, 0.0, layer.a,
                                       False, False))
            plan += steps(backend.gemm(1.0, layer.z, layer.input, 0.0, layer.weights_gradient,
                                       False, True))
            if i > 0:
                below = self.layers[i - 1]
                plan += steps(backend.gemm(1.0, layer.weights, layer.z, 0.0, below.z,
                                           True, False))
        return plan

    def _backward(self, update: bool) -> list[Step]:
        """Everything after the output δ, which sits in the last layer's ``z``: each layer's
        gradient written into the gradient vector.

        With ``update``, each layer's parameters are updated as soon as its weights have
        served for the last time (after Wᵀ·δ), while its gradient is still in the cache;
        without, the gradient is left whole for an update after it (data-parallel training
        sums it across processes first). Both give the same numbers."""
        backend, plan = self.factory.backend, []
        parameters, start = self.inference.parameters, self.inference.parameter_count
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            delta = layer.z
            # ∇W = δ·a₋₁ᵀ
            plan += steps(backend.gemm(1.0, delta, layer.input, 0.0, layer.weights_gradient,
                                       False, True))
            # ∇b = δ·1
            plan += steps(backend.gemv(1.0, delta, self.ones, 0.0, layer.bias_gradient, False))
            if i > 0:  # the first layer never writes into its input
                below = self.layers[i - 1]
                # g₋₁ = Wᵀ·δ
                plan += steps(backend.gemm(1.0, layer.weights, delta, 0.0, below.z, True, False))
            stop, start = start, start - layer.inference.parameter_count
            if update:
                # W += ∇W, b += ∇b (the gradient is already scaled by −η/n)
                plan += steps(backend.axpy(1.0, self.gradient.subvector(start, stop),
                                           parameters.subvector(start, stop)))
            if i > 0:
                plan += self._below_delta(below)
        return plan

    def _below_delta(self, below: TrainingLayer) -> list[Step]:
        """δ₋₁ from g₋₁ in ``below.z``: masked by dropout's mask, then times f'(z₋₁)."""
        backend, plan = self.factory.backend, []
        if below.mask is not None:  # g₋₁ ← g₋₁ ⊙ m₋₁
            plan += steps(backend.mul(below.z, below.mask, below.z))
        # δ₋₁ = g₋₁ ⊙ f'(z₋₁)
        plan += steps(backend.activation_backward(below.activation.kind, below.a, below.z))
        return plan

    def _backward_fused(self) -> list[Step]:
        """The backward pass of plain SGD on a backend whose products accumulate: δ already
        holds −η/n times the gradient of z, and the products add it straight into the
        parameters; the gradient vector is not written."""
        backend, plan = self.factory.backend, []
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            delta = layer.z
            # b += δ·1
            plan += steps(backend.gemv(1.0, delta, self.ones, 1.0, layer.bias, False))
            if i > 0:  # g₋₁ = Wᵀ·δ needs the weights before their update
                below = self.layers[i - 1]
                plan += steps(backend.gemm(1.0, layer.weights, delta, 0.0, below.z, True, False))
            # W += δ·a₋₁ᵀ
            plan += steps(backend.gemm(1.0, delta, layer.input, 1.0, layer.weights,
                                       False, True))
            if i > 0:
                plan += self._below_delta(below)
        return plan

    def step(self, y: Matrix, cost: Cost, scale: float, *, separate_update: bool = False,
             weights: Matrix | None = None,
             optimizer: OptimizerState | None = None) -> TrainingStep:
        """The prepared step towards the targets ``y`` for ``cost``, whose gradient is scaled
        by ``scale`` (``−η/n`` for gradient descent at learning rate η on n samples) and then
        added to the parameters; or, with an ``optimizer`` (see
        :class:`nnfs.optimizers.OptimizerState`), whose gradient (``scale = 1/n`` for that of
        the mean loss) the optimizer's fused step applies.

        ``separate_update`` keeps the gradient whole in :attr:`gradient` before the update
        (data-parallel training sums it across processes in between); otherwise each layer is
        updated as soon as its weights are used up, inside its gradient's product on a backend
        whose products accumulate. An optimizer's update always follows the whole gradient.
        ``weights``, shaped like ``y`` with each
        column one sample's weight, scales each sample's gradient by its weight (``fit``'s
        ``sample_weight``). Arguments are not checked (``sgd`` and ``fit`` do); the same
        arguments give the same step, prepared once.
        """
        key = (y, cost, scale, separate_update, weights, id(optimizer))
        found = self._steps.get(key)
        if found is None:
            last = self.layers[-1]
            delta = tuple(steps(cost.delta_op(self.factory, y, last.a, last.activation, scale,
                                              last.z)))
            if weights is not None:  # δ ← δ ⊙ w: sample j's δ scaled by its weight
                delta += tuple(steps(self.factory.backend.mul(last.z, weights, last.z)))
            fused = not separate_update and optimizer is None
            if fused and self.factory.accumulates:
                backward = self._backward_fused()
            else:
                backward = self._backward(update=fused)
            if optimizer is not None:
                update = optimizer.steps()
            else:
                update = () if fused else tuple(steps(self.factory.backend.axpy(
                    1.0, self.gradient, self.inference.parameters)))
            found = TrainingStep(self, scale, self.forward_plan,
                                 cost.value_op(self.factory, y, last.a, last.activation),
                                 (*delta, *backward), update, fused, optimizer)
            self._steps[key] = found
        return found

    # --- public -----------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        return self.input.cols

    @property
    def output(self) -> Matrix:
        """The output of the last forward pass (out_dim × batch)."""
        return self.layers[-1].a

    @property
    def released(self) -> bool:
        return self.gradient.released or self.inference.released or self.layers[-1].a.released

    def memory_bytes(self) -> int:
        """Bytes this training network holds on its device, besides the inference network's
        parameters and the input matrix (a narrowed network holds none of its own)."""
        return sum(buffer.nbytes for buffer in self._owned)

    def check_target(self, y: object, what: str = "y") -> Matrix:
        """Raise unless ``y`` is a live matrix of this factory shaped like the output and
        sharing no memory with the network's own buffers."""
        y = check.matrix(self.factory, y, what, self.inference.out_dim, self.batch_size)
        for own in self._batch_matrices():
            check.no_overlap(y, own, what, "the training network's own buffers")
        check.no_overlap(y, self.inference.parameters, what, "the network's parameters")
        check.no_overlap(y, self.gradient, what, "the training network's gradient")
        return y

    def forward(self) -> Matrix:
        """Run the forward pass on the input; return the output matrix."""
        check.live(self, "the training network")
        check.live(self.input, "the training network's input")
        for op in self.forward_plan:
            op()
        return self.output

    def backward(self, y: Matrix, cost: Cost, scale: float = 1.0) -> Vector:
        """After :meth:`forward`, write ``scale · Σ over samples of ∂ℓ/∂p`` for every parameter
        p into :attr:`gradient` (same layout as the inference network's parameters).

        ``sgd`` uses ``scale = −η/n``; ``scale = 1/n`` gives the gradient of the mean loss.
        """
        from .costs import cost as _cost

        check.live(self, "the training network")
        y = self.check_target(y, "backward: y")
        cost = _cost(cost, "backward: cost")
        cost.check_output(self.layers[-1].activation)
        scale = check.real(scale, "backward: scale")
        for op in self.step(y, cost, scale, separate_update=True).gradient:
            op()
        return self.gradient

    def apply(self) -> None:
        """Add :attr:`gradient` to the parameters (the update, once scaled by −η/n)."""
        check.live(self, "the training network")
        run(self.factory.backend.axpy(1.0, self.gradient, self.inference.parameters))

    def release(self) -> None:
        """Release the buffers of training (not the inference network or the input), and drop
        the prepared steps (each refers to this network: dropping them leaves no reference
        cycle holding the backend's kernels until a garbage collection)."""
        for buffer in self._owned:
            buffer.release()
        for narrowed in self._narrowed.values():
            narrowed._steps.clear()
        self._narrowed.clear()
        self._steps.clear()

    def __enter__(self) -> TrainingNetwork:
        check.live(self, "the training network")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = ", released" if self.released else ""
        return (f"TrainingNetwork({len(self.layers)} layers, batch {self.batch_size}, "
                f"{self.factory.describe()}, {self.memory_bytes()} bytes{state})")


def training_network(inference: InferenceNetwork, x: Matrix, *,
                     seed: int | None = None) -> TrainingNetwork:
    """Build the training network of ``inference`` for the inputs ``x`` (in_dim × batch).

    ``x`` is read by every epoch and never written; keep it alive while training. ``seed``
    keys the masks of layers with dropout (any non-negative int, taken modulo 2³²; a random
    one when None).
    """
    if not isinstance(inference, InferenceNetwork):
        raise NnfsTypeError(
            "training_network: inference must be made by nnfs.inference_network, "
            f"got {type(inference).__name__}"
        )
    check.live(inference, "training_network: inference")
    try:
        check.matrix(inference.factory, x, "training_network: x", inference.in_dim)
    except ShapeError:
        raise ShapeError(
            f"training_network: x must have {inference.in_dim} rows (the network's inputs), "
            f"one column per sample; got {x.rows}×{x.cols}"
        ) from None
    check.no_overlap(x, inference.parameters, "training_network: x", "the network's parameters")
    return TrainingNetwork(inference, x, seed=dropout_seed(seed, "training_network"))


def entropy() -> int:
    """A fresh random whole number from the system (numpy's SeedSequence entropy)."""
    drawn = np.random.SeedSequence().entropy
    assert isinstance(drawn, int)  # a sequence made without entropy draws one whole number
    return drawn


def dropout_seed(seed: object, what: str) -> int:
    """The key of dropout's masks for a training seed: the seed modulo 2³², or a random one
    when the seed is None."""
    if seed is None:
        return entropy() % 2**32
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise NnfsTypeError(f"{what}: seed must be an int or None, got {seed!r}")
    if seed < 0:
        raise NnfsValueError(f"{what}: seed must be non-negative, got {seed}")
    return int(seed) % 2**32


# --- what every driver shares: Ctrl-C, floating-point noise, releases, rolling back -----------


class Releases:
    """A driver's watch on the buffers it trains with. Each step runs holding the factory's
    lock, so a release from another thread waits for it; at the next step, :meth:`check`
    notices the factory's release count moved (one integer compared, the hot path) and raises
    :class:`nnfs.ReleasedError` naming what was released, before any work on freed memory."""

    def __init__(self, network: TrainingNetwork, what: str, *others: tuple[object, str]):
        self.factory = network.factory
        self.lock = network.factory._lock
        self.what = what
        self.watched = [(network.inference, "the network"), (network, "the training network"),
                        (network.input, "the training network's input"), *others]
        self.count = self.factory._releases

    def check(self) -> None:
        """Raise if something watched was released since the last check (call it holding
        ``lock``, at the start of a step)."""
        if self.factory._releases != self.count:  # the rare case: find what was released
            self.count = self.factory._releases
            check.live(self.factory, f"{self.what}: the factory")
            for thing, name in self.watched:
                check.live(thing, f"{self.what}: {name}")


class HeldCtrlC:
    """Ctrl-C while sgd or fit trains: the first one is held until the epoch (sgd) or batch
    (fit) being trained is done, so that training stops with the weights of a whole step,
    however the backend updates them (layer by layer, in halves...); a second one interrupts
    at once.

    Only where Python's own handler is in place, in the main thread (where signals arrive):
    a handler of the caller's is left alone."""

    def __init__(self) -> None:
        self.pending = False
        self.previous: Callable[[int, FrameType | None], Any] | int | None = None

    def __enter__(self) -> HeldCtrlC:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum: int, frame: object) -> None:
        self.pending = True
        signal.signal(signal.SIGINT, self.previous)  # the next one interrupts at once

    def __exit__(self, error_type: object, *exc_info: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.pending and error_type is None:  # held past the last batch: not lost
            raise KeyboardInterrupt


def quiet_floating_point() -> contextlib.AbstractContextManager[Any]:
    """Silence numpy's overflow and invalid-value warnings while training: a cost that stops
    being finite is reported by nnfs itself (``TrainingDiverged``), once, with the step."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


class Rollback:
    """Putting back the weights of the last step whose cost was finite, for every driver.

    A driver calls :meth:`save` at a checkpoint (the parameters are copied into the training
    network's backup) and counts the steps it runs from there. When a step's cost is not
    finite, the weights that gave it are bad, and so was the update before it: :meth:`replay`
    restores the checkpoint and runs the first ``count`` steps again through ``redo(i)``, which
    gives back the weights after them: the same operations on the same buffers give the same
    numbers, and no step pays for a copy.
    """

    def __init__(self, network: TrainingNetwork, optimizer: OptimizerState | None = None):
        backend = network.factory.backend
        parameters = network.inference.parameters
        self.network = network
        #: The optimizer whose state is saved and restored with the parameters.
        self.optimizer = optimizer
        self._save = steps(backend.copy(parameters, network.backup))
        self._restore = steps(backend.copy(network.backup, parameters))
        # Σ (p − p)² is exactly 0 for finite p and NaN for any entry that is not: a reduction
        # every backend has, which cannot overflow and, on a queued backend, waits for the
        # queue as a cost read does (no blocking BLAS call)
        as_matrix = parameters.as_matrix(parameters.size, 1)
        self._check = backend.cost_sum(CostKind.QUADRATIC, as_matrix, as_matrix)

    def save(self) -> None:
        """The checkpoint: copy the parameters (and the optimizer's state) into the backup."""
        for step in self._save:
            step()
        if self.optimizer is not None:
            self.optimizer.save()

    def restore(self) -> None:
        """Put the checkpoint's parameters (and the optimizer's state) back."""
        for step in self._restore:
            step()
        if self.optimizer is not None:
            self.optimizer.restore()

    def replay(self, count: int, redo: Callable[[int], object]) -> None:
        """Restore the checkpoint and redo its first ``count`` steps (``redo(i)``, i from 0),
        draining the queue where the backend asks for it."""
        self.restore()
        factory = self.network.factory
        every = factory.sync_every
        for i in range(count):
            redo(i)
            if every and (i + 1) % every == 0:
                factory.synchronize()

    def parameters_finite(self) -> bool:
        """Whether every parameter is finite: the last update of a run is checked by no later
        forward pass."""
        return self._check() == 0.0


def schedule_pairs(epochs: object, eta: object, what: str) -> list[tuple[int, float]]:
    """The (epochs, eta) pairs of one learning rate or of a schedule, checked."""
    if eta is not None:
        return [(check.count(epochs, f"{what}: epochs"), learning_rate(eta, f"{what}: eta"))]
    if isinstance(epochs, (str, bytes)) or not isinstance(epochs, Sequence):
        raise NnfsTypeError(
            f"{what}: give epochs and eta, as in sgd(training, y, cost, 20, 0.05), or a schedule "
            f"of (epochs, eta) pairs, as in sgd(training, y, cost, [(5, 0.05), (3, 0.01)]); "
            f"got epochs={epochs!r} and no eta"
        )
    if not epochs:
        raise NnfsValueError(f"{what}: the schedule is empty; give at least one (epochs, eta) "
                             "pair")
    pairs = []
    for i, pair in enumerate(epochs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise NnfsTypeError(f"{what}: schedule[{i}] must be an (epochs, eta) pair, "
                                f"got {pair!r}")
        pairs.append((check.count(pair[0], f"{what}: schedule[{i}] epochs"),
                      learning_rate(pair[1], f"{what}: schedule[{i}] eta")))
    return pairs


def learning_rate(value: object, what: str) -> float:
    """A learning rate: a positive finite real."""
    eta = check.real(value, what)
    if eta <= 0:
        raise NnfsValueError(f"{what} (the learning rate) must be positive, got {eta}")
    return eta
