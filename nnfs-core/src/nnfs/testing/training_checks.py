"""The conformance checks of training beyond plain SGD: optimizer steps, dropout masks, and
training with them.

* each optimizer's fused step against numpy (``reference.optimizer_step``), with and without
  weight decay, on vectors and on windows of larger buffers, and a plan that is run again
  after its host array changed (the numbers must be read when it runs, not when it was made);
* dropout masks bit for bit against the definition (``nnfs.philox.dropout_mask``) and against
  the cpu backend, at steps and first samples beyond 2³², in column views;
* gradients with dropout against finite differences, with the mask held fixed;
* ``fit`` with every optimizer, weight decay, a schedule and dropout: the same weights as the
  cpu backend, and no allocation during its epochs.

They are registered with the others (``nnfs.testing.CHECKS``).
"""

from __future__ import annotations

import numpy as np

import nnfs
from nnfs.contract import steps
from nnfs.factory import Factory
from nnfs.kinds import HYPER_SIZE, Hyper, OptimizerKind
from nnfs.philox import dropout_mask

from . import reference as ref
from .checks import (
    CheckSkipped,
    DeclaredUnsupported,
    _check,
    _host_forward,
    _mean_loss,
    _training_ops_supported,
    _uniform,
    assert_close,
    central_differences,
    expect_unsupported,
    host_parameters,
    rounded,
    supported,
)

#: Sizes of the vectors of the optimizer checks: one element, a few, several blocks.
OPTIMIZER_SIZES = (1, 7, 70001)


def _numbers(kind: OptimizerKind, decay: float, t: int, eta: float = 0.05) -> np.ndarray:
    """A host array of a step's numbers, as core writes it."""
    if kind in (OptimizerKind.ADAM, OptimizerKind.ADAMW):
        return ref.adam_numbers(eta, (0.9, 0.99), 1e-7, decay, t)
    hyper = np.zeros(HYPER_SIZE)
    hyper[Hyper.ETA], hyper[Hyper.WEIGHT_DECAY], hyper[Hyper.MOMENTUM] = eta, decay, 0.8
    return hyper


def _declared_unsupported(factory: Factory, operation: str, call) -> None:
    """``call`` must raise UnsupportedOperation: the check is skipped, as declared."""
    expect_unsupported(call, operation)  # raises DeclaredUnsupported
    raise DeclaredUnsupported(operation)


@_check
def check_optimizer_steps(factory: Factory) -> None:
    """optimizer_step of every kind against numpy, with and without weight decay.

    On windows of a larger buffer (nothing written outside them), and one plan run twice:
    it must read its host array each time it runs."""
    if not supported(factory, "optimizer_step"):
        with factory.vector(3) as p, factory.vector(3) as g:
            _declared_unsupported(factory, "optimizer_step",
                                  lambda: factory.optimizer_step("sgd", p, g))
    rng = np.random.default_rng(20)
    backend = factory.backend
    for kind in OptimizerKind:
        for size in OPTIMIZER_SIZES:
            for decay in (0.0, 0.1):
                host = [rounded(factory, rng.normal(size=size)) for _ in range(2 + kind.state_size)]
                if kind.state_size == 2:
                    host[3] = np.abs(host[3])  # a second moment is not negative
                mask = rounded(factory, (rng.uniform(size=size) > 0.3).astype(float))
                # every vector a window inside a larger buffer, with guards on both sides
                owner = factory.vector((len(host) + 1) * (size + 2))
                try:
                    windows = [owner.subvector(i * (size + 2) + 1, i * (size + 2) + 1 + size)
                               for i in range(len(host) + 1)]
                    for window, values in zip(windows, [*host, mask], strict=True):
                        nnfs.transfer(values, window)
                    p, g, *state = windows[:len(host)]
                    d = windows[-1] if decay else None
                    hyper = _numbers(kind, decay, 1)
                    plan = steps(backend.optimizer_step(kind, p, g, tuple(state), d,
                                                                      hyper))
                    expected_p, expected_state = host[0], host[2:]
                    for t in (1, 2):  # the same plan, the next step's numbers
                        hyper[:] = _numbers(kind, decay, t, eta=0.05 * t)
                        nnfs.transfer(host[1], g)  # the plan may have used g as scratch
                        for step in plan:
                            step()
                        expected_p, expected_state = ref.optimizer_step(
                            kind, expected_p, host[1], expected_state, mask if decay else None,
                            hyper)
                        what = f"optimizer_step {kind} of {size} (decay {decay}, step {t})"
                        assert_close(nnfs.transfer(p), expected_p, factory, what, factor=5)
                        for i, (got, want) in enumerate(zip(state, expected_state, strict=True)):
                            assert_close(nnfs.transfer(got), want, factory,
                                         f"{what}: state {i}", factor=5)
                    everything = nnfs.transfer(owner)
                    guards = [everything[i * (size + 2) + j]
                              for i in range(len(host) + 1) for j in (0, size + 1)]
                    assert not np.any(guards), f"optimizer_step {kind} wrote outside its vectors"
                finally:
                    owner.release()


#: (rows, cols, rate, step, first) of the dropout checks.
DROPOUT_CASES = [(1, 1, 0.5, 0, 0), (3, 5, 0.3, 7, 0), (5, 3, 0.9, 2**32 + 3, 2**32 + 1),
                 (64, 33, 0.5, 12345, 11), (17, 9, 0.0, 1, 2)]


@_check
def check_dropout_masks(factory: Factory) -> None:
    """dropout_mask bit for bit against Philox-4x32-10 and the cpu backend.

    In column views, at steps and first samples beyond 2³², and one plan run again after its
    counter changed: it must draw the next step's mask."""
    if not supported(factory, "dropout_mask"):
        with factory.matrix(2, 2) as m:
            _declared_unsupported(factory, "dropout_mask",
                                  lambda: factory.dropout_mask(m, 0.5, 1, 0))
    cpu = None
    if factory.name != "cpu":
        try:
            cpu = nnfs.backend("cpu", factory.dtype)
        except nnfs.NnfsError:
            cpu = None
    backend = factory.backend
    for rows, cols, rate, step, first in DROPOUT_CASES:
        seed, layer = 2024, 3
        expected = dropout_mask(rows, cols, rate, seed, layer, step, first, factory.numpy_dtype)
        with factory.matrix(rows, cols + 2) as owner:
            factory.fill(owner, -7.0)
            mask = owner.columns(1, cols + 1)
            counter = np.array([step, first], dtype=np.float64)
            plan = steps(backend.dropout_mask(mask, rate, seed, layer, counter))
            for step_now in (step, step + 1):
                counter[0] = step_now
                for operation in plan:
                    operation()
                want = dropout_mask(rows, cols, rate, seed, layer, step_now, first,
                                    factory.numpy_dtype)
                got = nnfs.transfer(owner)
                what = f"dropout_mask {rows}×{cols} rate {rate} step {step_now} first {first}"
                assert np.array_equal(got[:, 1:-1], want), (
                    f"{what} on {factory.describe()}: {int(np.sum(got[:, 1:-1] != want))} of "
                    f"{want.size} entries differ from Philox-4x32-10's mask")
                assert np.all(got[:, [0, -1]] == -7.0), f"{what} wrote outside its columns"
        if cpu is not None:
            with cpu.matrix(rows, cols) as theirs:
                cpu.dropout_mask(theirs, rate, seed, layer, step, first)
                assert np.array_equal(nnfs.transfer(theirs), expected), (
                    f"dropout_mask {rows}×{cols}: the cpu backend's mask differs")


@_check
def check_gradients_with_dropout(factory: Factory) -> None:
    """Gradients with dropout against finite differences, the masks held fixed.

    The masks are read back from the device and checked to be Philox's."""
    if not _training_ops_supported(factory):
        return
    if not supported(factory, "dropout_mask"):
        with factory.matrix(2, 2) as m:
            _declared_unsupported(factory, "dropout_mask",
                                  lambda: factory.dropout_mask(m, 0.5, 1, 0))
    rng = np.random.default_rng(21)
    sizes, kinds, rates = (4, 6, 5, 3), ("tanh", "sigmoid", "sigmoid"), (0.3, 0.5, 0.0)
    n, step = 6, 1e-6
    allowed = 1e-6 if factory.dtype == "float64" else 2e-3
    x_host = rounded(factory, _uniform(rng, (sizes[0], n)))
    y_host = rounded(factory, _uniform(rng, (sizes[-1], n), 0.1, 0.9))
    layers = [nnfs.fully_connected(u, k, dropout=r)
              for u, k, r in zip(sizes[1:], kinds, rates, strict=True)]
    with factory.matrix(sizes[0], n, x_host) as x, factory.matrix(sizes[-1], n, y_host) as y, \
            nnfs.inference_network(factory, sizes[0], layers, seed=5) as network, \
            nnfs.training_network(network, x, seed=77) as training:
        training.set_dropout_step(3)
        training.forward()
        training.backward(y, nnfs.quadratic_cost, 1.0 / n)
        gradient = nnfs.transfer(training.gradient).astype(np.float64)
        masks = [None if layer.mask is None else nnfs.transfer(layer.mask).astype(np.float64)
                 for layer in training.layers]
        weights, biases = host_parameters(network)
    for i, mask in enumerate(masks[:-1]):
        assert mask is not None  # every layer but the last has dropout here
        expected = dropout_mask(sizes[i + 1], n, rates[i], 77, i, 3, 0, factory.numpy_dtype)
        assert np.array_equal(mask, expected), f"the mask of layer {i} is not Philox's"
    parameters = np.concatenate([q for w, b in zip(weights, biases, strict=True)
                                 for q in (w.T.ravel(), b)])
    views, start = [], 0
    for w, b in zip(weights, biases, strict=True):
        views.append(parameters[start:start + w.size].reshape(w.shape[1], w.shape[0]).T)
        start += w.size
        views.append(parameters[start:start + b.size])
        start += b.size

    def loss() -> float:
        a = x_host
        for w, b, kind, mask in zip(views[0::2], views[1::2], kinds, masks, strict=True):
            a = _host_forward([w], [b], [kind], a)
            if mask is not None:
                a = a * mask  # ã = a ⊙ m, the masks held fixed
        return _mean_loss(y_host, a, "quadratic", kinds[-1])

    numeric = central_differences(parameters, loss, step)
    error = np.abs(gradient - numeric) / np.maximum(1e-2, np.abs(numeric))
    worst = int(np.argmax(error))
    assert error[worst] <= allowed, (
        f"gradient of parameter {worst} with dropout: backward gives {gradient[worst]:.8g}, "
        f"finite differences {numeric[worst]:.8g} (relative error {error[worst]:.2g})")


def _optimizers():
    from nnfs.optimizers import SGD, Adam, AdamW
    from nnfs.schedules import Cosine

    return [(SGD(0.2, momentum=0.9), None), (SGD(0.2, momentum=0.9, nesterov=True,
                                                  weight_decay=0.01), None),
            (Adam(0.01, weight_decay=0.001), None), (AdamW(0.01), Cosine()),
            (SGD(0.3), Cosine())]


def _fit_host_data(rng):
    x = _uniform(rng, (96, 8))
    labels = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64) + (x[:, 3] > 0.5)
    return x, labels


@_check
def check_optimizers_agree_with_cpu(factory: Factory) -> None:
    """fit with every optimizer, a schedule and dropout: the cpu backend's weights.

    Momentum, Nesterov, weight decay, Adam, AdamW, a cosine schedule and dropout, for six
    epochs of mini-batches: the same costs and weights as the cpu backend, and no allocation
    during the epochs."""
    if not _training_ops_supported(factory):
        return
    if not supported(factory, "optimizer_step"):
        with factory.vector(3) as p, factory.vector(3) as g:
            _declared_unsupported(factory, "optimizer_step",
                                  lambda: factory.optimizer_step("sgd", p, g))
    dropout = supported(factory, "dropout_mask")
    cpu = factory
    if factory.name != "cpu":
        try:
            cpu = nnfs.backend("cpu", factory.dtype)
        except nnfs.NnfsError as error:
            raise CheckSkipped(f"the cpu backend is not usable to compare with: {error}") from None
    rng = np.random.default_rng(22)
    x, labels = _fit_host_data(rng)
    layers = [nnfs.fully_connected(16, "tanh", dropout=0.25 if dropout else 0.0),
              nnfs.fully_connected(12, "relu"), nnfs.fully_connected(3, "softmax")]
    for optimizer, schedule in _optimizers():
        results = []
        for backend in dict.fromkeys((cpu, factory)):
            allocations: list[int] = []

            def on_epoch(epoch, history, backend=backend, allocations=allocations):
                allocations.append(backend.stats().allocations)

            with nnfs.inference_network(backend, 8, layers, seed=4) as network:
                history = nnfs.fit(network, x, labels, optimizer=optimizer, schedule=schedule,
                                   epochs=6, batch_size=20, seed=9, quiet=True,
                                   on_epoch=on_epoch)
                results.append((np.array(history.cost), nnfs.transfer(network.parameters)))
            assert len(set(allocations)) == 1, (
                f"fit with {optimizer} on {backend.describe()} allocated during its epochs: "
                f"allocation counts after each epoch {allocations}")
        if len(results) == 1:
            continue
        (cpu_costs, cpu_parameters), (costs, parameters) = results
        tolerance = 1e-9 if factory.dtype == "float64" else 2e-3
        assert np.allclose(costs, cpu_costs, rtol=tolerance, atol=tolerance), (
            f"fit with {optimizer}: costs {costs.tolist()} differ from the cpu backend's "
            f"{cpu_costs.tolist()}")
        assert np.allclose(parameters, cpu_parameters, rtol=tolerance, atol=tolerance), (
            f"fit with {optimizer}: the weights differ from the cpu backend's by up to "
            f"{np.max(np.abs(parameters - cpu_parameters)):.3g}")
