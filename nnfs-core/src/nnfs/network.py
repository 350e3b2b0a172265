"""Layers and the inference network: declaring a network, building it, planning its memory.

Notation, per layer l with input ``a₋₁`` (features × samples):

* forward:  ``z = W·a₋₁``,  ``a = f(z + b)``          (bias added, as in PyTorch and Keras)

All the parameters of a network live in one vector (each layer's W, column by column, then its
b), so that a training network (:mod:`nnfs.training`) can keep the gradients in a second vector
of the same layout: an update is one pass, and the gradients can be summed across processes in
one call.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _checks as check
from ._args import format_bytes
from .activations import Activation, activation as _activation
from .arrays import Matrix, Vector
from .contract import steps
from .errors import (
    InUseError,
    NnfsTypeError,
    NnfsValueError,
    OutOfDeviceMemory,
)
from .factory import Factory


@dataclass(frozen=True)
class FullyConnected:
    """A fully connected layer as declared, before a network builds it: units, activation and
    the rate of dropout on its outputs while training (0: none)."""

    units: int
    activation: Activation
    dropout: float = 0.0

    def __repr__(self) -> str:
        dropout = f", dropout={self.dropout}" if self.dropout else ""
        return f"fully_connected({self.units}, {self.activation!r}{dropout})"


def dropout_rate(value: object, what: str) -> float:
    """A dropout rate: a real number in [0, 1)."""
    rate = check.real(value, what)
    if not 0.0 <= rate < 1.0:
        raise NnfsValueError(f"{what} must be in [0, 1) (the probability of dropping each "
                             f"output while training), got {rate}")
    return rate


def fully_connected(units: int, activation: Activation | str, *,
                    dropout: float = 0.0) -> FullyConnected:
    """Declare a fully connected layer of ``units`` outputs and an activation (``nnfs.tanh`` or
    ``"tanh"``); ``inference_network`` builds it.

    ``dropout=p`` zeroes each of the layer's outputs with probability p while training and
    scales the others by 1/(1 − p), as ``torch.nn.Dropout`` does; inference is unchanged. The
    masks are drawn by a counter-based generator (Philox-4x32-10, :mod:`nnfs.philox`) keyed by
    the training seed, the layer, the step and the entry: the same seed gives the same masks
    on every backend. Not on the output layer.
    """
    return FullyConnected(
        check.count(units, "fully_connected: units"),
        _activation(activation, "fully_connected: activation"),
        dropout_rate(dropout, "fully_connected: dropout"),
    )


class InferenceLayer:
    """A built fully connected layer: ``weights`` (units × inputs), ``bias`` (units), and the
    ``dropout`` rate training applies to its outputs."""

    __slots__ = ("activation", "bias", "dropout", "in_dim", "out_dim", "weights")

    def __init__(self, parameters: Vector, start: int, in_dim: int, out_dim: int,
                 activation: Activation, dropout: float = 0.0):
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.activation = activation
        self.dropout = dropout
        self.weights = parameters.as_matrix(out_dim, in_dim, start)
        self.bias = parameters.subvector(start + out_dim * in_dim, start + out_dim * (in_dim + 1))

    @property
    def parameter_count(self) -> int:
        return self.out_dim * (self.in_dim + 1)

    def __repr__(self) -> str:
        dropout = f", dropout {self.dropout}" if self.dropout else ""
        return f"InferenceLayer({self.in_dim}→{self.out_dim}, {self.activation!r}{dropout})"


def _parameter_count(in_dim: int, widths: Sequence[int]) -> int:
    sizes = [in_dim, *widths]
    return sum(sizes[i + 1] * (sizes[i] + 1) for i in range(len(widths)))


def _training_sizes(parameter_count: int, widths: Sequence[int], batch: int,
                    dropouts: Sequence[float] = ()) -> list[int]:
    """Elements of each buffer a training network for ``batch`` samples allocates: the
    gradient, the copy of the parameters that training rolls back to when it diverges, the
    vector of ones, z and a of each layer, and the mask and the masked output of each layer
    with dropout."""
    sizes = [parameter_count, parameter_count, batch] + [w * batch for w in widths for _ in (0, 1)]
    return sizes + [w * batch for w, rate in zip(widths, dropouts, strict=False) if rate
                    for _ in (0, 1)]


@dataclass(frozen=True)
class MemoryPlan:
    """The device memory a network needs, in bytes, worked out before anything is allocated
    (see :func:`plan_memory`).

    * ``parameters`` — the inference network's weights and biases (one buffer);
    * ``training`` — what :func:`training_network` adds for ``batch`` samples: the gradient,
      the copy of the parameters that training rolls back to when it diverges, a vector of
      ones, z and a of every layer, and a mask and a masked output per layer with dropout;
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


#: Elements of initial weights drawn at a time: the host never holds more than this many
#: float64s of them (8 MiB), however large the network.
DRAW_CHUNK = 1 << 20


def _draw_initial_parameters(parameters: Vector, in_dim: int,
                             blueprints: Sequence[FullyConnected],
                             seed: int | np.integer[Any] | None) -> None:
    """Random weights (Glorot uniform, or He normal for relu) and zero biases, written into
    ``parameters`` a chunk of rows at a time, so that drawing them needs a few MiB of host
    memory beside the device's, not several copies of the whole network. The numbers are
    those of one draw of each layer's whole matrix: the generator's stream does not depend on
    how it is cut."""
    backend = parameters.factory.backend
    dtype = parameters.factory.numpy_dtype
    rng = np.random.default_rng(seed)
    start, fan_in = 0, in_dim
    for layer in blueprints:
        fan_out = layer.units
        rows = max(1, DRAW_CHUNK // fan_out)
        for first in range(0, fan_in, rows):
            count = min(rows, fan_in - first)
            if layer.activation.init == "he":
                chunk = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(count, fan_out))
            else:
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                chunk = rng.uniform(-limit, limit, size=(count, fan_out))
            # (in × out) row by row is (out × in) column by column: rows of it are contiguous
            stop = start + count * fan_out
            backend.write(chunk.reshape(-1).astype(dtype), parameters.subvector(start, stop))
            start = stop
        start += fan_out  # the biases stay at the zeros the buffer was allocated with
        fan_in = fan_out


class InferenceNetwork:
    """A feed-forward network for inference: call it on a matrix of samples (one per column).

    ``network(x)`` returns a new output matrix; ``network(x, out)`` writes into ``out``. Build
    one with :func:`inference_network`.
    """

    def __init__(self, factory: Factory, in_dim: int, blueprints: Sequence[FullyConnected],
                 seed: int | np.integer[Any] | None):
        self.factory = factory
        self.in_dim = in_dim
        self.out_dim = blueprints[-1].units
        self._user: threading.Thread | None = None  # the thread training or predicting
        self._uses = 0
        self._user_lock = threading.Lock()
        count = _parameter_count(in_dim, [b.units for b in blueprints])
        nbytes = count * factory.itemsize
        factory.check_fits(nbytes, nbytes, f"a network of {count} parameters")
        try:
            self.parameters = Vector(factory._new_buffer(count, checked=False), 0, count,
                                     owns=True)
        except OutOfDeviceMemory as error:  # the device refused what it did not say it lacks
            raise OutOfDeviceMemory(f"a network of {count} parameters: {error}",
                                    error.requested, error.available) from None
        try:
            try:
                _draw_initial_parameters(self.parameters, in_dim, blueprints, seed)
            except MemoryError:
                raise OutOfDeviceMemory(
                    f"the host has no room to draw the initial weights of the network "
                    f"({DRAW_CHUNK * 12} bytes at a time)", DRAW_CHUNK * 12, None) from None
            layers, start, width = [], 0, in_dim
            for blueprint in blueprints:
                layer = InferenceLayer(self.parameters, start, width, blueprint.units,
                                       blueprint.activation, blueprint.dropout)
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

    @contextlib.contextmanager
    def in_use(self, what: str) -> Iterator[None]:
        """Mark the network used by this thread while ``what`` (sgd, fit, predict...) runs:
        another thread that tries to use it meanwhile gets :class:`nnfs.InUseError` at once.
        The same thread may use it again inside (``predict`` from fit's ``on_epoch``)."""
        me = threading.current_thread()
        with self._user_lock:
            if self._user is not None and self._user is not me:
                raise InUseError(
                    f"{what}: the network is in use by thread {self._user.name!r}, which trains "
                    "it or predicts with it; a network serves one thread at a time (make one "
                    "network per thread, or wait for that thread)")
            self._user = me
            self._uses += 1
        try:
            yield
        finally:
            with self._user_lock:
                self._uses -= 1
                if self._uses == 0:
                    self._user = None

    @property
    def parameter_count(self) -> int:
        return self.parameters.size

    @property
    def architecture(self) -> list[FullyConnected]:
        """The layers as declared, to rebuild the same network."""
        return [FullyConnected(layer.out_dim, layer.activation, layer.dropout)
                for layer in self.layers]

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
            check.no_overlap(out, self.parameters, "inference: out", "the network's parameters")
        with self.in_use("inference"), self.forward_pass(x, out) as forward, \
                self.factory._lock:
            forward()
        return out

    def forward_pass(self, x: Matrix, out: Matrix) -> ForwardPass:
        """The forward pass from ``x`` (in_dim × n) into ``out`` (out_dim × n), prepared
        once: call it as often as the data in ``x`` changes (``nnfs.predict`` does, batch by
        batch). It holds two work matrices; release it (or use ``with``) when done. The
        arguments are not checked: ``network(x, out)`` is the checked way."""
        return ForwardPass(self, x, out)


class ForwardPass:
    """A prepared forward pass of an inference network (see
    :meth:`InferenceNetwork.forward_pass`): ``pass()`` runs it."""

    def __init__(self, network: InferenceNetwork, x: Matrix, out: Matrix):
        factory, n = network.factory, x.cols
        hidden = [layer.out_dim for layer in network.layers[:-1]]
        self._work: list[Matrix] = []
        try:  # two work matrices that the hidden layers take turns writing into
            for parity in (0, 1):
                widths = hidden[parity::2]
                if widths:
                    self._work.append(factory.matrix(max(widths), n))
            plan, source = [], x
            for i, layer in enumerate(network.layers):
                if i == len(network.layers) - 1:
                    target = out
                else:
                    target = self._work[i % 2].as_vector().as_matrix(layer.out_dim, n)
                backend = factory.backend
                plan += steps(backend.gemm(1.0, layer.weights, source, 0.0, target, False, False))
                plan += steps(backend.activation(layer.activation.kind, target, layer.bias,
                                                 target))
                source = target
        except BaseException:
            self.release()
            raise
        self._plan = plan

    def __call__(self) -> None:
        for step in self._plan:
            step()

    def release(self) -> None:
        for matrix in self._work:
            matrix.release()
        self._plan = []

    def __enter__(self) -> ForwardPass:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


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
    if layers[-1].dropout:
        raise NnfsValueError(
            f"{what}: the output layer (layers[{len(layers) - 1}]) has dropout="
            f"{layers[-1].dropout}; dropout would drop the outputs that the cost compares with "
            "the targets: put it on a hidden layer")


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
    training = _training_sizes(count, widths, batch, [layer.dropout for layer in layers])
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
                      seed: int | np.integer[Any] | None = None) -> InferenceNetwork:
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


