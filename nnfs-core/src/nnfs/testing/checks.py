"""The conformance checks. Each takes a factory and raises ``AssertionError`` (or an unexpected
exception) when the backend does not conform, or :class:`CheckSkipped` with a reason.

numpy, in float64, is the oracle (``reference.py``); gradients are checked by finite differences.
Operations a backend declares unsupported are checked to raise ``nnfs.UnsupportedOperation``.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import nnfs
from nnfs.arrays import Matrix, Vector
from nnfs.factory import Factory
from nnfs.kinds import TRAINING_OPERATIONS, ActivationKind, CostKind, Operation

from . import reference as ref


class CheckSkipped(Exception):  # reads as "the check was skipped"
    """The check cannot run here; the message says why."""


class DeclaredUnsupported(CheckSkipped):
    """What the check is about is declared unsupported by the backend, and raises
    UnsupportedOperation as declared: skipped, not passed."""

    def __init__(self, what: str):
        super().__init__(f"skipped (declared unsupported): {what} raises UnsupportedOperation, "
                         "as declared")
        self.what = what


@dataclass(frozen=True)
class Check:
    """A check: ``function(factory)`` raises when the backend does not conform; it may
    return a note on what it passed (operations it skipped as declared unsupported)."""

    name: str
    function: Callable[[Factory], str | None]

    @property
    def description(self) -> str:
        return (self.function.__doc__ or "").strip().splitlines()[0]


CHECKS: list[Check] = []


def _check(function: Callable[[Factory], str | None]) -> Callable[[Factory], str | None]:
    CHECKS.append(Check(function.__name__.removeprefix("check_"), function))
    return function



# --- helpers ------------------------------------------------------------------------------------

#: (m, k, n) of gemm: 1×1, one row, one column, non-square, inner dimension 1, larger.
GEMM_SHAPES = [(1, 1, 1), (1, 5, 1), (5, 1, 4), (1, 7, 3), (6, 3, 1), (7, 5, 3), (33, 17, 9)]
#: (rows, cols) of matrices in elementwise and gemv checks.
SHAPES = [(1, 1), (1, 6), (6, 1), (3, 5), (17, 9)]
#: (alpha, beta): the BLAS fast paths and values that are neither 0 nor 1.
SCALARS = [(1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-0.75, 1.5)]


def tolerance(factory: Factory) -> float:
    """Relative error allowed per operation: a few units of the dtype's precision."""
    return 2e-5 if factory.dtype == "float32" else 1e-12


def assert_close(actual, expected, factory: Factory, what: str, scale=None, factor=1.0) -> None:
    """``actual`` must equal ``expected`` within the dtype's tolerance, relative to ``scale``
    (elementwise magnitudes the error can grow with; default: |expected| + 1)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape}, expected {expected.shape}")
    if scale is None:
        scale = np.abs(expected) + 1.0
    allowed = factor * tolerance(factory) * (np.asarray(scale, dtype=np.float64) + 1.0)
    error = np.abs(actual - expected)
    if not np.all(error <= allowed):
        worst = np.unravel_index(np.argmax(error - allowed), error.shape)
        raise AssertionError(
            f"{what} on {factory.describe()}: entry {tuple(map(int, worst))} is "
            f"{actual[worst]!r}, expected {expected[worst]!r} (allowed error {allowed[worst]:.3g})"
        )


def rounded(factory: Factory, array: np.ndarray) -> np.ndarray:
    """``array`` rounded to the factory's dtype and back to float64, as the device holds it."""
    return np.asarray(array, dtype=factory.numpy_dtype).astype(np.float64)


def supported(factory: Factory, operation: str) -> bool:
    return operation not in factory.unsupported


def expect_unsupported(call: Callable[[], object], what: str) -> None:
    """``call()`` must raise UnsupportedOperation; then the check is skipped, as declared
    unsupported (:class:`DeclaredUnsupported`)."""
    try:
        call()
    except nnfs.UnsupportedOperation:
        raise DeclaredUnsupported(what) from None
    raise AssertionError(f"{what} is declared unsupported but did not raise UnsupportedOperation")


def expect_error(error: type[BaseException], call: Callable[[], object], what: str,
                 mentions: tuple[str, ...] = ()) -> None:
    try:
        call()
    except error as raised:
        text = str(raised)
        for word in mentions:
            assert word in text, f"{what}: the error {text!r} does not mention {word!r}"
        return
    except Exception as other:
        raise AssertionError(
            f"{what}: expected {error.__name__}, got {type(other).__name__}: {other}"
        ) from other
    raise AssertionError(f"{what}: expected {error.__name__}, nothing was raised")


class Placed:
    """A host array placed on the device, alone or as a column view inside a wider matrix
    whose other columns must stay untouched."""

    def __init__(self, factory: Factory, host: np.ndarray, as_view: bool, rng):
        self.factory = factory
        self.host = rounded(factory, host)
        rows, cols = host.shape
        self.guard: np.ndarray | None
        if as_view:
            self.guard = rounded(factory, rng.uniform(-1, 1, size=(rows, cols + 2)))
            self.guard[:, 1:-1] = self.host
            self.owner = factory.matrix(rows, cols + 2, self.guard)
            self.matrix = self.owner.columns(1, cols + 1)
        else:
            self.guard = None
            self.owner = factory.matrix(rows, cols, self.host)
            self.matrix = self.owner

    def result(self, what: str) -> np.ndarray:
        everything = nnfs.transfer(self.owner).astype(np.float64)
        if self.guard is None:
            return everything
        for j in (0, -1):
            assert np.array_equal(everything[:, j], self.guard[:, j]), (
                f"{what} on {self.factory.describe()}: wrote outside its column view")
        return everything[:, 1:-1]

    def release(self) -> None:
        self.owner.release()


def _uniform(rng, shape, low=-1.0, high=1.0):
    return rng.uniform(low, high, size=shape)


def _activation_output(kind: str, rng, shape) -> np.ndarray:
    """Values a layer of ``kind`` can output."""
    z = _uniform(rng, shape, -2, 2)
    return ref.activation(kind, z)


# --- memory, transfer, views --------------------------------------------------------------------

@_check
def check_transfer_and_views(factory: Factory) -> None:
    """matrix/vector data row by row, host round trips, column and vector views."""
    rng = np.random.default_rng(1)
    for rows, cols in SHAPES:
        host = rounded(factory, _uniform(rng, (rows, cols)))
        with factory.matrix(rows, cols) as zero:
            assert np.array_equal(nnfs.transfer(zero), np.zeros((rows, cols))), (
                "new matrices are zero")
        with factory.matrix(rows, cols, host) as m:
            back = nnfs.transfer(m)
            assert back.shape == (rows, cols) and back.dtype == factory.numpy_dtype, (
                f"transfer(matrix) gave {back.shape} {back.dtype}, expected "
                f"{(rows, cols)} {factory.dtype}")
            assert np.array_equal(back, host), f"round trip of a {rows}×{cols} matrix"
            flat = factory.matrix(rows, cols, host.ravel().tolist())
            assert np.array_equal(nnfs.transfer(flat), host), "flat data is read row by row"
            flat.release()
            for j in range(cols):
                assert np.array_equal(nnfs.transfer(m.column(j)), host[:, j]), f"column({j})"
            if cols > 1:
                view = m.columns(1, cols)
                assert np.array_equal(nnfs.transfer(view), host[:, 1:]), "columns(1, cols)"
                new = rounded(factory, _uniform(rng, (rows, cols - 1)))
                nnfs.transfer(new, view)
                assert np.array_equal(nnfs.transfer(m)[:, 1:], new), "writing through a view"
                assert np.array_equal(nnfs.transfer(m)[:, 0], host[:, 0]), "a view write spilled"
                host[:, 1:] = new
            as_vector = nnfs.transfer(m.as_vector())
            assert np.array_equal(as_vector, host.T.ravel()), "as_vector() is column by column"
            again = m.as_vector().as_matrix(rows, cols)
            assert np.array_equal(nnfs.transfer(again), host), "as_matrix(as_vector())"
    with factory.vector(7, list(range(7))) as v:
        assert np.array_equal(nnfs.transfer(v), np.arange(7)), "vector data"
        assert np.array_equal(nnfs.transfer(v.subvector(2, 5)), [2, 3, 4]), "subvector(2, 5)"
        assert np.array_equal(nnfs.transfer(v.as_matrix(2, 3, start=1)),
                              [[1, 3, 5], [2, 4, 6]]), "as_matrix reads column by column"


@_check
def check_allocation_counter(factory: Factory) -> None:
    """Every allocation is counted, bytes in use return to the start after release."""
    before = factory.stats()
    m = factory.matrix(3, 4)
    after = factory.stats()
    assert after.allocations == before.allocations + 1, (
        f"one matrix() made {after.allocations - before.allocations} counted allocations")
    assert after.bytes_in_use - before.bytes_in_use >= 12 * factory.itemsize, (
        "bytes_in_use did not grow by the matrix's bytes")
    views = [m.columns(1, 3), m.column(0), m.as_vector()]
    assert factory.stats().allocations == after.allocations, "views must not allocate"
    m.release()
    assert factory.stats().bytes_in_use == before.bytes_in_use, (
        "release() gave back less than it took")
    for view in views:
        assert view.released, "a view of a released matrix still claims to be live"


@_check
def check_release_and_with(factory: Factory) -> None:
    """release() is idempotent, 'with' releases, and released objects refuse to be used."""
    m = factory.matrix(2, 2, [[1, 2], [3, 4]])
    view = m.columns(0, 1)
    m.release()
    m.release()
    assert m.released and view.released
    expect_error(nnfs.ReleasedError, lambda: nnfs.transfer(m), "transfer of a released matrix")
    expect_error(nnfs.ReleasedError, lambda: nnfs.transfer(view), "transfer of a view of a "
                 "released matrix")
    with factory.matrix(2, 2) as a, factory.matrix(2, 2) as b:
        pass
    assert a.released and b.released, "'with' did not release"
    if supported(factory, "copy"):
        expect_error(nnfs.ReleasedError, lambda: factory.copy(a, b),
                     "copy between released matrices")
    with factory.matrix(2, 3) as x:
        network = nnfs.inference_network(factory, 2, [nnfs.fully_connected(2, nnfs.tanh)], seed=0)
        with network:
            pass
        assert network.released
        expect_error(nnfs.ReleasedError, lambda: network(x), "a released network")
        network.release()


# --- BLAS ---------------------------------------------------------------------------------------

@_check
def check_gemm(factory: Factory) -> None:
    """gemm against numpy: awkward shapes, both transposes, alpha and beta, column views."""
    if not supported(factory, "gemm"):
        with factory.matrix(1, 1) as a1:
            expect_unsupported(lambda: factory.gemm(1.0, a1, a1, 0.0, a1), "gemm")
        return
    rng = np.random.default_rng(2)
    cases = itertools.product(GEMM_SHAPES, itertools.product((False, True), repeat=2), SCALARS)
    for number, ((m, k, n), (trans_a, trans_b), (alpha, beta)) in enumerate(cases):
        a_shape = (k, m) if trans_a else (m, k)
        b_shape = (n, k) if trans_b else (k, n)
        view = number % 2 == 1
        a = Placed(factory, _uniform(rng, a_shape), view, rng)
        b = Placed(factory, _uniform(rng, b_shape), not view, rng)
        c = Placed(factory, _uniform(rng, (m, n)), view, rng)
        what = (f"gemm({alpha}, a {a_shape}{'ᵀ' if trans_a else ''}, b {b_shape}"
                f"{'ᵀ' if trans_b else ''}, {beta}, c {m}×{n}{', views' if view else ''})")
        try:
            factory.gemm(alpha, a.matrix, b.matrix, beta, c.matrix, trans_a=trans_a,
                         trans_b=trans_b)
            expected = ref.gemm(alpha, a.host, b.host, beta, c.host, trans_a, trans_b)
            scale = abs(alpha) * (np.abs(ref.op(a.host, trans_a)) @ np.abs(ref.op(b.host, trans_b)))
            assert_close(c.result(what), expected, factory, what,
                         scale + abs(beta) * np.abs(c.host))
        finally:
            for placed in (a, b, c):
                placed.release()


@_check
def check_gemm_ignores_old_output(factory: Factory) -> None:
    """gemm with beta 0 ignores what c held before (BLAS semantics)."""
    if not supported(factory, "gemm"):
        raise CheckSkipped("gemm is declared unsupported (checked by the gemm check)")
    with factory.matrix(2, 2, [[1, 2], [3, 4]]) as a, factory.matrix(2, 2) as c:
        # nnfs refuses NaN as data; a huge old value shows as well whether c is ignored
        factory.fill(c, 1e30 if factory.dtype == "float32" else 1e300)
        factory.gemm(1.0, a, a, 0.0, c)
        assert_close(nnfs.transfer(c), np.array([[7, 10], [15, 22]]), factory, "gemm beta 0")


@_check
def check_gemv(factory: Factory) -> None:
    """gemv against numpy: shapes, transpose, alpha and beta."""
    if not supported(factory, "gemv"):
        with factory.matrix(1, 1) as a1, factory.vector(1) as x1:
            expect_unsupported(lambda: factory.gemv(1.0, a1, x1, 0.0, x1), "gemv")
        return
    rng = np.random.default_rng(3)
    for (rows, cols), trans, (alpha, beta) in itertools.product(SHAPES, (False, True), SCALARS):
        host = rounded(factory, _uniform(rng, (rows, cols)))
        x_size, y_size = (rows, cols) if trans else (cols, rows)
        x = rounded(factory, _uniform(rng, x_size))
        y = rounded(factory, _uniform(rng, y_size))
        what = f"gemv({alpha}, a {rows}×{cols}{'ᵀ' if trans else ''}, x, {beta}, y)"
        with factory.matrix(rows, cols, host) as a, factory.vector(x_size, x) as xv, \
                factory.vector(y_size, y) as yv:
            factory.gemv(alpha, a, xv, beta, yv, trans=trans)
            scale = abs(alpha) * (np.abs(ref.op(host, trans)) @ np.abs(x)) + abs(beta) * np.abs(y)
            assert_close(nnfs.transfer(yv), ref.gemv(alpha, host, x, beta, y, trans), factory,
                         what, scale)


@_check
def check_rank1_update(factory: Factory) -> None:
    """rank1_update (ger) against numpy, on whole matrices and column views."""
    if not supported(factory, "rank1_update"):
        with factory.matrix(1, 1) as a1, factory.vector(1) as x1, factory.vector(1) as y1:
            expect_unsupported(lambda: factory.rank1_update(1.0, x1, y1, a1), "rank1_update")
        return
    rng = np.random.default_rng(4)
    for number, ((rows, cols), alpha) in enumerate(itertools.product(SHAPES, (1.0, -0.5, 2.0))):
        x = rounded(factory, _uniform(rng, rows))
        y = rounded(factory, _uniform(rng, cols))
        a = Placed(factory, _uniform(rng, (rows, cols)), number % 2 == 1, rng)
        what = f"rank1_update({alpha}, x, y, a {rows}×{cols})"
        with factory.vector(rows, x) as xv, factory.vector(cols, y) as yv:
            factory.rank1_update(alpha, xv, yv, a.matrix)
            expected = ref.rank1_update(alpha, x, y, a.host)
            assert_close(a.result(what), expected, factory, what)
        a.release()


@_check
def check_vector_operations(factory: Factory) -> str | None:
    """axpy, scal, copy, fill, nrm2, sub and mul on matrices, column views and vectors."""
    rng = np.random.default_rng(5)
    for number, (rows, cols) in enumerate(SHAPES):
        view = number % 2 == 1
        x = Placed(factory, _uniform(rng, (rows, cols)), view, rng)
        y = Placed(factory, _uniform(rng, (rows, cols)), not view, rng)
        out = Placed(factory, _uniform(rng, (rows, cols)), view, rng)
        size = f"{rows}×{cols}"

        def verify(placed: Placed, expected: np.ndarray, what: str, scale=None) -> None:
            result = placed.result(what)
            # verify runs within the iteration that defines it
            assert_close(result, expected, factory, f"{what} {size}", scale)  # noqa: B023
            placed.host = result

        try:
            if supported(factory, "axpy"):
                factory.axpy(-1.5, x.matrix, y.matrix)
                verify(y, -1.5 * x.host + y.host, "axpy", 1.5 * np.abs(x.host) + np.abs(y.host))
            if supported(factory, "sub"):
                factory.sub(x.matrix, y.matrix, out.matrix)
                verify(out, x.host - y.host, "sub", np.abs(x.host) + np.abs(y.host))
                factory.sub(x.matrix, y.matrix, x.matrix)
                verify(x, x.host - y.host, "sub into x", np.abs(x.host) + np.abs(y.host))
            if supported(factory, "mul"):
                factory.mul(x.matrix, y.matrix, out.matrix)
                verify(out, x.host * y.host, "mul")
                factory.mul(x.matrix, y.matrix, y.matrix)
                verify(y, x.host * y.host, "mul into y")
            if supported(factory, "scal"):
                factory.scal(-2.25, x.matrix)
                verify(x, -2.25 * x.host, "scal")
            if supported(factory, "copy"):
                factory.copy(x.matrix, out.matrix)
                assert np.array_equal(out.result("copy"), x.host), f"copy {size}"
            if supported(factory, "nrm2"):
                assert_close(factory.nrm2(x.matrix), np.linalg.norm(x.host), factory,
                             f"nrm2 {size}", factor=math.sqrt(x.host.size))
            if supported(factory, "fill"):
                factory.fill(out.matrix, 0.625)
                assert np.array_equal(out.result("fill"), np.full((rows, cols), 0.625)), "fill"
        finally:
            for placed in (x, y, out):
                placed.release()
    if supported(factory, "axpy"):
        for alpha in (1.0, -1.0, 0.5):
            xs = rounded(factory, _uniform(rng, 40))
            ys = rounded(factory, _uniform(rng, 40))
            with factory.vector(40, xs) as xv, factory.vector(40, ys) as yv:
                factory.axpy(alpha, xv, yv)
                assert_close(nnfs.transfer(yv), alpha * xs + ys, factory, f"axpy({alpha}) vector")
    with factory.matrix(1, 1) as a, factory.matrix(1, 1) as b, factory.matrix(1, 1) as c:
        calls = {"axpy": (1.0, a, b), "scal": (1.0, a), "copy": (a, b), "fill": (a, 1.0),
                 "nrm2": (a,), "sub": (a, b, c), "mul": (a, b, c)}
        skipped = []
        for operation, arguments in calls.items():
            if not supported(factory, operation):
                method = getattr(factory, operation)
                try:
                    expect_unsupported(functools.partial(method, *arguments), operation)
                except DeclaredUnsupported:
                    skipped.append(operation)
    if skipped:
        return f"skipped (declared unsupported): {', '.join(skipped)}"
    return None


@_check
def check_copy_onto_itself(factory: Factory) -> None:
    """copy(x, x) and transfer(m, m) leave x as it was, on matrices, views and vectors."""
    if not supported(factory, "copy"):
        raise DeclaredUnsupported("copy")  # the vector operations check holds it to raising
    rng = np.random.default_rng(13)
    host = rounded(factory, _uniform(rng, (5, 6)))
    with factory.matrix(5, 6, host) as m:
        view, vector = m.columns(1, 4), m.as_vector().subvector(3, 17)
        for what, x in (("a matrix", m), ("a column view", view), ("a vector view", vector)):
            assert factory.copy(x, x) is x, f"copy({what}, itself) did not return it"
            assert np.array_equal(nnfs.transfer(m), host), f"copy({what}, itself) changed it"
            assert nnfs.transfer(x, x) is x, f"transfer({what}, itself) did not return it"
            assert np.array_equal(nnfs.transfer(m), host), f"transfer({what}, itself) changed it"
        # the same columns seen through two views are one window too
        factory.copy(m.columns(2, 5), m.columns(2, 5))
        assert np.array_equal(nnfs.transfer(m), host), "copy between two views of one window"


#: Magnitudes whose squares overflow (huge) or underflow (tiny) in each dtype, while the
#: norm itself is an ordinary number there.
_NRM2_EXTREMES = {"float32": (1e20, 1e-30), "float64": (1e200, 1e-200)}


def _exact_norm(values: np.ndarray) -> float:
    """‖values‖₂ in float64 by math.hypot, which scales its sum and so never overflows."""
    return math.hypot(*np.asarray(values, dtype=np.float64).ravel().tolist())


@_check
def check_nrm2_extremes(factory: Factory) -> None:
    """nrm2 of values whose squares overflow or underflow is the finite norm, as BLAS gives."""
    if not supported(factory, "nrm2"):
        raise DeclaredUnsupported("nrm2")  # the vector operations check holds it to raising
    huge, tiny = _NRM2_EXTREMES.get(factory.dtype, _NRM2_EXTREMES["float32"])
    rng = np.random.default_rng(14)
    long = rng.uniform(0.5, 1.0, 3000) * rng.choice([-huge, huge, tiny, 1.0, 0.0], 3000)
    cases = [
        ("4 huge", np.full(4, huge)),
        ("4 tiny", np.full(4, tiny)),
        ("zeros", np.zeros(7)),
        ("huge, tiny and zero", np.array([3 * huge, 0.0, -4 * huge, tiny, 0.0])),
        ("tiny and zero", np.array([0.0, -3 * tiny, 4 * tiny, 0.0])),
        ("ones and tiny", np.array([1.0, tiny, -1.0, tiny, 1.0, -1.0])),
        ("3000 of every kind", long),
        ("3000 tiny", rng.uniform(-tiny, tiny, 3000)),
    ]
    for what, values in cases:
        host = rounded(factory, values)
        expected = _exact_norm(host)
        allowed = tolerance(factory) * math.sqrt(host.size) * expected  # relative: tiny counts
        for shape, as_view in (((1, host.size), False), ((host.size, 1), True)):
            placed = Placed(factory, host.reshape(shape), as_view, rng)
            try:
                got = factory.nrm2(placed.matrix)
            finally:
                placed.release()
            where = f"nrm2 of {what}{' (a column view)' if as_view else ''} on {factory.describe()}"
            assert isinstance(got, float), f"{where} returned {type(got).__name__}, not a float"
            assert math.isfinite(got), f"{where} is {got}, expected {expected!r}"
            assert abs(got - expected) <= allowed, f"{where} is {got!r}, expected {expected!r}"


# --- the vector math of layers and costs --------------------------------------------------------

@_check
def check_activations(factory: Factory) -> None:
    """Every activation, with and without bias, in place and into another matrix."""
    if not supported(factory, "activation"):
        with factory.matrix(1, 1) as z1:
            expect_unsupported(lambda: factory.activation("tanh", z1, z1), "activation")
        return
    rng = np.random.default_rng(6)
    for kind, (rows, cols), with_bias in itertools.product(ActivationKind, SHAPES, (True, False)):
        z_host = rounded(factory, _uniform(rng, (rows, cols), -4, 4))
        bias = rounded(factory, _uniform(rng, rows)) if with_bias else None
        expected = ref.activation(kind, z_host, bias)
        what = f"activation {kind} {rows}×{cols}{' with bias' if with_bias else ''}"
        z = Placed(factory, z_host, cols > 1, rng)
        out = Placed(factory, _uniform(rng, (rows, cols)), False, rng)
        b = factory.vector(rows, bias) if with_bias else None
        try:
            factory.activation(kind, z.matrix, out.matrix, b)
            assert_close(out.result(what), expected, factory, what)
            assert np.array_equal(z.result(what), z_host), f"{what}: changed z"
            factory.activation(kind, z.matrix, z.matrix, b)  # in place
            assert_close(z.result(what + " in place"), expected, factory, what + " in place")
        finally:
            z.release()
            out.release()
            if b is not None:
                b.release()
    with factory.matrix(3, 2, [[1000, -1000], [0, 0], [-1000, 1000]]) as zm:
        factory.activation("softmax", zm, zm)
        result = nnfs.transfer(zm)
        assert np.all(np.isfinite(result)), "softmax overflowed on large inputs"
        assert_close(result.sum(axis=0), [1.0, 1.0], factory, "softmax columns sum to 1")
        factory.fill(zm, -1000.0)
        factory.activation("sigmoid", zm, zm)
        assert np.all(np.isfinite(nnfs.transfer(zm))), "sigmoid of −1000 is not finite"


@_check
def check_activation_derivatives(factory: Factory) -> None:
    """activation_backward against numpy for every activation; a is left unchanged."""
    if not supported(factory, "activation_backward"):
        with factory.matrix(1, 1) as a1, factory.matrix(1, 1) as d1:
            expect_unsupported(lambda: factory.activation_backward("tanh", a1, d1),
                               "activation_backward")
        return
    rng = np.random.default_rng(7)
    for kind, (rows, cols) in itertools.product(ActivationKind, SHAPES):
        a_host = rounded(factory, _activation_output(kind, rng, (rows, cols)))
        d_host = rounded(factory, _uniform(rng, (rows, cols)))
        what = f"activation_backward {kind} {rows}×{cols}"
        a = Placed(factory, a_host, cols > 1, rng)
        d = Placed(factory, d_host, False, rng)
        try:
            factory.activation_backward(kind, a.matrix, d.matrix)
            assert_close(d.result(what), ref.activation_backward(kind, a_host, d_host), factory,
                         what)
            assert np.array_equal(a.result(what), a_host), f"{what}: changed a"
        finally:
            a.release()
            d.release()


@_check
def check_cost_deltas(factory: Factory) -> None:
    """cost_delta (the output layer's scaled gradient) against numpy, for every pairing."""
    if not supported(factory, "cost_delta"):
        with factory.matrix(1, 1) as a1:
            expect_unsupported(lambda: factory.cost_delta("quadratic", "linear", 1.0, a1, a1, a1),
                               "cost_delta")
        return
    rng = np.random.default_rng(13)
    pairs: list[tuple[str, str]] = [("quadratic", kind) for kind in ActivationKind]
    pairs += [("cross_entropy", "sigmoid"), ("cross_entropy", "softmax")]
    for (kind, activation), (rows, cols) in itertools.product(pairs, SHAPES):
        a_host = rounded(factory, _activation_output(activation, rng, (rows, cols)))
        y_host = rounded(factory, _uniform(rng, (rows, cols), 0, 1))
        scale = -0.375
        expected = scale * (a_host - y_host)
        if kind == "quadratic":
            expected = ref.activation_backward(activation, a_host, expected)
        what = f"cost_delta {kind} with {activation} {rows}×{cols}"
        a = Placed(factory, a_host, cols > 1, rng)
        out = Placed(factory, _uniform(rng, (rows, cols)), cols > 1, rng)
        try:
            with factory.matrix(rows, cols, y_host) as y:
                factory.cost_delta(kind, activation, scale, y, a.matrix, out.matrix)
            assert_close(out.result(what), expected, factory, what)
            assert np.array_equal(a.result(what), a_host), f"{what}: changed a"
        finally:
            a.release()
            out.release()


@_check
def check_cost_sums(factory: Factory) -> None:
    """cost_sum of every cost against numpy, including outputs at exactly 0 and 1."""
    if not supported(factory, "cost_sum"):
        with factory.matrix(1, 1) as a1:
            expect_unsupported(lambda: factory.cost_sum("quadratic", a1, a1), "cost_sum")
        return
    rng = np.random.default_rng(8)
    eps = float(np.finfo(factory.numpy_dtype).eps)
    for kind, (rows, cols) in itertools.product(CostKind, SHAPES):
        a_host = rounded(factory, _activation_output(
            "softmax" if kind == "categorical_cross_entropy" else "sigmoid", rng, (rows, cols)))
        if kind == "quadratic":
            y_host = rounded(factory, _uniform(rng, (rows, cols)))
        else:
            y_host = np.zeros((rows, cols))
            y_host[rng.integers(0, rows, size=cols), np.arange(cols)] = 1.0
        a_host[0, 0] = 1.0 if kind != "quadratic" else a_host[0, 0]
        what = f"cost_sum {kind} {rows}×{cols}"
        with factory.matrix(rows, cols, y_host) as y, factory.matrix(rows, cols, a_host) as a:
            value = factory.cost_sum(kind, y, a)
            expected = ref.cost_sum(kind, y_host, a_host, eps)
            assert isinstance(value, float), f"{what} returned {type(value).__name__}, not float"
            assert_close(value, expected, factory, what, factor=10 * rows * cols)


# --- synchronize and training -------------------------------------------------------------------

def _training_ops_supported(factory: Factory) -> bool:
    missing = [op for op in TRAINING_OPERATIONS if not supported(factory, op)]
    if not missing:
        return True
    with factory.matrix(2, 3) as x:
        network = nnfs.inference_network(factory, 2, [nnfs.fully_connected(2, nnfs.sigmoid)])
        try:
            expect_unsupported(lambda: nnfs.training_network(network, x),
                               f"training without {', '.join(missing)}")
        finally:
            network.release()
    return False


def _random_network(factory: Factory, sizes, kinds, seed: int):
    layers = [nnfs.fully_connected(n, kind) for n, kind in zip(sizes[1:], kinds, strict=True)]
    return nnfs.inference_network(factory, sizes[0], layers, seed=seed)


def host_parameters(network) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A network's weights and biases as float64 host arrays, layer by layer."""
    return ([nnfs.transfer(layer.weights).astype(np.float64) for layer in network.layers],
            [nnfs.transfer(layer.bias).astype(np.float64) for layer in network.layers])


@_check
def check_synchronize(factory: Factory) -> None:
    """synchronize() runs and is counted; sgd drains the queue every sync_every epochs."""
    before = factory.stats().synchronizations
    factory.synchronize()
    assert factory.stats().synchronizations == before + 1, "synchronize() was not counted"
    if not _training_ops_supported(factory):
        return
    epochs = 6
    with factory.matrix(3, 4) as x, factory.matrix(2, 4) as y, \
            _random_network(factory, (3, 4, 2), ("tanh", "sigmoid"), 0) as network, \
            nnfs.training_network(network, x) as training:
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.1)  # warm up
        before = factory.stats().synchronizations
        nnfs.sgd(training, y, nnfs.quadratic_cost, epochs, 0.1)
        made = factory.stats().synchronizations - before
    expected = epochs // factory.sync_every if factory.sync_every else 0
    assert made == expected, (
        f"sgd of {epochs} epochs synchronised {made} times; the factory declares "
        f"sync_every={factory.sync_every}, so {expected} were expected")


@_check
def check_no_allocation_per_epoch(factory: Factory) -> None:
    """Training allocates when the network is built and never during epochs."""
    if not _training_ops_supported(factory):
        return
    rng = np.random.default_rng(9)
    with factory.matrix(8, 32, _uniform(rng, (8, 32))) as x, \
            factory.matrix(3, 32, _uniform(rng, (3, 32), 0, 1)) as y, \
            _random_network(factory, (8, 16, 12, 3), ("tanh", "relu", "sigmoid"), 1) as network, \
            nnfs.training_network(network, x) as training:
        nnfs.sgd(training, y, nnfs.quadratic_cost, 2, 0.1)
        before = factory.stats()
        nnfs.sgd(training, y, nnfs.quadratic_cost, 50, 0.1)
        nnfs.sgd(training, y, nnfs.quadratic_cost, [(10, 0.1), (10, 0.05)])
        after = factory.stats()
    assert after.allocations == before.allocations, (
        f"{after.allocations - before.allocations} allocations during 70 epochs")
    assert after.bytes_in_use == before.bytes_in_use, "bytes in use changed during epochs"


@_check
def check_article_example(factory: Factory) -> None:
    """The article's 2-4-1 example: untrained 0.4352, first cost 0.0020987, trained 0.50."""
    if not _training_ops_supported(factory):
        return
    from nnfs.examples import FIRST_COST, UNTRAINED, article_example

    result = article_example(factory)
    assert np.allclose(result.untrained, UNTRAINED, atol=5e-5), (
        f"untrained output {result.untrained}, the article: {UNTRAINED}")
    assert math.isclose(result.costs[0], FIRST_COST, rel_tol=5e-5), (
        f"first cost {result.costs[0]}, the article: {FIRST_COST}")
    assert all(b < a for a, b in itertools.pairwise(result.costs)), (
        f"costs do not fall: {result.costs}")
    assert np.allclose(result.trained, 0.5, atol=5e-3), f"trained output {result.trained}"
    assert result.input_unchanged, "training wrote into its input"


#: (layer sizes, activations, cost) of the gradient checks: every activation and both costs.
GRADIENT_NETWORKS = [
    ((3, 5, 4, 2), ("tanh", "sigmoid", "sigmoid"), "quadratic"),
    ((4, 6, 5, 3), ("relu", "linear", "softmax"), "cross_entropy"),
    ((3, 4, 2), ("sigmoid", "sigmoid"), "cross_entropy"),
    ((3, 4, 3), ("tanh", "softmax"), "quadratic"),
]


def central_differences(parameters: np.ndarray, loss, step: float) -> np.ndarray:
    """The gradient of ``loss()`` by central differences, one entry of ``parameters`` (which
    ``loss`` reads) moved by ±``step`` at a time and put back."""
    numeric = np.empty_like(parameters)
    for i in range(parameters.size):
        keep = parameters[i]
        parameters[i] = keep + step
        up = loss()
        parameters[i] = keep - step
        numeric[i] = (up - loss()) / (2 * step)
        parameters[i] = keep
    return numeric


def _mean_loss(y: np.ndarray, a: np.ndarray, cost: str, last: str) -> float:
    n = a.shape[1]
    if cost == "quadratic":
        return float(((a - y) ** 2).sum() / (2 * n))
    kind = "binary_cross_entropy" if last == "sigmoid" else "categorical_cross_entropy"
    return ref.cost_sum(kind, y, a, 0.0) / n


def _host_forward(weights, biases, kinds, x):
    a = x
    for w, b, kind in zip(weights, biases, kinds, strict=True):
        a = ref.activation(kind, w @ a, b)
    return a


@_check
def check_gradients(factory: Factory) -> None:
    """Every parameter's gradient against central finite differences of the mean loss.

    The differences are taken in float64 on the host, through the numpy reference of the
    forward pass, so they are exact to about 1e-9 whatever the backend's dtype; the backend's
    gradient must match them to its dtype's precision.
    """
    if not _training_ops_supported(factory):
        return
    step = 1e-6
    allowed = 1e-6 if factory.dtype == "float64" else 2e-3
    rng = np.random.default_rng(10)
    for number, (sizes, kinds, cost_name) in enumerate(GRADIENT_NETWORKS):
        n = 4
        x_host = rounded(factory, _uniform(rng, (sizes[0], n)))
        if kinds[-1] == "softmax" or cost_name == "cross_entropy":
            y_host = np.zeros((sizes[-1], n))
            y_host[rng.integers(0, sizes[-1], size=n), np.arange(n)] = 1.0
        else:
            y_host = rounded(factory, _uniform(rng, (sizes[-1], n), 0.1, 0.9))
        cost = nnfs.cross_entropy_cost if cost_name == "cross_entropy" else nnfs.quadratic_cost
        with factory.matrix(sizes[0], n, x_host) as x, factory.matrix(sizes[-1], n, y_host) as y, \
                _random_network(factory, sizes, kinds, 100 + number) as network, \
                nnfs.training_network(network, x) as training:
            for layer in network.layers:  # biases away from zero: relu units off their kink
                nnfs.transfer(rng.uniform(0.05, 0.3, layer.out_dim), layer.bias)
            training.forward()
            training.backward(y, cost, 1.0 / n)
            gradient = nnfs.transfer(training.gradient).astype(np.float64)
            weights, biases = host_parameters(network)
        flat = [p for w, b in zip(weights, biases, strict=True) for p in (w.T.reshape(-1), b)]
        # views into one flat array in the parameters' layout: W column by column, then b
        parameters = np.concatenate(flat)
        views, start = [], 0
        for w, b in zip(weights, biases, strict=True):
            views.append(parameters[start:start + w.size].reshape(w.shape[1], w.shape[0]).T)
            start += w.size
            views.append(parameters[start:start + b.size])
            start += b.size

        def loss() -> float:  # called only within the iteration that defines it
            a = _host_forward(views[0::2], views[1::2], kinds, x_host)  # noqa: B023
            return _mean_loss(y_host, a, cost_name, kinds[-1])  # noqa: B023

        numeric = central_differences(parameters, loss, step)
        error = np.abs(gradient - numeric) / np.maximum(1e-2, np.abs(numeric))
        worst = int(np.argmax(error))
        assert error[worst] <= allowed, (
            f"gradient of parameter {worst} of a {sizes} {kinds} network with {cost_name} "
            f"cost: backward gives {gradient[worst]:.8g}, finite differences "
            f"{numeric[worst]:.8g} (relative error {error[worst]:.2g} > {allowed})")


@_check
def check_training_matches_reference(factory: Factory) -> None:
    """sgd on a random network gives numpy's weights and costs (schedule and both costs)."""
    if not _training_ops_supported(factory):
        return
    rng = np.random.default_rng(11)
    for sizes, kinds, cost_name in [((5, 7, 6, 3), ("tanh", "relu", "sigmoid"), "quadratic"),
                                    ((5, 8, 4), ("sigmoid", "softmax"), "cross_entropy")]:
        n = 9
        x_host = rounded(factory, _uniform(rng, (sizes[0], n)))
        y_host = np.zeros((sizes[-1], n))
        y_host[rng.integers(0, sizes[-1], size=n), np.arange(n)] = 1.0
        cost = nnfs.cross_entropy_cost if cost_name == "cross_entropy" else nnfs.quadratic_cost
        with factory.matrix(sizes[0], n, x_host) as x, factory.matrix(sizes[-1], n, y_host) as y, \
                _random_network(factory, sizes, kinds, 7) as network, \
                nnfs.training_network(network, x) as training:
            weights, biases = host_parameters(network)
            costs = nnfs.sgd(training, y, cost, [(15, 0.5), (10, 0.2)])
            for epochs, eta, got in zip((15, 10), (0.5, 0.2), costs, strict=True):
                weights, biases, expected = ref.train(weights, biases, kinds, x_host, y_host,
                                                      epochs, eta, cost_name)
                assert_close(got, expected, factory, f"sgd cost {sizes} {cost_name}", factor=50)
            got_weights, got_biases = host_parameters(network)
            for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
                assert_close(got_weights[i], w, factory, f"weights of layer {i}", factor=50)
                assert_close(got_biases[i], b, factory, f"bias of layer {i}", factor=50)
            assert np.array_equal(nnfs.transfer(x), x_host.astype(factory.numpy_dtype)), (
                "sgd changed its input")


@_check
def check_agrees_with_cpu(factory: Factory) -> None:
    """A network of a few hundred units trained 50 epochs: the same costs as the cpu backend."""
    if factory.name == "cpu":
        raise CheckSkipped("this is the cpu backend itself")
    if not _training_ops_supported(factory):
        return
    try:
        cpu = nnfs.backend("cpu", factory.dtype)
    except nnfs.NnfsError as error:
        raise CheckSkipped(f"the cpu backend is not usable to compare with: {error}") from None
    rng = np.random.default_rng(12)
    sizes, kinds, n = (64, 200, 100, 10), ("tanh", "sigmoid", "sigmoid"), 128
    x_host = _uniform(rng, (sizes[0], n))
    y_host = _uniform(rng, (sizes[-1], n), 0.1, 0.9)
    schedule = [(10, 0.5)] * 5
    results = []
    for backend in (cpu, factory):
        with backend.matrix(sizes[0], n, x_host) as x, backend.matrix(sizes[-1], n, y_host) as y, \
                _random_network(backend, sizes, kinds, 3) as network, \
                nnfs.training_network(network, x) as training:
            run_costs = nnfs.sgd(training, y, nnfs.quadratic_cost, schedule)
            results.append((np.array(run_costs), nnfs.transfer(network.parameters)))
    (cpu_costs, cpu_parameters), (costs, parameters) = results
    relative = np.abs(costs - cpu_costs) / np.abs(cpu_costs)
    assert np.all(relative <= 1e-4), (
        f"costs after 10..50 epochs differ from the cpu backend's by up to {relative.max():.2g} "
        f"(relative; allowed 1e-4): {costs.tolist()} vs {cpu_costs.tolist()}")
    assert np.allclose(parameters, cpu_parameters, rtol=1e-3, atol=1e-5), (
        "parameters after 50 epochs differ from the cpu backend's")


# --- contract: errors and declarations ----------------------------------------------------------

@_check
def check_bad_input(factory: Factory) -> None:
    """Shape mismatches, other factories, wrong data and non-finite scalars give nnfs errors."""
    with factory.matrix(2, 3) as a, factory.matrix(3, 2) as b, factory.matrix(2, 2) as c:
        if supported(factory, "gemm"):
            expect_error(nnfs.ShapeError, lambda: factory.gemm(1.0, a, a, 0.0, c),
                         "gemm with inner dimensions 3 and 2", ("gemm",))
            expect_error(nnfs.NnfsValueError, lambda: factory.gemm(float("nan"), a, b, 0.0, c),
                         "gemm with alpha NaN", ("alpha",))
            expect_error(nnfs.NnfsValueError, lambda: factory.gemm(1.0, a, b, 0.0, a.columns(0, 2)),
                         "gemm whose output overlaps an input")
        if supported(factory, "axpy"):
            expect_error(nnfs.ShapeError, lambda: factory.axpy(1.0, a, b), "axpy of 2×3 and 3×2")
        expect_error(nnfs.ShapeError, lambda: factory.matrix(2, 2, [1, 2, 3]),
                     "matrix(2, 2) given 3 numbers", ("2×2",))
        expect_error(nnfs.ShapeError, lambda: nnfs.transfer([[1, 2]], a),
                     "transfer of 1×2 into 2×3")
        expect_error(nnfs.NnfsValueError, lambda: factory.matrix(1, 2, [1.0, float("nan")]),
                     "matrix data with NaN", ("nan",))
        expect_error(nnfs.NnfsTypeError, lambda: factory.matrix(1, 2, ["a", "b"]),
                     "matrix data of strings")
        expect_error(nnfs.NnfsValueError, lambda: factory.matrix(0, 2), "matrix(0, 2)", ("rows",))
        expect_error(nnfs.NnfsTypeError, lambda: factory.matrix(2.5, 2),  # type: ignore[arg-type]  # wrong on purpose
                     "matrix(2.5, 2)")
        other = Factory(type(factory.backend)(dtype=factory.dtype))
        try:
            with other.matrix(2, 3) as foreign:
                if supported(factory, "copy"):
                    expect_error(nnfs.BackendMismatch, lambda: factory.copy(foreign, a),
                                 "copy from a matrix of another factory")
                assert np.array_equal(nnfs.transfer(nnfs.transfer(foreign, a)),
                                      nnfs.transfer(foreign)), "transfer between factories"
        finally:
            other.release()


@_check
def check_declarations(factory: Factory) -> None:
    """Declared dtypes work, undeclared ones and unsupported operations raise clear errors."""
    from nnfs._args import DTYPES

    assert factory.dtype in factory.dtypes, f"the factory's dtype {factory.dtype} is not declared"
    assert set(factory.unsupported) <= set(Operation), (
        f"unsupported names unknown operations: {set(factory.unsupported) - set(Operation)}")
    assert isinstance(factory.sync_every, int) and factory.sync_every >= 0, "sync_every"
    for dtype in DTYPES:
        if dtype not in factory.dtypes:
            expect_error(nnfs.UnsupportedOperation,
                         functools.partial(type(factory.backend), dtype=dtype),
                         f"a factory for the undeclared dtype {dtype}", (dtype,))
    assert repr(factory) and factory.describe(), "repr and describe"
    with factory.matrix(2, 3) as m:
        text = repr(m)
        assert "2×3" in text and factory.dtype in text and factory.name in text, (
            f"repr of a matrix should give shape, dtype and backend: {text!r}")


# --- what the host gets back, old contents, saturated costs -------------------------------------

def _place_nan(factory: Factory, x) -> bool:
    """Make every entry of ``x`` NaN with the backend's own operations (nnfs refuses NaN as
    data): the largest number, doubled to infinity, times zero. False if the backend's
    operations cannot make one (then there is nothing to check)."""
    if not (supported(factory, "fill") and supported(factory, "scal")):
        return False
    # on purpose: no warning of numpy's, in this thread or in the backend's own
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        factory.fill(x, float(np.finfo(factory.numpy_dtype).max))
        factory.scal(2.0, x)
        factory.scal(0.0, x)
        factory.synchronize()
    return bool(np.isnan(nnfs.transfer(x)).all())


@_check
def check_outputs_ignore_what_they_held(factory: Factory) -> None:
    """gemm and gemv with beta 0, activations, cost deltas, sub, mul and copy write their
    output whole: what it held before, NaN included, never shows through (BLAS: beta 0 means
    the old contents are not read). After one divergence, a network could never train
    again otherwise."""
    rng = np.random.default_rng(14)
    with factory.matrix(3, 4) as probe:
        if not _place_nan(factory, probe):
            raise CheckSkipped("the backend's fill and scal cannot place a NaN on the device "
                               "to see whether outputs ignore it")
    host_a = rounded(factory, _uniform(rng, (3, 5)))
    host_b = rounded(factory, _uniform(rng, (5, 4)))
    with factory.matrix(3, 5, host_a) as a, factory.matrix(5, 4, host_b) as b, \
            factory.matrix(3, 4) as out, factory.vector(5, host_a[0]) as v, \
            factory.vector(3) as w, factory.matrix(3, 4, host_a[:, :4]) as y:
        cases: dict[str, tuple[str, Callable[[], object], np.ndarray, Matrix | Vector]] = {
            "gemm with beta 0": ("gemm", lambda: factory.gemm(1.0, a, b, 0.0, out),
                                 host_a @ host_b, out),
            "gemv with beta 0": ("gemv", lambda: factory.gemv(1.0, a, v, 0.0, w),
                                 host_a @ host_a[0], w),
            "activation into out": ("activation", lambda: factory.activation("tanh", y, out),
                                    np.tanh(host_a[:, :4]), out),
            "cost_delta into out": ("cost_delta", lambda: factory.cost_delta(
                "quadratic", "linear", 1.0, y, y, out), np.zeros((3, 4)), out),
            "sub into out": ("sub", lambda: factory.sub(y, y, out), np.zeros((3, 4)), out),
            "mul into out": ("mul", lambda: factory.mul(y, y, out), host_a[:, :4] ** 2, out),
            "copy": ("copy", lambda: factory.copy(y, out), host_a[:, :4], out),
        }
        tested = 0
        for what, (operation, call, expected, target) in cases.items():
            if not supported(factory, operation):
                continue
            assert _place_nan(factory, target), "could not place NaN in the output again"
            call()
            result = nnfs.transfer(target).astype(np.float64)
            assert not np.isnan(result).any(), (
                f"{what} on {factory.describe()}: NaN the output held before came through at "
                f"{tuple(int(i) for i in np.argwhere(np.isnan(result))[0])}; the output's old "
                "contents must be ignored")
            assert_close(result, expected, factory, what)
            tested += 1
    if not tested:
        raise DeclaredUnsupported(", ".join(operation for operation, *_ in cases.values()))


@_check
def check_host_copies_are_private(factory: Factory) -> None:
    """transfer (to_host) gives a new C-ordered numpy array of the factory's dtype that shares
    no memory with the device: changing either afterwards leaves the other as it was. nrm2
    gives a Python float."""
    rng = np.random.default_rng(15)
    host = rounded(factory, _uniform(rng, (4, 3)))
    with factory.matrix(4, 3, host) as m:
        sources: dict[str, tuple[Matrix | Vector, np.ndarray]] = {
            "a matrix": (m, host), "a column view": (m.columns(1, 3), host[:, 1:]),
            "a column": (m.column(2), host[:, 2]), "as_vector": (m.as_vector(), host.T.ravel())}
        for what, (source, expected) in sources.items():
            copy = nnfs.transfer(source)
            assert isinstance(copy, np.ndarray) and type(copy) is np.ndarray, (
                f"transfer of {what} gave {type(copy).__name__}, not a numpy array")
            assert copy.dtype == factory.numpy_dtype and copy.shape == expected.shape, (
                f"transfer of {what} gave {copy.dtype} {copy.shape}, expected "
                f"{factory.dtype} {expected.shape}")
            assert copy.flags.writeable, f"transfer of {what} gave a read-only array"
            assert np.array_equal(copy, expected), f"transfer of {what}"
            copy[...] = 7.0  # the host copy changed: the device must not see it
            assert np.array_equal(nnfs.transfer(source), expected), (
                f"writing into the array transfer({what}) returned changed the device: it "
                "shares the device's memory instead of being a copy")
            copy = nnfs.transfer(source)
            nnfs.transfer(np.full(host.shape, 0.5), m)  # the device changed after the read
            assert np.array_equal(copy, expected), (
                f"the array transfer({what}) returned changed when the device did: it shares "
                "the device's memory instead of being a copy")
            nnfs.transfer(host, m)
            assert copy.flags.c_contiguous, (
                f"transfer of {what} gave an array in Fortran (or no) order; nnfs's host "
                "arrays are C-ordered, rows × cols as on the host")
    with factory.vector(5, rng.uniform(-1, 1, 5)) as v:
        if supported(factory, "nrm2"):
            norm = factory.nrm2(v)
            assert isinstance(norm, float), (
                f"nrm2 returned {type(norm).__module__}.{type(norm).__name__} {norm!r}, not a "
                "Python float")


@_check
def check_costs_at_saturated_outputs(factory: Factory) -> None:
    """Both cross-entropies and their deltas at outputs of exactly 0 and 1, where a target
    is 0 and where it is 1: finite, and what numpy gives with the outputs clipped to
    [eps, 1 − eps] (0·log 0 is 0, not NaN)."""
    eps = float(np.finfo(factory.numpy_dtype).eps)
    y_host = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    a_host = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # exact 0s and 1s
    tested = []
    with factory.matrix(3, 3, y_host) as y, factory.matrix(3, 3, a_host) as a, \
            factory.matrix(3, 3) as out:
        if supported(factory, "cost_sum"):
            for kind in ("categorical_cross_entropy", "binary_cross_entropy"):
                value = factory.cost_sum(kind, y, a)
                expected = ref.cost_sum(kind, y_host, a_host, eps)
                assert math.isfinite(value), (
                    f"cost_sum {kind} at outputs of exactly 0 and 1 on {factory.describe()} is "
                    f"{value}; expected {expected} (0·log 0 is 0, and outputs are clipped to "
                    "[eps, 1 − eps] inside the logarithm)")
                assert_close(value, expected, factory, f"cost_sum {kind} at outputs 0 and 1",
                             factor=100)
            tested.append("cost_sum")
        if supported(factory, "cost_delta"):
            for activation in ("sigmoid", "softmax"):
                factory.cost_delta("cross_entropy", activation, 1.0, y, a, out)
                result = nnfs.transfer(out).astype(np.float64)
                assert np.isfinite(result).all(), (
                    f"cost_delta cross_entropy with {activation} at outputs 0 and 1 holds "
                    f"{result[~np.isfinite(result)][0]}")
                assert_close(result, a_host - y_host, factory,
                             f"cost_delta cross_entropy with {activation} at outputs 0 and 1")
            tested.append("cost_delta")
    if not tested:
        raise DeclaredUnsupported("cost_sum, cost_delta")
