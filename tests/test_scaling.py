"""The scaling nnfs train trains through, folded into the model it saves (issues #16, #19): the
model takes the data as the user has it, and folding never writes a weight that is not finite."""

from __future__ import annotations

import numpy as np
import pytest

import nnfs
from nnfs import _scaling, fully_connected
from nnfs.data import DataSet


def _data(task: str, rows: int = 64) -> DataSet:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 4)) * [3, 0.2, 50, 1] + [10, -4, 1000, 7]
    X[:, 3] = 7.0  # a feature constant in the training data
    y = X[:, 0] * 5 + 200 if task == "regression" else (X[:, 0] > 10).astype(int)
    return DataSet(X, y, "toy", task)


@pytest.mark.parametrize("layers", [[fully_connected(1, "linear")],
                                    [fully_connected(5, "tanh"), fully_connected(1, "linear")],
                                    [fully_connected(5, "relu"), fully_connected(3, "tanh"),
                                     fully_connected(1, "linear")]],
                         ids=["one-layer", "two-layers", "three-layers"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_folded_model_on_raw_data_is_the_trained_one_on_scaled_data(layers, task):
    data = _data(task)
    scaling = _scaling.scaling_for(data, standardize=True)
    assert scaling.constant.tolist() == [False, False, False, True]
    factory = nnfs.backend("cpu", "float64")
    with nnfs.inference_network(factory, 4, layers, seed=1) as network:
        expected = nnfs.predict(network, scaling.inputs(data.X))
        if task == "regression":  # the targets' scale back on
            expected = expected * scaling.target_scale + scaling.target_mean
        model, note = _scaling.fold_scaling(network, scaling)
        assert model is network and note is None
        np.testing.assert_allclose(nnfs.predict(model, data.X), expected, rtol=1e-10,
                                   atol=1e-9)


def test_the_readers_own_scaling_is_folded_without_standardizing():
    data = DataSet(np.arange(12.0).reshape(4, 3) * 16, np.array([0, 1, 0, 1]), "pixels",
                   feature_scale=1 / 16)
    scaling = _scaling.scaling_for(data, standardize=False)
    np.testing.assert_array_equal(scaling.inputs(data.X), data.X / 16)
    factory = nnfs.backend("cpu", "float64")
    with nnfs.inference_network(factory, 3, [fully_connected(2, "softmax")], seed=0) as net:
        expected = nnfs.predict(net, data.X / 16)
        _scaling.fold_scaling(net, scaling)
        np.testing.assert_allclose(nnfs.predict(net, data.X), expected, rtol=1e-12)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_fold_that_would_overflow_puts_the_scaling_in_layers_of_its_own(task):
    data = _data(task)
    scaling = _scaling.scaling_for(data, standardize=True)
    factory = nnfs.backend("cpu", "float32")
    with nnfs.inference_network(factory, 4, [fully_connected(5, "tanh"),
                                             fully_connected(1, "linear")], seed=2) as network:
        weights = nnfs.transfer(network.layers[0].weights).copy()
        weights[:, 1] = 1e38  # feature 1's spread is 0.2: 1e38 / 0.2 is no float32
        nnfs.transfer(weights, network.layers[0].weights)
        before = nnfs.transfer(network.parameters).copy()
        expected = nnfs.predict(network, scaling.inputs(data.X)).astype(np.float64)
        if task == "regression":
            expected = expected * scaling.target_scale + scaling.target_mean
        model, note = _scaling.fold_scaling(network, scaling)
        try:
            assert model is not network and "would overflow float32" in note
            np.testing.assert_array_equal(nnfs.transfer(network.parameters), before)
            kinds = [(layer.out_dim, layer.activation.kind) for layer in model.layers]
            assert kinds == [(4, "linear"), (5, "tanh"), (1, "linear")] + (
                [(1, "linear")] if task == "regression" else [])
            assert np.isfinite(nnfs.transfer(model.parameters)).all()
            np.testing.assert_allclose(nnfs.predict(model, data.X), expected, rtol=1e-4,
                                       atol=1e-3 * max(1.0, scaling.target_scale))
        finally:
            model.release()


def test_what_fits_no_layer_is_refused_and_leaves_the_network_alone():
    """Targets spread over 1e300 cannot come out of a float32 network, folded or not (nnfs
    train refuses them before training: check_targets)."""
    data = DataSet(np.array([[0.0], [1.0], [2.0]]), np.array([0.0, 1e300, -1e300]), "wide",
                   "regression")
    scaling = _scaling.scaling_for(data, standardize=True)
    factory = nnfs.backend("cpu", "float32")
    with nnfs.inference_network(factory, 1, [fully_connected(1, "linear")]) as network:
        before = nnfs.transfer(network.parameters).copy()
        with pytest.raises(nnfs.NnfsValueError, match="do not fit float32 even as layers of "
                                                      "their own; nothing was saved"):
            _scaling.fold_scaling(network, scaling)
        np.testing.assert_array_equal(nnfs.transfer(network.parameters), before)
    with pytest.raises(nnfs.NnfsValueError, match=r"the targets reach 1e\+300, and a float32 "
                                                  r"network's outputs hold at most 3.4\d*e\+38"):
        _scaling.check_targets(data.y, "float32")
    _scaling.check_targets(data.y, "float64")


def test_features_a_dtype_cannot_resolve_are_named():
    X = np.column_stack([np.linspace(-1, 1, 20), 1e9 + np.linspace(0, 0.01, 20)])
    with pytest.raises(nnfs.NnfsValueError, match=r"feature 1 \('when'\) varies by .* float32 "
                                                  "cannot tell its values apart"):
        _scaling.check_representable(X, "float32", ("x", "when"))
    _scaling.check_representable(X, "float64", ("x", "when"))
    _scaling.check_representable(np.column_stack([X[:, 0], np.full(20, 1e9)]), "float32", None)
