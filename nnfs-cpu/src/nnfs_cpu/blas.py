"""Direct calls into a BLAS library: numpy's own, for what numpy does not expose, or Intel MKL.

numpy multiplies matrices through BLAS ``gemm`` but always with β = 0: ``C += A·B`` costs a
product into scratch and then an addition, a second pass over ``C`` that the training loop pays
for every weight update. BLAS itself takes α and β, so the update can be one call that adds the
product into the weights as it computes it. This module finds numpy's own BLAS library (through
threadpoolctl, which knows where each loaded BLAS lives), looks up its ``cblas_?gemm`` and
``cblas_?gemv``, and binds calls to them with ctypes. It is the same library and the same thread
pool numpy's products use, so nothing competes with them for the cores.

When the library cannot be found, or the arrays are not laid out as BLAS wants (views whose
rows are not contiguous), ``gemm`` and ``gemv`` return None and the caller goes on with numpy.
A call is checked once against numpy when the library is loaded; a library that answers wrongly
(one built with other integer sizes than its symbol names say) is not used.

Intel MKL (the ``mkl`` wheel, nnfs-cpu's ``mkl`` extra) multiplies 10–25% faster than numpy's
OpenBLAS on recent Intel processors. ``mkl_blas`` loads its single dynamic library
``mkl_rt`` from the wheel's files; the CPU backend then sends every product of a useful size
there. All of them, vectors included: two BLAS libraries that both keep threads spinning
between calls fight over the cores.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.metadata
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

#: Symbol names tried, in order: (prefix, suffix, 64-bit integers). numpy's own wheels ship
#: OpenBLAS built with 64-bit integers and renamed symbols (``scipy_cblas_sgemm64_``).
_NAMES = (("scipy_", "64_", True), ("", "64_", True), ("", "_64", True), ("", "", False))


def _bound(arrays: tuple[np.ndarray, ...], function, *args) -> Callable[[], Any]:
    """``function`` with its ctypes arguments bound, holding on to the arrays whose addresses
    they carry, so that their memory lives as long as the call can be made."""
    call = functools.partial(function, *args)
    call.__dict__["arrays"] = arrays  # (typeshed's partial declares no attributes of its own)
    return call


class Blas:
    """``cblas_?gemm``, ``cblas_?gemv`` and ``cblas_?dot`` of one loaded BLAS library."""

    def __init__(self, library: ctypes.CDLL, prefix: str, suffix: str, wide: bool, path: str):
        self.path = path
        self.name = os.path.basename(path)
        self.integer = ctypes.c_int64 if wide else ctypes.c_int
        self._functions = {}
        for letter, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
            for routine in ("gemm", "gemv", "dot"):
                function = getattr(library, f"{prefix}cblas_{letter}{routine}{suffix}")
                function.restype = real if routine == "dot" else None
                self._functions[letter + routine] = function

    def __repr__(self) -> str:
        return f"Blas({self.name!r})"

    @staticmethod
    def _real(dtype: np.dtype) -> tuple[str, type]:
        return ("s", ctypes.c_float) if dtype == np.float32 else ("d", ctypes.c_double)

    def _operand(self, array: np.ndarray) -> tuple[int, int] | None:
        """``array`` as BLAS sees it, row-major: (transpose flag, leading dimension), or None
        when neither its rows nor its columns are contiguous."""
        rows, cols = array.shape
        unit = array.itemsize
        if array.strides[1] == unit or cols == 1:
            lead = array.strides[0] // unit if rows > 1 else cols
            if lead >= cols and (rows == 1 or array.strides[0] % unit == 0):
                return NO_TRANS, max(lead, 1)
        if array.strides[0] == unit or rows == 1:
            lead = array.strides[1] // unit if cols > 1 else rows
            if lead >= rows and (cols == 1 or array.strides[1] % unit == 0):
                return TRANS, max(lead, 1)
        return None

    def _usable(self, *arrays: np.ndarray, writes: bool = True) -> bool:
        """Arrays of one BLAS dtype, none empty, the last one writable if the call ``writes``
        into it."""
        dtype = arrays[-1].dtype
        return (dtype in (np.float32, np.float64)
                and all(a.dtype == dtype and a.size > 0 for a in arrays)
                and (arrays[-1].flags.writeable or not writes))

    def gemm(self, alpha: float, left: np.ndarray, right: np.ndarray, beta: float,
             out: np.ndarray) -> Callable[[], None] | None:
        """A function of no arguments doing ``out = α·left·right + β·out`` in one BLAS call
        (numpy's arguments, row-major), or None if the arrays do not suit BLAS."""
        m, n = out.shape
        k = left.shape[1]
        if left.shape != (m, k) or right.shape != (k, n) or not self._usable(left, right, out):
            return None
        a, b, c = self._operand(left), self._operand(right), self._operand(out)
        if a is None or b is None or c is None or c[0] != NO_TRANS:
            return None
        ldc = c[1]
        letter, real = self._real(out.dtype)
        i = self.integer
        return _bound(
            (left, right, out), self._functions[letter + "gemm"],
            ctypes.c_int(ROW_MAJOR), ctypes.c_int(a[0]), ctypes.c_int(b[0]), i(m), i(n), i(k),
            real(alpha), ctypes.c_void_p(left.ctypes.data), i(a[1]),
            ctypes.c_void_p(right.ctypes.data), i(b[1]),
            real(beta), ctypes.c_void_p(out.ctypes.data), i(ldc))

    def gemv(self, alpha: float, matrix: np.ndarray, x: np.ndarray, beta: float,
             y: np.ndarray) -> Callable[[], None] | None:
        """A function of no arguments doing ``y = α·matrix·x + β·y`` in one BLAS call, or None
        if the arrays do not suit BLAS."""
        if (x.ndim, y.ndim) != (1, 1) or matrix.shape != (y.size, x.size) \
                or not self._usable(matrix, x, y):
            return None
        layout = self._operand(matrix)
        if layout is None or x.strides[0] % x.itemsize or y.strides[0] % y.itemsize:
            return None
        rows, cols = matrix.shape
        incx, incy = x.strides[0] // x.itemsize, y.strides[0] // y.itemsize
        if incx < 1 or incy < 1:
            return None
        # row-major op(A) = matrix: the stored array is rows × cols untransposed, else cols × rows
        stored = (rows, cols) if layout[0] == NO_TRANS else (cols, rows)
        letter, real = self._real(y.dtype)
        i = self.integer
        return _bound(
            (matrix, x, y), self._functions[letter + "gemv"],
            ctypes.c_int(ROW_MAJOR), ctypes.c_int(layout[0]), i(stored[0]), i(stored[1]),
            real(alpha), ctypes.c_void_p(matrix.ctypes.data), i(layout[1]),
            ctypes.c_void_p(x.ctypes.data), i(incx), real(beta),
            ctypes.c_void_p(y.ctypes.data), i(incy))

    def dot(self, x: np.ndarray, y: np.ndarray) -> Callable[[], float] | None:
        """A function of no arguments returning ``x·y`` (two vectors of one dtype) in one BLAS
        call, or None if the arrays do not suit BLAS."""
        if x.ndim != 1 or x.shape != y.shape or not self._usable(x, y, writes=False) \
                or x.strides[0] % x.itemsize or y.strides[0] % y.itemsize:
            return None
        incx, incy = x.strides[0] // x.itemsize, y.strides[0] // y.itemsize
        if incx < 1 or incy < 1:
            return None
        letter, _ = self._real(x.dtype)
        return _bound((x, y), self._functions[letter + "dot"], self.integer(x.size),
                      ctypes.c_void_p(x.ctypes.data), self.integer(incx),
                      ctypes.c_void_p(y.ctypes.data), self.integer(incy))


def _agrees(blas: Blas) -> bool:
    """One small product of each kind, compared with numpy's."""
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):  # by name: numpy's stubs then type the arrays as any
        a = rng.uniform(-1, 1, (5, 3)).astype(dtype)
        b = rng.uniform(-1, 1, (4, 5)).astype(dtype).T  # a transposed operand
        c = rng.uniform(-1, 1, (3, 4)).astype(dtype)
        expected = 0.5 * (a.T @ b) + 2.0 * c  # a.T: another transposed operand
        x = rng.uniform(-1, 1, 5).astype(dtype)
        y = rng.uniform(-1, 1, 3).astype(dtype)
        expected_y = -1.5 * (a.T @ x) + 0.25 * y
        expected_dot = float(np.dot(x[::2], a[:3, 1]))  # strided vectors
        gemm = blas.gemm(0.5, a.T, b, 2.0, c)
        gemv = blas.gemv(-1.5, a.T, x, 0.25, y)
        dot = blas.dot(x[::2], a[:3, 1])
        if gemm is None or gemv is None or dot is None:
            return False
        gemm()
        gemv()
        if not (np.allclose(c, expected, rtol=1e-5) and np.allclose(y, expected_y, rtol=1e-5)
                and np.isclose(dot(), expected_dot, rtol=1e-5)):
            return False
    return True


@functools.lru_cache(maxsize=1)
def numpy_blas() -> Blas | None:
    """The BLAS library numpy's matrix products run on, or None if it cannot be found or does
    not answer as expected."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    libraries = [info for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
    # numpy's wheels ship their BLAS beside the package (numpy.libs) or inside it (.dylibs)
    package = os.path.dirname(np.__file__)
    own = [info for info in libraries if os.path.dirname(info["filepath"])
           in (package + ".libs", os.path.join(package, ".dylibs"))]
    candidates = own or (libraries if len(libraries) == 1 else [])
    for info in candidates:
        try:
            library = ctypes.CDLL(info["filepath"])
        except OSError:
            continue
        for prefix, suffix, wide in _NAMES:
            try:
                blas = Blas(library, prefix, suffix, wide, info["filepath"])
            except AttributeError:
                continue
            if _agrees(blas):
                return blas
    return None


#: Names of MKL's single dynamic library on Linux, Windows and macOS.
_MKL_RT = re.compile(r"(lib)?mkl_rt(\.\d+)*\.(so(\.\d+)*|dll|dylib)$")


@functools.lru_cache(maxsize=1)
def mkl_library() -> tuple[ctypes.CDLL, str, str] | str:
    """MKL's single dynamic library from the ``mkl`` wheel, loaded: (library, path, version),
    or a sentence saying why it cannot be used."""
    try:
        distribution = importlib.metadata.distribution("mkl")
    except importlib.metadata.PackageNotFoundError:
        return "Intel MKL is not installed (pip install 'nnfs-cpu[mkl]')"
    paths = [distribution.locate_file(f) for f in distribution.files or ()
             if _MKL_RT.search(f.name)]
    if not paths:
        return f"the mkl {distribution.version} wheel has no mkl_rt library for this platform"
    path = str(sorted(paths, key=lambda p: len(str(p)))[0])
    try:
        library = ctypes.CDLL(path)
    except OSError as error:
        return f"Intel MKL could not be loaded from {path}: {error}"
    # mkl_rt picks 32- or 64-bit integers from MKL_INTERFACE_LAYER unless told: 32 (LP64),
    # before any other call
    with contextlib.suppress(AttributeError):
        library.MKL_Set_Interface_Layer(0)
    return library, path, distribution.version


@functools.lru_cache(maxsize=1)
def mkl_blas() -> Blas | str:
    """Intel MKL's BLAS from the ``mkl`` wheel, or a sentence saying why it cannot be used."""
    loaded = mkl_library()
    if isinstance(loaded, str):
        return loaded
    library, path, version = loaded
    try:
        blas = Blas(library, "", "", False, path)
    except AttributeError as error:
        return f"Intel MKL at {path} has no cblas routines: {error}"
    if not _agrees(blas):
        return f"Intel MKL at {path} gave other products than numpy in a check, so it is not used"
    blas.name = f"MKL {version}"
    return blas
