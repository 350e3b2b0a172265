"""nnfs.optimizers: settings checked when an optimizer is made, fit's optimizer and eta,
weight decay on weights only, the state allocated when fit starts and rolled back with the
weights, and optimizers refused before any work where the backend lacks their operation or
their memory."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnfs
from nnfs import fully_connected
from nnfs.optimizers import SGD, Adam, AdamW, OptimizerState, decay_mask
from nnfs.training import Rollback, TrainingNetwork

# the refusals below are shown on backends made from the reference backend
pytest.importorskip("nnfs_reference", reason="the reference backend is not installed")
from nnfs_reference import ReferenceBackend

V, T = nnfs.NnfsValueError, nnfs.NnfsTypeError


def make_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.7)


def network(factory, seed=0, dropout=0.0):
    return nnfs.inference_network(factory, 4, [fully_connected(6, "tanh", dropout=dropout),
                                               fully_connected(3, "softmax")], seed=seed)


# --- settings, checked when the optimizer is made ----------------------------------------------

BAD = [
    (lambda: SGD(0.0), V, ValueError, "SGD: eta", "positive"),
    (lambda: SGD(-0.1), V, ValueError, "SGD: eta", "positive"),
    (lambda: SGD(math.nan), V, ValueError, "SGD: eta", "finite"),
    (lambda: SGD("fast"), T, TypeError, "SGD: eta", "real number"),
    (lambda: SGD(0.1, momentum=1.0), V, ValueError, "SGD: momentum", "[0, 1)"),
    (lambda: SGD(0.1, momentum=-0.5), V, ValueError, "SGD: momentum", "[0, 1)"),
    (lambda: SGD(0.1, nesterov=True), V, ValueError, "nesterov=True", "momentum above 0"),
    (lambda: SGD(0.1, momentum=0.9, nesterov="yes"), T, TypeError, "nesterov", "True or False"),
    (lambda: SGD(0.1, weight_decay=-1e-4), V, ValueError, "SGD: weight_decay", "0 or more"),
    (lambda: SGD(0.1, weight_decay=math.inf), V, ValueError, "SGD: weight_decay", "finite"),
    (lambda: Adam(eta=0), V, ValueError, "Adam: eta", "positive"),
    (lambda: Adam(betas=(1.0, 0.999)), V, ValueError, "Adam: betas[0] (beta1)", "[0, 1)"),
    (lambda: Adam(betas=(0.9, -0.1)), V, ValueError, "Adam: betas[1] (beta2)", "[0, 1)"),
    (lambda: Adam(betas=(0.9,)), T, TypeError, "Adam: betas", "a pair"),
    (lambda: Adam(betas="0.9"), T, TypeError, "Adam: betas", "a pair"),
    (lambda: Adam(eps=0.0), V, ValueError, "Adam: eps", "positive"),
    (lambda: Adam(eps=math.nan), V, ValueError, "Adam: eps", "finite"),
    (lambda: AdamW(weight_decay=-0.01), V, ValueError, "AdamW: weight_decay", "0 or more"),
    (lambda: AdamW(betas=(0.9, 1.5)), V, ValueError, "AdamW: betas[1]", "[0, 1)"),
]


@pytest.mark.parametrize("make, error, builtin, where, expected", BAD,
                         ids=[f"{case[3]}-{i}" for i, case in enumerate(BAD)])
def test_settings_out_of_range_are_refused_when_the_optimizer_is_made(make, error, builtin,
                                                                      where, expected):
    with pytest.raises(error) as raised:
        make()
    assert isinstance(raised.value, builtin)
    assert where in str(raised.value) and expected in str(raised.value)


def test_kinds_and_defaults_follow_torch_optim():
    assert SGD(0.1).kind == "sgd" and SGD(0.1, momentum=0.9).kind == "momentum"
    assert SGD(0.1, momentum=0.9, nesterov=True).kind == "nesterov"
    assert Adam().kind == "adam" and AdamW().kind == "adamw"
    assert (Adam().eta, Adam().betas, Adam().eps, Adam().weight_decay) == (1e-3, (0.9, 0.999),
                                                                           1e-8, 0.0)
    assert AdamW().weight_decay == 0.01
    assert SGD(0.1).plain and not SGD(0.1, weight_decay=0.1).plain and not Adam().plain


# --- fit's optimizer, eta and schedule ---------------------------------------------------------

def unchanged_by(call, net, factory) -> None:
    """``call`` raises, and the network and the factory's allocations are as before."""
    before = nnfs.transfer(net.parameters).copy()
    allocations = factory.stats().allocations
    with pytest.raises(nnfs.NnfsError):
        call()
    assert np.array_equal(nnfs.transfer(net.parameters), before)
    assert factory.stats().allocations == allocations


@pytest.mark.parametrize("arguments, error, expected", [
    ({"optimizer": "adam"}, TypeError, "an optimizer such as nnfs.optimizers.Adam()"),
    ({"optimizer": Adam(), "eta": 0.1}, ValueError, "give the learning rate once"),
    ({"eta": [(2, 0.1)], "schedule": [(2, 0.1)]}, ValueError, "give one schedule"),
    ({"schedule": "cosine"}, TypeError, "nnfs.schedules object"),
    ({"early_stopping": 5}, TypeError, "nnfs.EarlyStopping"),
])
def test_fit_refuses_optimizer_arguments_before_any_work(cpu, arguments, error, expected):
    X, y = make_data()
    with network(cpu) as net:
        def call():
            nnfs.fit(net, X, y, epochs=2, quiet=True, **arguments)

        unchanged_by(call, net, cpu)
        with pytest.raises(error, match=expected.replace("(", r"\(").replace(")", r"\)")):
            call()


def test_eta_is_the_shorthand_of_plain_sgd(cpu64):
    X, y = make_data()
    results = []
    for arguments in ({"eta": 0.2}, {"optimizer": SGD(0.2)}, {"optimizer": SGD(0.2),
                                                              "schedule": [(3, 0.2)]}):
        with network(cpu64) as net:
            history = nnfs.fit(net, X, y, epochs=3, batch_size=16, seed=1, quiet=True,
                               **arguments)
            results.append(nnfs.transfer(net.parameters))
            assert history.eta == [0.2] * 3
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_without_eta_or_optimizer_fit_trains_plain_sgd_at_0_1(cpu64):
    X, y = make_data()
    with network(cpu64) as net:
        assert nnfs.fit(net, X, y, epochs=2, quiet=True).eta == [0.1, 0.1]


# --- weight decay: weights, not biases ---------------------------------------------------------

def test_the_decay_mask_covers_weights_and_not_biases(cpu):
    with network(cpu) as net:
        mask = decay_mask(net)
        start = 0
        for layer in net.layers:
            weights = layer.out_dim * layer.in_dim
            assert np.all(mask[start:start + weights] == 1.0)
            assert np.all(mask[start + weights:start + weights + layer.out_dim] == 0.0)
            start += weights + layer.out_dim
        assert start == mask.size


@pytest.mark.parametrize("optimizer", [SGD(0.5, weight_decay=0.1), AdamW(0.5, weight_decay=0.1)],
                         ids=["sgd-l2", "adamw"])
def test_weight_decay_shrinks_weights_and_leaves_biases(cpu64, optimizer):
    """With a zero gradient, only decay acts: SGD's p ← p − ηλp and AdamW's p ← p(1 − ηλ)
    (Adam's moments of a zero gradient stay zero) shrink every weight by 1 − ηλ = 0.95; the
    biases do not move."""
    with network(cpu64) as net:
        for layer in net.layers:
            nnfs.transfer(np.full(layer.out_dim, 0.3), layer.bias)
        before = nnfs.transfer(net.parameters)
        mask = decay_mask(net)
        with cpu64.matrix(4, 5) as x, TrainingNetwork(net, x) as training:
            state = OptimizerState.start(optimizer, training)
            try:
                cpu64.fill(training.gradient, 0.0)
                for step in state.steps():
                    step()
            finally:
                state.release()
        after = nnfs.transfer(net.parameters)
    np.testing.assert_allclose(after[mask == 1.0], 0.95 * before[mask == 1.0], rtol=1e-14)
    np.testing.assert_array_equal(after[mask == 0.0], before[mask == 0.0])


# --- state: allocated when fit starts, rolled back with the weights ------------------------------

def test_adam_state_is_rolled_back_with_the_weights(cpu64):
    """Replaying steps from a checkpoint gives the weights of the first run bit for bit only if
    the moments and the step count are put back too."""
    rng = np.random.default_rng(4)
    with network(cpu64) as net, cpu64.matrix(4, 9, rng.normal(size=(4, 9))) as x, \
            cpu64.matrix(3, 9, np.eye(3)[rng.integers(0, 3, 9)].T) as y, \
            TrainingNetwork(net, x) as training:
        state = OptimizerState.start(Adam(0.05), training)
        try:
            step = training.step(y, nnfs.cross_entropy_cost, 1 / 9, optimizer=state)
            rollback = Rollback(training, state)
            for _ in range(3):
                step.run()
            rollback.save()
            after = []
            for _ in range(4):
                step.run()
                after.append(nnfs.transfer(net.parameters))
            assert state.step == 7
            rollback.replay(2, lambda i: step.run())
            assert state.step == 5
            np.testing.assert_array_equal(nnfs.transfer(net.parameters), after[1])
        finally:
            state.release()


@pytest.mark.parametrize("optimizer", [SGD(1e3, momentum=0.9),
                                       SGD(1e3, momentum=0.9, nesterov=True, weight_decay=0.1)],
                         ids=["momentum", "nesterov"])
def test_a_diverging_run_stops_with_finite_weights(cpu, optimizer):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 4)) * 50
    Y = rng.normal(size=(40, 2)) * 50
    with nnfs.inference_network(cpu, 4, [fully_connected(8, "relu"),
                                         fully_connected(2, "linear")], seed=0) as net:
        with pytest.raises(nnfs.TrainingDiverged) as raised:
            nnfs.fit(net, X, Y, epochs=200, batch_size=8, optimizer=optimizer, quiet=True)
        assert "diverged" in str(raised.value)
        assert np.all(np.isfinite(nnfs.transfer(net.parameters)))


def test_the_state_is_counted_in_fits_memory_check_before_anything_is_allocated():
    """A device whose memory fits plain SGD's buffers but not Adam's two moments and their
    backups refuses Adam before allocating, and trains with SGD."""

    class Small(ReferenceBackend):
        limit = None

        def memory_limits(self):
            if self.limit is None:
                return nnfs.backend_api.MemoryLimits(None, None)
            return nnfs.backend_api.MemoryLimits(self.limit - self.memory.bytes_in_use, None)

    backend = Small()
    factory = nnfs.Factory(backend)
    X, y = make_data()
    with network(factory) as net:
        count = net.parameter_count
        plan = nnfs.plan_memory(factory, 4, net.architecture, 32)
        backend.limit = backend.memory.bytes_in_use + plan.training + plan.batch_data \
            + 2 * count * 4
        unchanged_by(lambda: nnfs.fit(net, X, y, epochs=1, optimizer=Adam(), quiet=True),
                     net, factory)
        with pytest.raises(nnfs.OutOfDeviceMemory, match="batch_size 32"):
            nnfs.fit(net, X, y, epochs=1, optimizer=Adam(), quiet=True)
        nnfs.fit(net, X, y, epochs=1, eta=0.1, quiet=True)
        nnfs.fit(net, X, y, epochs=1, optimizer=SGD(0.1, momentum=0.5), quiet=True)
    factory.release()


# --- a backend without the operation -------------------------------------------------------------

class NoOptimizerStep(ReferenceBackend):
    name = "no-optimizer-step"
    capabilities = nnfs.backend_api.Capabilities(
        unsupported=frozenset({nnfs.backend_api.Operation.OPTIMIZER_STEP}))


class BeforeOptimizers(nnfs.backend_api.Backend):
    """A backend written before optimizer_step and dropout_mask existed: the reference
    backend's methods, but not those two."""

    name = "old"


for _name in ("allocate", "matrix_view", "vector_view", "read", "write", "gemm", "gemv",
              "rank1_update", "axpy", "scal", "copy", "fill", "nrm2", "sub", "mul",
              "activation", "activation_backward", "cost_sum"):
    setattr(BeforeOptimizers, _name, getattr(ReferenceBackend, _name))
BeforeOptimizers.__abstractmethods__ = frozenset()


def test_a_backend_that_does_not_implement_the_new_operations_counts_them_unsupported():
    factory = nnfs.Factory(BeforeOptimizers())
    assert {"optimizer_step", "dropout_mask"} <= factory.unsupported
    with factory.vector(3) as p, factory.vector(3) as g, \
            pytest.raises(nnfs.UnsupportedOperation, match="optimizer_step"):
        factory.optimizer_step("sgd", p, g)
    assert "optimizer_step" not in nnfs.Factory(ReferenceBackend()).unsupported


@pytest.mark.parametrize("backend_class", [NoOptimizerStep, BeforeOptimizers])
@pytest.mark.parametrize("arguments", [{"optimizer": Adam()},
                                       {"optimizer": SGD(0.1, momentum=0.9)},
                                       {"optimizer": SGD(0.1, weight_decay=0.01)},
                                       {"eta": 0.1, "schedule": nnfs.schedules.Cosine()}],
                         ids=["adam", "momentum", "weight-decay", "cosine"])
def test_an_optimizer_on_a_backend_without_its_operation_is_refused_before_any_work(
        backend_class, arguments):
    factory = nnfs.Factory(backend_class())
    X, y = make_data()
    arguments = dict(arguments)
    if "eta" in arguments:  # plain SGD, but a schedule that changes its rate every epoch
        arguments["optimizer"] = SGD(arguments.pop("eta"))
    with network(factory) as net:
        def call():
            nnfs.fit(net, X, y, epochs=2, quiet=True, **arguments)

        unchanged_by(call, net, factory)
        with pytest.raises(nnfs.UnsupportedOperation, match="does not provide optimizer_step"):
            call()
        history = nnfs.fit(net, X, y, epochs=2, eta=[(1, 0.1), (1, 0.05)], quiet=True)
        assert history.eta == [0.1, 0.05]  # plain SGD at rates known beforehand still trains
    factory.release()


# --- the factory's checked operation -------------------------------------------------------------

def test_the_factory_checks_optimizer_step_arguments(cpu):
    with cpu.vector(5) as p, cpu.vector(5) as g, cpu.vector(5) as m, cpu.vector(4) as short, \
            cpu.vector(10) as wide:
        with pytest.raises(nnfs.NnfsValueError, match="keeps 2 state vector"):
            cpu.optimizer_step("adam", p, g, (m,))
        with pytest.raises(nnfs.ShapeError, match="state\\[0\\] must have 5 entries"):
            cpu.optimizer_step("momentum", p, g, (short,))
        with pytest.raises(nnfs.NnfsValueError, match="shares memory"):
            cpu.optimizer_step("momentum", p, g, (g,))
        with pytest.raises(nnfs.NnfsValueError, match="shares memory"):
            cpu.optimizer_step("sgd", wide.subvector(0, 5), wide.subvector(3, 8))
        with pytest.raises(nnfs.ShapeError, match="hyper"):
            cpu.optimizer_step("sgd", p, g, hyper=[0.1, 0.0])
        with pytest.raises(nnfs.NnfsValueError, match="hyper"):
            cpu.optimizer_step("sgd", p, g, hyper=[math.nan] * 8)
        with pytest.raises(nnfs.NnfsValueError, match="kind must be one of"):
            cpu.optimizer_step("rmsprop", p, g)
