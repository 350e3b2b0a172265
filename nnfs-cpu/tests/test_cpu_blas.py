"""The CPU backend's direct calls into numpy's BLAS (gemm and gemv with α and β), and the
training loop's update inside the weight-gradient product on factories that accumulate."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nnfs_cpu", reason="nnfs-cpu is not installed here: pip install ./nnfs-cpu")

import nnfs
from conftest import cpu_factory, run_kit_check
from nnfs import fully_connected
from nnfs.testing import CHECKS
from nnfs_cpu import blas as cpu_blas

BLAS = cpu_blas.numpy_blas()
needs_blas = pytest.mark.skipif(BLAS is None, reason="numpy's BLAS library was not found here, "
                                "so the CPU backend goes through numpy functions only")
MKL = cpu_blas.mkl_blas()
needs_mkl = pytest.mark.skipif(isinstance(MKL, str), reason=f"no MKL here: {MKL}")
LIBRARIES = [pytest.param(lambda: BLAS, marks=needs_blas, id="numpy-blas"),
             pytest.param(lambda: MKL, marks=needs_mkl, id="mkl")]


def operand(rng, rows, cols, dtype, layout):
    """A rows × cols array laid out as ``layout``: C order, a transpose, or rows of a wider
    array (a view whose leading dimension is not its width)."""
    if layout == "c":
        return rng.uniform(-1, 1, (rows, cols)).astype(dtype)
    if layout == "t":
        return rng.uniform(-1, 1, (cols, rows)).astype(dtype).T
    return rng.uniform(-1, 1, (rows, cols + 3)).astype(dtype)[:, 1:cols + 1]


SHAPES = [(1, 1, 1), (1, 5, 3), (4, 1, 3), (3, 4, 1), (7, 5, 6), (64, 33, 17)]
LAYOUTS = ["c", "t", "view"]


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gemm_matches_numpy_over_layouts(dtype, shape, library):
    library = library()
    m, k, n = shape
    rng = np.random.default_rng(sum(shape))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for left_layout in LAYOUTS:
        for right_layout in LAYOUTS:
            left = operand(rng, m, k, dtype, left_layout)
            right = operand(rng, k, n, dtype, right_layout)
            out = operand(rng, m, n, dtype, "view")  # rows of a wider array
            expected = -0.75 * (left.astype(np.float64) @ right) + 1.25 * out
            call = library.gemm(-0.75, left, right, 1.25, out)
            assert call is not None, (left_layout, right_layout)
            call()
            np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (9, 4)], ids=str)
def test_gemv_matches_numpy_over_layouts(dtype, shape, library):
    library = library()
    rows, cols = shape
    rng = np.random.default_rng(rows * 10 + cols)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for layout in LAYOUTS:
        matrix = operand(rng, rows, cols, dtype, layout)
        x = rng.uniform(-1, 1, 2 * cols).astype(dtype)[::2]  # a strided vector
        y = rng.uniform(-1, 1, rows).astype(dtype)
        expected = 0.5 * (matrix.astype(np.float64) @ x) - 2.0 * y
        call = library.gemv(0.5, matrix, x, -2.0, y)
        assert call is not None, layout
        call()
        np.testing.assert_allclose(y, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dot_matches_numpy_for_contiguous_and_strided_vectors(dtype, library):
    library = library()
    rng = np.random.default_rng(3)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for n in (1, 7, 40000):
        x = rng.uniform(-1, 1, 2 * n).astype(dtype)
        y = rng.uniform(-1, 1, n).astype(dtype)
        for left in (x[:n], x[::2]):
            call = library.dot(left, y)
            assert call is not None
            assert call() == pytest.approx(float(left.astype(np.float64) @ y), rel=tolerance)
    y.flags.writeable = False  # dot only reads
    assert library.dot(x[:n], y)() == pytest.approx(float(x[:n].astype(np.float64) @ y),
                                                    rel=tolerance)
    assert library.dot(x[:3], y[:4]) is None  # unequal lengths
    assert library.dot(x[:3].astype(np.float32 if dtype == np.float64 else np.float64),
                       y[:3]) is None  # mixed dtypes


@needs_blas
def test_arrays_blas_cannot_take_are_left_to_numpy():
    """None (the caller goes on with numpy) for what BLAS cannot describe; never a wrong call."""
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (6, 8))
    b = rng.uniform(-1, 1, (8, 5))
    c = np.zeros((6, 5))
    assert BLAS.gemm(1.0, a[::2, ::2], b[:4], 0.5, c[:3]) is None  # no contiguous direction
    assert BLAS.gemm(1.0, a[:, :0], b[:0], 0.5, c) is None  # k = 0
    assert BLAS.gemm(1.0, a, b, 0.5, c[:, ::-1]) is None  # reversed output
    assert BLAS.gemm(1.0, a.astype(np.float32), b, 0.5, c) is None  # mixed dtypes
    assert BLAS.gemm(1.0, a.astype(np.int64), b.astype(np.int64), 0.5, c.astype(np.int64)) is None
    c.flags.writeable = False
    assert BLAS.gemm(1.0, a, b, 0.5, c) is None
    assert BLAS.gemv(1.0, a[::2, ::2], b[:4, 0], 0.5, np.zeros(3)) is None
    c.flags.writeable = True
    assert BLAS.gemm(1.0, a, b[:4], 0.5, c) is None  # shapes that do not chain
    assert BLAS.gemm(1.0, a, b, 0.5, c[:4]) is None
    assert BLAS.gemv(1.0, a, b[:, 0], 0.5, np.zeros(5)) is None


@needs_blas
def test_a_bound_call_keeps_its_arrays_alive():
    """The call carries raw addresses: it must hold the arrays, or a released network's memory
    could be freed under a plan that still writes into it."""
    import gc
    import weakref

    left, right, out = np.ones((3, 4)), np.ones((4, 2)), np.zeros((3, 2))
    call = BLAS.gemm(2.0, left, right, 0.0, out)
    watch = weakref.ref(out)
    del left, right, out
    gc.collect()
    assert watch() is not None
    call()
    np.testing.assert_array_equal(watch(), np.full((3, 2), 8.0))


def test_without_threadpoolctl_or_a_library_the_backend_uses_numpy_alone(monkeypatch):
    import sys

    import threadpoolctl

    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [])
    assert cpu_blas.numpy_blas.__wrapped__() is None
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import threadpoolctl fails
    assert cpu_blas.numpy_blas.__wrapped__() is None
    monkeypatch.setattr("nnfs_cpu.backend.numpy_blas", lambda: None)
    factory = cpu_factory("float64", blas="numpy")
    assert not factory.accumulates and "BLAS" not in factory.describe()
    with factory.matrix(2, 3, np.ones((2, 3))) as a, factory.matrix(3, 2, np.ones((3, 2))) as b, \
            factory.matrix(2, 2, np.ones((2, 2))) as c:
        factory.gemm(0.5, a, b, 2.0, c)
        np.testing.assert_array_equal(nnfs.transfer(c), np.full((2, 2), 3.5))


def test_a_library_that_answers_wrongly_is_not_used(monkeypatch):
    """The load-time check: a library whose gemm gives other numbers than numpy's (one called
    with the wrong integer size, say) is refused."""
    class Wrong(cpu_blas.Blas):
        def __init__(self):
            pass

        def gemm(self, *args):
            return lambda: None  # does nothing: its products are wrong

        def gemv(self, *args):
            return lambda: None

        def dot(self, *args):
            return lambda: 0.0

    assert not cpu_blas._agrees(Wrong())
    if BLAS is not None:
        assert cpu_blas._agrees(BLAS)


def test_bad_blas_options():
    with pytest.raises(nnfs.NnfsTypeError, match="direct_blas must be True or False, got 'yes'"):
        nnfs.backend("cpu", direct_blas="yes")
    with pytest.raises(nnfs.NnfsValueError,  # the backend's own check, when made directly
                       match="blas must be one of 'auto', 'mkl', 'numpy', got 'openblas'"):
        cpu_factory(blas="openblas")
    with pytest.raises(nnfs.NnfsValueError,  # and the declared option's, through nnfs.backend
                       match="blas='openblas' is not allowed; expected one of 'auto', 'mkl', "
                             "'numpy'"):
        nnfs.backend("cpu", blas="openblas")


def test_mkl_asked_for_and_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr("nnfs_cpu.backend.mkl_blas",
                        lambda: "Intel MKL is not installed (pip install 'nnfs-cpu[mkl]')")
    with pytest.raises(nnfs.BackendUnavailable, match=r"blas='mkl': Intel MKL is not installed "
                       r"\(pip install 'nnfs-cpu\[mkl\]'\)"):
        cpu_factory("float32", blas="mkl")
    auto = cpu_factory("float32")  # auto: numpy's BLAS then
    assert "MKL" not in auto.describe()


@needs_mkl
def test_mkl_is_used_when_installed_on_an_intel_processor_unless_told_otherwise(monkeypatch):
    from nnfs_cpu import backend as cpu_backend

    monkeypatch.setattr(cpu_backend, "mkl_is_fast_here", lambda: True)
    assert "products in MKL" in cpu_factory("float32").describe()
    monkeypatch.setattr(cpu_backend, "mkl_is_fast_here", lambda: False)  # AMD, say
    assert "MKL" not in cpu_factory("float32").describe()
    assert "products in MKL" in cpu_factory("float32", blas="mkl").describe()  # asked for
    assert "MKL" not in cpu_factory("float32", blas="numpy").describe()
    with pytest.raises(nnfs.NnfsValueError, match="direct_blas=False needs blas='numpy'"):
        cpu_factory("float32", blas="mkl", direct_blas=False)


@needs_mkl
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.name)
def test_the_kit_passes_on_mkl(check, dtype):
    factory = cpu_factory(dtype, blas="mkl")
    run_kit_check(check, factory)


@needs_mkl
def test_mkl_trains_as_numpy_does():
    mkl_parameters, mkl_costs = train(cpu_factory("float64", blas="mkl"))
    numpy_parameters, numpy_costs = train(cpu_factory("float64", blas="numpy", direct_blas=False))
    np.testing.assert_allclose(mkl_parameters, numpy_parameters, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mkl_costs, numpy_costs, rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.name)
def test_the_kit_passes_without_direct_blas(check, dtype):
    """numpy functions only: the path of a machine where numpy's BLAS cannot be called."""
    factory = cpu_factory(dtype, direct_blas=False)
    run_kit_check(check, factory)


def train(factory, epochs=20):
    rng = np.random.default_rng(5)
    x_host, y_host = rng.uniform(-1, 1, (12, 30)), rng.uniform(0.1, 0.9, (3, 30))
    with factory.matrix(12, 30, x_host) as x, factory.matrix(3, 30, y_host) as y, \
            nnfs.inference_network(factory, 12, [fully_connected(9, "tanh"),
                                                 fully_connected(7, "relu"),
                                                 fully_connected(3, "sigmoid")], seed=2) as net, \
            nnfs.training_network(net, x) as training:
        costs = nnfs.sgd(training, y, nnfs.quadratic_cost, [(epochs // 2, 0.3), (epochs // 2, 0.1)])
        return nnfs.transfer(net.parameters), costs


@needs_blas
def test_updating_inside_the_product_trains_as_the_gradient_and_axpy_do():
    fused = cpu_factory("float64", blas="numpy")
    plain = cpu_factory("float64", blas="numpy", direct_blas=False)
    assert fused.accumulates and not plain.accumulates
    fused_parameters, fused_costs = train(fused)
    plain_parameters, plain_costs = train(plain)
    np.testing.assert_allclose(fused_parameters, plain_parameters, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fused_costs, plain_costs, rtol=1e-12)


@needs_blas
def test_an_accumulating_epoch_writes_no_gradient_and_allocates_nothing():
    """The single-process epoch adds the products into the weights: the gradient vector stays
    as it was, and the epoch allocates nothing."""
    factory = cpu_factory("float32")
    rng = np.random.default_rng(1)
    with factory.matrix(5, 8, rng.uniform(-1, 1, (5, 8))) as x, factory.matrix(2, 8) as y, \
            nnfs.inference_network(factory, 5, [fully_connected(4, "tanh"),
                                                fully_connected(2, "sigmoid")], seed=0) as net, \
            nnfs.training_network(net, x) as training:
        factory.fill(y, 0.5)
        factory.fill(training.gradient, 7.0)
        before = factory.stats().allocations
        start = nnfs.transfer(net.parameters)
        nnfs.sgd(training, y, nnfs.quadratic_cost, 3, 0.5)
        assert factory.stats().allocations == before
        assert np.all(nnfs.transfer(training.gradient) == 7.0)
        assert not np.array_equal(nnfs.transfer(net.parameters), start)


def test_the_processors_vendor_decides_auto(monkeypatch):
    from nnfs_cpu import device

    assert isinstance(device.cpu_vendor(), str)
    monkeypatch.setattr(device, "cpu_vendor", lambda: "AuthenticAMD")
    assert device.mkl_is_fast_here() is False
    monkeypatch.setattr(device, "cpu_vendor", lambda: "GenuineIntel")
    assert device.mkl_is_fast_here() is True
