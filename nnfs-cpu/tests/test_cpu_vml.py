"""The CPU backend's use of MKL's vector functions (VML) for activations, their derivatives
and bias additions, when MKL multiplies: each function against numpy, the refusals that send
the backend back to numpy, and training with and without them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nnfs_cpu", reason="nnfs-cpu is not installed here: pip install ./nnfs-cpu")

import nnfs
from conftest import cpu_factory, run_kit_check
from nnfs import backend_api as api, fully_connected
from nnfs.testing import CHECKS
from nnfs_cpu import backend as cpu_backend, vml as cpu_vml

VML = cpu_vml.mkl_vml()
needs_vml = pytest.mark.skipif(isinstance(VML, str), reason=f"no MKL here: {VML}")

DTYPES = [np.float32, np.float64]


def tolerance(dtype) -> float:
    return 2e-6 if dtype == np.float32 else 1e-14


@needs_vml
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 5, 70000])
def test_each_function_matches_numpy(dtype, n):
    rng = np.random.default_rng(n)
    x = rng.uniform(-8, 8, n).astype(dtype)
    y = rng.uniform(0.5, 4, n).astype(dtype)
    wide = x.astype(np.float64), y.astype(np.float64)
    expected = {"Sqr": wide[0] ** 2, "Exp": np.exp(wide[0]), "Tanh": np.tanh(wide[0]),
                "Mul": wide[0] * wide[1]}
    for routine, value in expected.items():
        out = np.empty_like(x)
        call = (VML.unary(routine, x, out) if routine in ("Sqr", "Exp", "Tanh")
                else VML.mul(x, y, out))
        call()
        np.testing.assert_allclose(out, value, rtol=tolerance(dtype), atol=tolerance(dtype),
                                   err_msg=routine)
    out = np.empty_like(x)
    VML.linear_frac(x, y, -0.5, 2.0, 0.25, 1.0, out)()
    np.testing.assert_allclose(out, (-0.5 * wide[0] + 2) / (0.25 * wide[1] + 1),
                               rtol=tolerance(dtype), atol=tolerance(dtype))


@needs_vml
def test_arrays_vml_cannot_take_are_left_to_numpy():
    """None (the caller goes on with numpy) for anything but equally long contiguous vectors
    of one floating dtype with a writable output; never a wrong call."""
    x = np.linspace(-1, 1, 12)
    out = np.empty_like(x)
    assert VML.unary("Tanh", x[::2], out[:6]) is None  # strided
    assert VML.unary("Tanh", x.reshape(3, 4), out.reshape(3, 4)) is None  # not a vector
    assert VML.unary("Tanh", x[:5], out[:6]) is None  # unequal lengths
    assert VML.unary("Tanh", x.astype(np.float32), out) is None  # mixed dtypes
    assert VML.unary("Tanh", x.astype(np.int64), out.astype(np.int64)) is None
    assert VML.unary("Tanh", x[:0], out[:0]) is None  # empty
    out.flags.writeable = False
    assert VML.unary("Tanh", x, out) is None
    with pytest.raises(ValueError, match="not a unary VML routine: 'Mul'"):
        VML.unary("Mul", x, x)


def test_vml_that_answers_wrongly_is_not_used():
    class Wrong(cpu_vml.Vml):
        def __init__(self):
            self.name = "wrong"

        def _call(self, routine, arrays, *numbers):
            return lambda: None  # writes nothing

    assert not cpu_vml._agrees(Wrong())
    if not isinstance(VML, str):
        assert cpu_vml._agrees(VML)


def test_bad_vml_option():
    with pytest.raises(nnfs.NnfsTypeError, match="vml must be True or False, got 1"):
        nnfs.backend("cpu", vml=1)


@needs_vml
def test_vml_is_used_with_mkl_unless_told_otherwise():
    assert "vector math" in cpu_factory("float32", blas="mkl").describe()
    assert "vector math" not in cpu_factory("float32", vml=False).describe()
    assert "vector math" not in cpu_factory("float32", blas="numpy").describe()


@needs_vml
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.name)
def test_the_kit_passes_with_mkl_products_and_numpy_activations(check, dtype):
    run_kit_check(check, cpu_factory(dtype, vml=False))


@needs_vml
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_activations_saturate_without_overflow_or_nan(kind, dtype):
    """exp(−s) overflows to ∞ for very negative s in the float64 sigmoid, and the float32 one
    goes through tanh: both must give the limits 0 and 1 (−1 and 1 for tanh), not NaN."""
    factory = cpu_factory(dtype, blas="mkl")
    values = [-1e4, -800.0, -90.0, -1.0, 0.0, 1.0, 90.0, 800.0, 1e4]
    s = np.tile(values, (cpu_backend.VML_MIN // len(values) + 1, 1))  # enough to go to MKL
    reference = (0.5 * np.tanh(0.5 * s) + 0.5) if kind == "sigmoid" else np.tanh(s)
    with factory.matrix(*s.shape, s) as z, factory.vector(s.shape[0]) as bias, \
            factory.matrix(*s.shape) as out:
        factory.activation(kind, z, out, bias)
        got = nnfs.transfer(out)
        factory.activation(kind, z, z)  # in place, without a bias
        in_place = nnfs.transfer(z)
    for values in (got, in_place):
        assert np.all(np.isfinite(values))
        np.testing.assert_allclose(values, reference, rtol=1e-6, atol=1e-7)


@needs_vml
def test_small_activations_stay_with_numpy():
    """Below VML_MIN elements a ctypes call costs more than a ufunc: such layers keep numpy's
    functions, and larger ones go to MKL's."""
    factory = cpu_factory("float32", blas="mkl")
    with factory.matrix(4, 8) as small, factory.matrix(64, 64) as large:
        for matrix, expected in ((small, False), (large, True)):
            steps = api.steps(factory.backend.activation("tanh", matrix, None, matrix))
            names = {getattr(getattr(step, "func", step), "__name__", "") for step in steps}
            assert ("vmsTanh" in names) is expected, names


def forward_outputs(factory, kinds, batch=70):
    """The training network's output after its forward pass, and the inference network's on
    the same input: the first goes through ``_prepare_layer``, the second through the plain
    product and activation."""
    rng = np.random.default_rng(11)
    layers = [fully_connected(width, kind) for width, kind in zip((300, 40, 3), kinds, strict=True)]
    with factory.matrix(20, batch, rng.uniform(-1, 1, (20, batch))) as x, \
            nnfs.inference_network(factory, 20, layers, seed=4) as network, \
            nnfs.training_network(network, x) as training:
        trained = nnfs.transfer(training.forward())
        inferred = nnfs.transfer(network(x))
    return trained, inferred


@needs_vml
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kinds", [("sigmoid", "tanh", "sigmoid"), ("tanh", "relu", "linear")])
def test_the_layer_forward_pass_agrees_with_numpy_and_with_inference(kinds, dtype):
    trained, inferred = forward_outputs(cpu_factory(dtype, blas="mkl"), kinds)
    plain, _ = forward_outputs(cpu_factory(dtype, vml=False), kinds)
    close = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(trained, inferred, rtol=close, atol=close)
    np.testing.assert_allclose(trained, plain, rtol=close, atol=close)


def train(factory, epochs=30):
    rng = np.random.default_rng(8)
    x_host, y_host = rng.uniform(-1, 1, (10, 300)), rng.uniform(0.1, 0.9, (2, 300))
    layers = [fully_connected(250, "sigmoid"), fully_connected(30, "tanh"),
              fully_connected(2, "sigmoid")]
    with factory.matrix(10, 300, x_host) as x, factory.matrix(2, 300, y_host) as y, \
            nnfs.inference_network(factory, 10, layers, seed=6) as network, \
            nnfs.training_network(network, x) as training:
        costs = nnfs.sgd(training, y, nnfs.quadratic_cost, [(epochs // 2, 0.5), (epochs // 2, 0.2)])
        return nnfs.transfer(network.parameters), costs


@needs_vml
def test_training_with_vml_follows_numpy_step_by_step():
    """Layers of 75000 elements: more than one VML block per pass, and MKL's threads."""
    vml_parameters, vml_costs = train(cpu_factory("float64", blas="mkl"))
    numpy_parameters, numpy_costs = train(cpu_factory("float64", blas="numpy", direct_blas=False))
    np.testing.assert_allclose(vml_parameters, numpy_parameters, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vml_costs, numpy_costs, rtol=1e-10)
