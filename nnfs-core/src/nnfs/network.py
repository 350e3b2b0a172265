"""Layers and networks: the inference network and the training network built from it.

Notation, per layer l with input ``a₋₁`` (features × samples):

* forward:  ``z = W·a₋₁``,  ``a = f(z + b)``          (bias added, as in PyTorch and Keras)
* backward: ``δ = g ⊙ f'(z)``                         (g: gradient arriving from above)
            ``∇W = δ·a₋₁ᵀ``,  ``∇b = δ·1``,  ``g₋₁ = Wᵀ·δ``

All the parameters of a network live in one vector (each layer's W, column by column, then its
b), and a training network keeps the gradients in a second vector of the same layout, so an
update is one ``axpy`` and the gradients can be summed across processes in one call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from . import _checks as check
from .activations import Activation, activation as _activation
from .costs import Cost
from .errors import (
    NnfsTypeError,
    NnfsValueError,
    OutOfDeviceMemory,
    ShapeError,
    UnsupportedOperation,
)
from ._args import format_bytes
from .arrays import Matrix, Vector
from .factory import Factory
from .kinds import TRAINING_OPERATIONS



@dataclass(frozen=True)
class FullyConnected:
    """A fully connected layer as declared, before a network builds it: units and activation."""

    units: int
    activation: Activation

    def __repr__(self) -> str:
        return f"fully_connected({self.units}, {self.activation!r})"


def fully_connected(units: int, activation: Activation | str) -> FullyConnected:
    """Declare a fully connected layer of ``units`` outputs and an activation (``nnfs.tanh`` or
    ``"tanh"``); ``inference_network`` builds it."""
    return FullyConnected(
        check.count(units, "fully_connected: units"),
        _activation(activation, "fully_connected: activation"),
    )


class InferenceLayer:
    """A built fully connected layer: ``weights`` (units × inputs), ``bias`` (units)."""

    __slots__ = ("in_dim", "out_dim", "activation", "weights", "bias")

    def __init__(self, parameters: Vector, start: int, in_dim: int, out_dim: int,
                 activation: Activation):
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.activation = activation
        self.weights = parameters.as_matrix(out_dim, in_dim, start)
        self.bias = parameters.subvector(start + out_dim * in_dim, start + out_dim * (in_dim + 1))

    @property
    def parameter_count(self) -> int:
        return self.out_dim * (self.in_dim + 1)

    def __repr__(self) -> str:
        return f"InferenceLayer({self.in_dim}→{self.out_dim}, {self.activation!r})"


def _parameter_count(in_dim: int, widths: Sequence[int]) -> int:
    sizes = [in_dim, *widths]
    return sum(sizes[i + 1] * (sizes[i] + 1) for i in range(len(widths)))


def _training_sizes(parameter_count: int, widths: Sequence[int], batch: int) -> list[int]:
    """Elements of each buffer a training network for ``batch`` samples allocates: the
    gradient, the copy of the parameters that training rolls back to when it diverges, the
    vector of ones, and z and a of each layer."""
    return [parameter_count, parameter_count, batch] + [w * batch for w in widths for _ in (0, 1)]


@dataclass(frozen=True)
class MemoryPlan:
    """The device memory a network needs, in bytes, worked out before anything is allocated
    (see :func:`plan_memory`).

    * ``parameters`` — the inference network's weights and biases (one buffer);
    * ``training`` — what :func:`training_network` adds for ``batch`` samples: the gradient,
      the copy of the parameters that training rolls back to when it diverges, a vector of
      ones, and z and a of every layer;
    * ``batch_data`` — one batch of inputs and targets (in_dim × batch and out_dim × batch):
      what you allocate for ``sgd``, and what ``fit`` allocates itself;
    * ``largest_allocation`` — the largest single buffer among all of them;
    * ``available`` and ``max_allocation`` — the device's free bytes and its largest single
      allocation when the plan was made (``None`` when the backend does not know).
    """

    batch: int
    parameters: int
    training: int
    batch_data: int
    largest_allocation: int
    available: int | None
    max_allocation: int | None

    @property
    def total(self) -> int:
        """Bytes of everything: parameters, training buffers and one batch of data."""
        return self.parameters + self.training + self.batch_data

    @property
    def fits(self) -> bool | None:
        """Whether the total and the largest allocation fit what the device reported; None
        when it reported nothing."""
        if self.available is None and self.max_allocation is None:
            return None
        return ((self.available is None or self.total <= self.available)
                and (self.max_allocation is None
                     or self.largest_allocation <= self.max_allocation))

    def __str__(self) -> str:
        if self.available is None:
            device = "the device does not say how much it has"
        else:
            device = f"the device has {format_bytes(self.available)} available"
        return (f"{format_bytes(self.total)} for batch {self.batch}: parameters "
                f"{format_bytes(self.parameters)}, training {format_bytes(self.training)}, "
                f"batch data {format_bytes(self.batch_data)}; largest allocation "
                f"{format_bytes(self.largest_allocation)}; {device}")


def _initial_parameters(in_dim: int, blueprints: Sequence[FullyConnected], dtype: np.dtype,
                        seed: object) -> np.ndarray:
    """Random weights (Glorot uniform, or He normal for relu) and zero biases, flat."""
    rng = np.random.default_rng(seed)
    chunks = []
    fan_in = in_dim
    for layer in blueprints:
        fan_out = layer.units
        if layer.activation.init == "he":
            weights = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        else:
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            weights = rng.uniform(-limit, limit, size=(fan_in, fan_out))
        chunks.append(weights.ravel())  # (in × out) row by row = (out × in) column by column
        chunks.append(np.zeros(fan_out))
        fan_in = fan_out
    return np.concatenate(chunks).astype(dtype)


class InferenceNetwork:
    """A feed-forward network for inference: call it on a matrix of samples (one per column).

    ``network(x)`` returns a new output matrix; ``network(x, out)`` writes into ``out``. Build
    one with :func:`inference_network`.
    """

    def __init__(self, factory: Factory, in_dim: int, blueprints: Sequence[FullyConnected],
                 seed: object):
        self.factory = factory
        self.in_dim = in_dim
        self.out_dim = blueprints[-1].units
        count = _parameter_count(in_dim, [b.units for b in blueprints])
        nbytes = count * factory.itemsize
        factory.check_fits(nbytes, nbytes, f"a network of {count} parameters")
        try:
            self.parameters = factory.vector(count)
        except OutOfDeviceMemory as error:  # the device refused what it did not say it lacks
            raise OutOfDeviceMemory(f"a network of {count} parameters: {error}",
                                    error.requested, error.available) from None
        try:
            try:
                initial = _initial_parameters(in_dim, blueprints, factory.numpy_dtype, seed)
            except MemoryError:
                raise OutOfDeviceMemory(
                    f"the host has no room for the {count} initial weights of the network "
                    f"({count * 16} bytes while they are drawn)", count * 16, None) from None
            factory._write(initial, self.parameters)
            layers, start, width = [], 0, in_dim
            for blueprint in blueprints:
                layer = InferenceLayer(self.parameters, start, width, blueprint.units,
                                       blueprint.activation)
                layers.append(layer)
                start += layer.parameter_count
                width = blueprint.units
        except BaseException:
            self.parameters.release()
            raise
        self.layers: tuple[InferenceLayer, ...] = tuple(layers)

    @property
    def released(self) -> bool:
        return self.parameters.released

    @property
    def parameter_count(self) -> int:
        return self.parameters.size

    @property
    def architecture(self) -> list[FullyConnected]:
        """The layers as declared, to rebuild the same network."""
        return [FullyConnected(layer.out_dim, layer.activation) for layer in self.layers]

    def release(self) -> None:
        """Release the parameters. Idempotent."""
        self.parameters.release()

    def __enter__(self) -> InferenceNetwork:
        check.live(self, "the inference network")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        layers = ", ".join(
            f"fully_connected({layer.out_dim}, {layer.activation!r})" for layer in self.layers
        )
        state = ", released" if self.released else ""
        return (f"InferenceNetwork({self.in_dim}, [{layers}], {self.factory.describe()}, "
                f"{self.parameter_count} parameters{state})")

    def __call__(self, x: Matrix, out: Matrix | None = None) -> Matrix:
        check.live(self, "the inference network")
        check.matrix(self.factory, x, "inference: x", self.in_dim)
        if out is None:
            out = self.factory.matrix(self.out_dim, x.cols)
        else:
            check.matrix(self.factory, out, "inference: out", self.out_dim, x.cols)
            check.no_overlap(out, x, "inference: out", "x")
        work = self._work(x.cols)
        try:
            self._run(x, out, work)
        finally:
            for matrix in work:
                matrix.release()
        return out

    def _work(self, n: int) -> list[Matrix]:
        """The two work matrices a forward pass of ``n`` samples goes through, in turn."""
        hidden = [layer.out_dim for layer in self.layers[:-1]]
        work: list[Matrix] = []
        try:
            for parity in (0, 1):
                widths = hidden[parity::2]
                if widths:
                    work.append(self.factory.matrix(max(widths), n))
        except BaseException:
            for matrix in work:
                matrix.release()
            raise
        return work

    def _run(self, x: Matrix, out: Matrix, work: list[Matrix]) -> None:
        """Forward pass of checked arguments; ``work`` from ``_work`` for at least x.cols."""
        factory, n = self.factory, x.cols
        source = x
        for i, layer in enumerate(self.layers):
            if i == len(self.layers) - 1:
                target = out
            else:
                target = work[i % 2].as_vector().as_matrix(layer.out_dim, n)
            factory._gemm(1.0, layer.weights, source, 0.0, target, False, False)
            factory._activation(layer.activation.kind, target, layer.bias, target)
            source = target


def _check_factory(factory: object, what: str) -> None:
    if not isinstance(factory, Factory):
        raise NnfsTypeError(
            f"{what}: factory must be an nnfs factory such as nnfs.backend('cpu'), "
            f"got {type(factory).__name__}"
        )
    check.live(factory, f"{what}: factory")


def _check_layers(layers: object, what: str) -> None:
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise NnfsTypeError(
            f"{what}: layers must be a list such as [fully_connected(4, tanh)], "
            f"got {type(layers).__name__}"
        )
    if not layers:
        raise NnfsValueError(f"{what}: layers is empty; give at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, FullyConnected):
            raise NnfsTypeError(
                f"{what}: layers[{i}] must be made by fully_connected(units, "
                f"activation), got {type(layer).__name__} {layer!r}"
            )


def plan_memory(factory: Factory, in_dim: int, layers: Sequence[FullyConnected],
                batch: int = 1) -> MemoryPlan:
    """The device memory, in bytes, that a network of ``layers`` on ``in_dim`` inputs needs on
    ``factory``: its parameters, the buffers of a training network for ``batch`` samples, and
    one batch of inputs and targets. Nothing is allocated.

    Building a network that does not fit raises :class:`nnfs.OutOfDeviceMemory` with the bytes
    asked for and the bytes available; the plan tells beforehand::

        plan = nnfs.plan_memory(factory, 784, [fully_connected(1024, relu),
                                               fully_connected(10, softmax)], batch=512)
        if not plan.fits:
            ...  # a smaller batch or network
    """
    _check_factory(factory, "plan_memory")
    in_dim = check.count(in_dim, "plan_memory: in_dim")
    _check_layers(layers, "plan_memory")
    batch = check.count(batch, "plan_memory: batch")
    widths = [layer.units for layer in layers]
    count = _parameter_count(in_dim, widths)
    training = _training_sizes(count, widths, batch)
    data = [in_dim * batch, widths[-1] * batch]
    itemsize = factory.itemsize
    limits = factory.memory_limits()
    return MemoryPlan(
        batch=batch,
        parameters=count * itemsize,
        training=sum(training) * itemsize,
        batch_data=sum(data) * itemsize,
        largest_allocation=max(count, *training, *data) * itemsize,
        available=limits.total_bytes,
        max_allocation=limits.max_allocation_bytes,
    )


def inference_network(factory: Factory, in_dim: int, layers: Sequence[FullyConnected], *,
                      seed: object = None) -> InferenceNetwork:
    """Build a network of ``layers`` taking ``in_dim`` inputs, with its parameters on ``factory``.

    Weights start random (Glorot uniform; He normal for relu layers), biases at zero; ``seed``
    (an int) makes them reproducible. Set your own with ``nnfs.transfer(data, layer.weights)``.
    """
    _check_factory(factory, "inference_network")
    in_dim = check.count(in_dim, "inference_network: in_dim")
    _check_layers(layers, "inference_network")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise NnfsTypeError(f"inference_network: seed must be an int or None, got {seed!r}")
    if seed is not None and seed < 0:
        raise NnfsValueError(f"inference_network: seed must be non-negative, got {seed}")
    return InferenceNetwork(factory, in_dim, list(layers), seed)


class TrainingLayer:
    """The training state of one layer: its views of the parameters and gradients, and the
    ``z`` (later δ) and ``a`` matrices of the batch."""

    __slots__ = ("inference", "input", "z", "a", "weights_gradient", "bias_gradient")

    def __init__(self, inference: InferenceLayer, input: Matrix, z: Matrix, a: Matrix,
                 gradient: Vector, start: int):
        self.inference = inference
        self.input = input
        self.z = z
        self.a = a
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
        return self.a

    def __repr__(self) -> str:
        return (f"TrainingLayer({self.inference.in_dim}→{self.inference.out_dim}, "
                f"{self.activation!r}, batch {self.a.cols})")


class TrainingNetwork:
    """An inference network bound to one batch of inputs, with every buffer training needs.

    Build it with :func:`training_network`; train it with :func:`nnfs.sgd`. The input matrix is
    only read, never written. All memory is allocated here, once: an epoch allocates nothing.
    """

    def __init__(self, inference: InferenceNetwork, x: Matrix,
                 shared: TrainingNetwork | None = None):
        factory = inference.factory
        missing = sorted(op for op in TRAINING_OPERATIONS if op in factory.unsupported)
        if missing:  # refused here, before anything is allocated, not in the middle of sgd
            raise UnsupportedOperation(
                f"training_network: the {factory.name} backend does not provide "
                f"{', '.join(missing)}, which training needs (declared unsupported)"
            )
        self.factory = factory
        self.inference = inference
        self.input = x
        if shared is None:
            owned = self._allocate(inference, x.cols)
            self.gradient, self.backup, self.ones, *pairs = owned
            factory._fill(self.ones, 1.0)
        else:  # the first columns of a wider network's buffers (a short last batch)
            owned = []
            self.gradient = shared.gradient
            self.backup = shared.backup
            self.ones = shared.ones.subvector(0, x.cols)
            pairs = [m.columns(0, x.cols) for layer in shared.layers for m in (layer.z, layer.a)]
        self._owned = owned
        layers, source, start = [], x, 0
        for i, inference_layer in enumerate(inference.layers):
            z, a = pairs[2 * i], pairs[2 * i + 1]
            layers.append(TrainingLayer(inference_layer, source, z, a, self.gradient, start))
            start += inference_layer.parameter_count
            source = a
        self.layers: tuple[TrainingLayer, ...] = tuple(layers)
        self._forward_ops = self._prepare_forward()
        self._parameter_ranges = []
        for layer in inference.layers:
            start = self._parameter_ranges[-1][1] if self._parameter_ranges else 0
            self._parameter_ranges.append((start, start + layer.parameter_count))
        self._backward_hidden_ops = self._prepare_backward(update=False)
        self._backward_updating_ops = self._prepare_backward(update=True)
        self._apply_ops = factory._prepare_steps("axpy", 1.0, self.gradient, inference.parameters)
        self._delta_key: tuple | None = None
        self._gradient: list[Callable[[], object]] = []
        self._step: list[Callable[[], object]] = []
        self._measure_key: tuple | None = None
        self._measure: Callable[[], float] | None = None

    @staticmethod
    def plan_bytes(inference: InferenceNetwork, batch: int) -> tuple[int, int]:
        """The bytes a training network for ``batch`` samples needs, in all and in its largest
        single allocation (besides the parameters and the input)."""
        widths = [layer.out_dim for layer in inference.layers]
        sizes = _training_sizes(inference.parameter_count, widths, batch)
        itemsize = inference.factory.itemsize
        return sum(sizes) * itemsize, max(sizes) * itemsize

    @staticmethod
    def _allocate(inference: InferenceNetwork, n: int) -> list[Matrix | Vector]:
        """The gradient, the backup, the ones vector, and z and a of each layer; all or
        nothing.

        The largest buffers are allocated first, so that a device that refuses (one that cannot
        say beforehand how much it has) most likely refuses before anything was allocated."""
        factory = inference.factory
        total, largest = TrainingNetwork.plan_bytes(inference, n)
        factory.check_fits(total, largest, f"a training network for batch {n}")
        count = inference.parameter_count
        shapes: list[tuple[int, ...]] = [(count,), (count,), (n,)]
        shapes += [(layer.out_dim, n) for layer in inference.layers for _ in (0, 1)]
        order = sorted(range(len(shapes)), key=lambda i: -math.prod(shapes[i]))
        owned: list[Matrix | Vector | None] = [None] * len(shapes)
        try:
            for i in order:
                shape = shapes[i]
                owned[i] = factory.vector(*shape) if len(shape) == 1 else factory.matrix(*shape)
        except BaseException as error:
            for buffer in owned:
                if buffer is not None:
                    buffer.release()
            if isinstance(error, OutOfDeviceMemory):
                raise OutOfDeviceMemory(f"a training network for batch {n}: {error}",
                                        error.requested, error.available) from None
            raise
        return owned

    def narrowed(self, count: int) -> TrainingNetwork:
        """A training network for the first ``count`` columns of this one's input, sharing its
        memory (for the short last batch of an epoch). Allocates nothing."""
        count = check.count(count, "narrowed: count")
        if count > self.batch_size:
            raise NnfsValueError(f"narrowed: count must be at most {self.batch_size}, got {count}")
        return TrainingNetwork(self.inference, self.input.columns(0, count), shared=self)

    # --- the prepared operations ------------------------------------------------------------

    def _gemm_ops(self) -> list[Callable[[], object]]:
        """Only the matrix products of one epoch, prepared on this network's own buffers: what
        benchmarks time as the floor an epoch cannot go below."""
        prepare, ops = self.factory._prepare, []
        for i, layer in enumerate(self.layers):
            ops.append(prepare("gemm", 1.0, layer.weights, layer.input, 0.0, layer.a, False, False))
            ops.append(prepare("gemm", 1.0, layer.z, layer.input, 0.0, layer.weights_gradient,
                               False, True))
            if i > 0:
                below = self.layers[i - 1]
                ops.append(prepare("gemm", 1.0, layer.weights, layer.z, 0.0, below.z, True, False))
        return ops

    def _prepare_forward(self) -> list[Callable[[], object]]:
        ops = []
        for layer in self.layers:
            # a = f(W·a₋₁ + b): the product goes straight into a and f works on it in place,
            # while it is still in the cache; z is not needed (derivatives are taken through a)
            # until backward
            ops += self.factory._prepare_layer(layer.activation.kind, layer.weights,
                                               layer.input, layer.bias, layer.a, self.ones)
        return ops

    def _prepare_backward(self, update: bool) -> list[Callable[[], object]]:
        """Everything after the output δ: δ of each layer sits in its ``z``.

        With ``update``, each layer's parameters are updated as soon as its weights have served
        for the last time (after Wᵀ·δ), while its gradient is still in the cache; without, the
        gradient is left whole for a later :meth:`apply` (data-parallel training sums it across
        processes first). Both give the same numbers.
        """
        prepare, ops = self.factory._prepare_steps, []
        if update and self.factory.accumulates:
            return self._prepare_backward_accumulating()
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            delta = layer.z
            ops += prepare("gemm", 1.0, delta, layer.input, 0.0, layer.weights_gradient,
                           False, True)  # ∇W = δ·a₋₁ᵀ
            ops += prepare("gemv", 1.0, delta, self.ones, 0.0, layer.bias_gradient, False)
            # ∇b = δ·1
            if i > 0:  # the first layer never writes into its input
                below = self.layers[i - 1]
                ops += prepare("gemm", 1.0, layer.weights, delta, 0.0, below.z, True, False)
                # g₋₁ = Wᵀ·δ
            if update:
                start, stop = self._parameter_ranges[i]
                ops += prepare("axpy", 1.0, self.gradient.subvector(start, stop),
                               self.inference.parameters.subvector(start, stop))
                # W += step, b += step
            if i > 0:
                ops += prepare("activation_backward", below.activation.kind, below.a, below.z)
                # δ₋₁ = g₋₁ ⊙ f'(z₋₁)
        return ops

    def _prepare_backward_accumulating(self) -> list[Callable[[], object]]:
        """The updating backward pass on a factory that ``accumulates``: the products add
        straight into the parameters, and the gradient vector is not written."""
        prepare, ops = self.factory._prepare_steps, []
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            delta = layer.z  # already scaled by −η / batch
            ops += prepare("gemv", 1.0, delta, self.ones, 1.0, layer.bias, False)  # b += δ·1
            if i > 0:  # Wᵀ·δ needs the weights before their update
                below = self.layers[i - 1]
                ops += prepare("gemm", 1.0, layer.weights, delta, 0.0, below.z, True, False)
            ops += prepare("gemm", 1.0, delta, layer.input, 1.0, layer.weights, False, True)
            # W += δ·a₋₁ᵀ
            if i > 0:
                ops += prepare("activation_backward", below.activation.kind, below.a, below.z)
        return ops

    def _epoch_ops(self, y: Matrix, cost: Cost, scale: float) -> list[Callable[[], object]]:
        """The prepared operations of one epoch: forward, gradient scaled by ``scale``, update."""
        return [*self._forward_ops, *self._step_ops(y, cost, scale)]

    def _gradient_ops(self, y: Matrix, cost: Cost, scale: float,
                      weights: Matrix | None = None) -> list[Callable[[], object]]:
        """What follows the forward pass up to the gradient: output δ, backward pass. They
        leave ``scale · Σ ∂ℓ/∂p`` in :attr:`gradient`; data-parallel training sums that across
        processes before it applies the update (:meth:`apply`). With ``weights`` (shaped like
        y, each column one sample's weight), ``scale · Σ wᵢ·∂ℓᵢ/∂p``."""
        self._prepare_step(y, cost, scale, weights)
        return self._gradient

    def _step_ops(self, y: Matrix, cost: Cost, scale: float,
                  weights: Matrix | None = None) -> list[Callable[[], object]]:
        """What follows the forward pass: output δ, backward pass, update (one list, so that
        the single-process loops run it without a seam between gradient and update)."""
        self._prepare_step(y, cost, scale, weights)
        return self._step

    def _prepare_step(self, y: Matrix, cost: Cost, scale: float,
                      weights: Matrix | None = None) -> None:
        key = (y, cost, scale, weights)
        if self._delta_key != key:
            last = self.layers[-1]
            delta = cost.delta_op(self.factory, y, last.a, last.activation, scale, last.z)
            if weights is not None:  # δ ← δ ⊙ w: sample j's δ scaled by its weight
                delta = [*delta, *self.factory._prepare_steps("mul", last.z, weights, last.z)]
            self._gradient = [*delta, *self._backward_hidden_ops]
            self._step = [*delta, *self._backward_updating_ops]
            self._delta_key = key

    def _cost_op(self, y: Matrix, cost: Cost) -> Callable[[], float]:
        """The prepared cost of the last forward pass's output against ``y``."""
        key = (y, cost)
        if self._measure_key != key:
            last = self.layers[-1]
            self._measure = cost.value_op(self.factory, y, last.a, last.activation)
            self._measure_key = key
        return self._measure

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
        """Raise unless ``y`` is a live matrix of this factory shaped like the output."""
        return check.matrix(self.factory, y, what, self.inference.out_dim, self.batch_size)

    def forward(self) -> Matrix:
        """Run the forward pass on the input; return the output matrix."""
        check.live(self, "the training network")
        check.live(self.input, "the training network's input")
        for op in self._forward_ops:
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
        for op in self._gradient_ops(y, cost, scale):
            op()
        return self.gradient

    def apply(self) -> None:
        """Add :attr:`gradient` to the parameters (the update, once scaled by −η/n)."""
        check.live(self, "the training network")
        for op in self._apply_ops:
            op()

    def release(self) -> None:
        """Release the buffers of training (not the inference network or the input)."""
        for buffer in self._owned:
            buffer.release()

    def __enter__(self) -> TrainingNetwork:
        check.live(self, "the training network")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = ", released" if self.released else ""
        return (f"TrainingNetwork({len(self.layers)} layers, batch {self.batch_size}, "
                f"{self.factory.describe()}, {self.memory_bytes()} bytes{state})")


def training_network(inference: InferenceNetwork, x: Matrix) -> TrainingNetwork:
    """Build the training network of ``inference`` for the inputs ``x`` (in_dim × batch).

    ``x`` is read by every epoch and never written; keep it alive while training.
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
    return TrainingNetwork(inference, x)
