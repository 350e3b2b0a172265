"""Dropout: fully_connected(..., dropout=p) drops outputs while training only, with masks
keyed by the seed, the layer and the step; inference and validation are unchanged; every
buffer is allocated when training starts; a backend without dropout_mask is refused before
any work.

Each backend's masks against Philox and the cpu backend, and the gradients with fixed masks
against finite differences, are checked by the conformance kit (``dropout_masks``,
``gradients_with_dropout``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnfs
from conftest import backend_params
from nnfs import fully_connected
from nnfs.philox import dropout_mask

# the refusals below are shown on backends made from the reference backend
pytest.importorskip("nnfs_reference", reason="the reference backend is not installed")
from nnfs_reference import ReferenceBackend


def make_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)


def layers(rate=0.3):
    return [fully_connected(12, "relu", dropout=rate), fully_connected(8, "tanh", dropout=rate),
            fully_connected(3, "softmax")]


@pytest.mark.parametrize("rate, error, builtin, expected", [
    (1.0, nnfs.NnfsValueError, ValueError, "in [0, 1)"),
    (-0.1, nnfs.NnfsValueError, ValueError, "in [0, 1)"),
    (math.nan, nnfs.NnfsValueError, ValueError, "finite"),
    ("half", nnfs.NnfsTypeError, TypeError, "real number"),
])
def test_a_rate_outside_0_1_is_refused(rate, error, builtin, expected):
    with pytest.raises(error) as raised:
        fully_connected(4, "relu", dropout=rate)
    assert isinstance(raised.value, builtin)
    assert "fully_connected: dropout" in str(raised.value) and expected in str(raised.value)


def test_dropout_on_the_output_layer_is_refused(cpu):
    with pytest.raises(nnfs.NnfsValueError, match=r"output layer .* dropout=0.5"):
        nnfs.inference_network(cpu, 3, [fully_connected(4, "tanh"),
                                        fully_connected(2, "softmax", dropout=0.5)])


def test_the_rate_is_part_of_the_architecture_and_repr(cpu):
    with nnfs.inference_network(cpu, 5, layers(0.25)) as net:
        assert [layer.dropout for layer in net.architecture] == [0.25, 0.25, 0.0]
        assert "dropout=0.25" in repr(net.architecture[0])
        assert "dropout 0.25" in repr(net.layers[0])


@pytest.mark.parametrize("factory", backend_params(), indirect=True)
def test_inference_is_unchanged_by_dropout(factory):
    X, _ = make_data()
    with nnfs.inference_network(factory, 5, layers(0.5), seed=1) as dropped, \
            nnfs.inference_network(factory, 5, layers(0.0), seed=1) as plain:
        np.testing.assert_array_equal(nnfs.predict(dropped, X), nnfs.predict(plain, X))


def test_the_forward_pass_of_training_masks_each_hidden_layer(cpu64):
    rng = np.random.default_rng(2)
    with cpu64.matrix(5, 7, rng.normal(size=(5, 7))) as x, \
            nnfs.inference_network(cpu64, 5, layers(0.5), seed=3) as net, \
            nnfs.training_network(net, x, seed=11) as training:
        training.set_dropout_step(4)
        out = nnfs.transfer(training.forward()).copy()
        again = nnfs.transfer(training.forward())
        np.testing.assert_array_equal(out, again)  # the same step draws the same masks
        for number, layer in enumerate(training.layers[:2]):
            mask = nnfs.transfer(layer.mask)
            np.testing.assert_array_equal(mask, dropout_mask(layer.a.rows, 7, 0.5, 11, number, 4))
            np.testing.assert_array_equal(nnfs.transfer(layer.dropped),
                                          nnfs.transfer(layer.a) * mask)
        assert training.layers[2].mask is None
        training.set_dropout_step(5)
        assert not np.array_equal(nnfs.transfer(training.forward()), out)


def test_fit_with_dropout_is_reproducible_by_seed_and_differs_without_it(cpu64):
    X, y = make_data()
    results = {}
    for name, seed, rate in (("a", 5, 0.3), ("b", 5, 0.3), ("other seed", 6, 0.3),
                             ("no dropout", 5, 0.0)):
        with nnfs.inference_network(cpu64, 5, layers(rate), seed=0) as net:
            nnfs.fit(net, X, y, epochs=3, batch_size=16, seed=seed, eta=0.1, quiet=True)
            results[name] = nnfs.transfer(net.parameters)
    np.testing.assert_array_equal(results["a"], results["b"])
    assert not np.allclose(results["a"], results["other seed"])
    assert not np.allclose(results["a"], results["no dropout"])


def test_validation_is_measured_without_dropout(cpu64):
    X, y = make_data()
    with nnfs.inference_network(cpu64, 5, layers(0.5), seed=0) as net:
        history = nnfs.fit(net, X, y, epochs=2, batch_size=16, seed=1, validation=(X, y),
                           quiet=True)
        outputs = nnfs.predict(net, X)
    expected = -np.mean(np.log(np.clip(outputs[np.arange(len(y)), y], 2e-16, 1)))
    assert math.isclose(history.validation_cost[-1], expected, rel_tol=1e-12)
    assert history.validation_accuracy[-1] == np.mean(outputs.argmax(axis=1) == y)


def test_each_step_of_sgd_draws_new_masks_and_a_later_call_goes_on(cpu64):
    rng = np.random.default_rng(3)
    with cpu64.matrix(5, 9, rng.normal(size=(5, 9))) as x, \
            cpu64.matrix(3, 9, np.eye(3)[rng.integers(0, 3, 9)].T) as y, \
            nnfs.inference_network(cpu64, 5, layers(0.5), seed=3) as net, \
            nnfs.training_network(net, x, seed=2) as training:
        nnfs.sgd(training, y, nnfs.cross_entropy_cost, 3, 0.1)
        assert training.dropout_counter[0] == 3
        np.testing.assert_array_equal(nnfs.transfer(training.layers[0].mask),
                                      dropout_mask(12, 9, 0.5, 2, 0, 2))
        nnfs.sgd(training, y, nnfs.cross_entropy_cost, 2, 0.1)
        assert training.dropout_counter[0] == 5


@pytest.mark.parametrize("factory", backend_params(), indirect=True)
def test_an_epoch_with_dropout_allocates_nothing(factory):
    X, y = make_data()
    counts = []
    with nnfs.inference_network(factory, 5, layers(0.4), seed=0) as net:
        nnfs.fit(net, X, y, epochs=4, batch_size=20, seed=1, quiet=True,
                 optimizer=nnfs.optimizers.Adam(0.01),
                 on_epoch=lambda epoch, history: counts.append(factory.stats().allocations))
    assert len(set(counts)) == 1, counts


def test_the_memory_plan_counts_the_mask_and_the_masked_output(cpu):
    with_dropout = nnfs.plan_memory(cpu, 5, layers(0.3), batch=10)
    without = nnfs.plan_memory(cpu, 5, layers(0.0), batch=10)
    assert with_dropout.training - without.training == 2 * (12 + 8) * 10 * cpu.itemsize


class NoDropout(ReferenceBackend):
    name = "no-dropout"
    capabilities = nnfs.backend_api.Capabilities(
        unsupported=frozenset({nnfs.backend_api.Operation.DROPOUT_MASK}))


def test_dropout_on_a_backend_without_dropout_mask_is_refused_before_any_work():
    factory = nnfs.Factory(NoDropout())
    X, y = make_data()
    with nnfs.inference_network(factory, 5, layers(0.3), seed=0) as net:
        before, allocations = nnfs.transfer(net.parameters), factory.stats().allocations
        with pytest.raises(nnfs.UnsupportedOperation, match="dropout needs dropout_mask"):
            nnfs.fit(net, X, y, epochs=1, quiet=True)
        assert np.array_equal(nnfs.transfer(net.parameters), before)
        assert factory.stats().allocations == allocations
        nnfs.predict(net, X)  # inference needs no mask
    with nnfs.inference_network(factory, 5, layers(0.0), seed=0) as net:
        nnfs.fit(net, X, y, epochs=1, quiet=True)  # without dropout it trains
    factory.release()


def test_the_factory_checks_dropout_mask_arguments(cpu):
    with cpu.matrix(3, 4) as mask:
        for arguments, expected in [((1.0, 1, 0), "rate must be in"), ((0.5, -1, 0), "seed"),
                                    ((0.5, 2**32, 0), "seed"), ((0.5, 1, 2.5), "layer"),
                                    ((0.5, 1, 0, -3), "step")]:
            with pytest.raises(nnfs.NnfsValueError, match=expected):
                cpu.dropout_mask(mask, *arguments)
