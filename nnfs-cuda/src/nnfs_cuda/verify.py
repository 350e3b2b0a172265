"""What only a GPU can show, checked on one: the checks of ``python -m nnfs_cuda``.

Each check adds one line to a :class:`Report` — ``ok``, ``FAIL`` or ``skip``, a name, and the
figure or the reason — and the command prints the report and exits non-zero if a line failed.

* **Ordering.** A side³ product (4096³ by default: milliseconds of work) is read back the
  moment it is queued and compared with numpy; then every other operation runs on an input
  that such a product is still writing, and is read back at once. Work issued off the
  factory's stream, or a read that does not wait for it, shows as wrong numbers here.
* **The stream of cuBLAS.** CuPy binds the cuBLAS handle to the current stream at every call,
  so the handle's stream is read *after* a product and after an nrm2.
* **The conformance kit** (``nnfs.testing``) on the device, in each dtype.
* **The article's benchmark**, its cost against the CPU backend's, and its speed (and the
  product's) against the card's float32 peak computed from the device's properties: a figure
  above the peak means the timing did not wait for the work.

Nothing here runs at import; :func:`run` runs what the command asks for.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

import nnfs
from nnfs.testing import CHECKS, reference as ref, run_check

from . import bench

#: float32 lanes per multiprocessor by compute capability (NVIDIA's CUDA programming guide,
#: "Arithmetic Instructions"); others have 128 (Maxwell, consumer Pascal, consumer Ampere,
#: Ada, Hopper, Blackwell), except Kepler's 192.
FP32_LANES: dict[tuple[int, ...], int] = {(6, 0): 64, (7, 0): 64, (7, 2): 64, (7, 5): 64,
                                          (8, 0): 64}


def fp32_lanes(compute_capability: tuple[int, int]) -> int:
    if compute_capability[0] == 3:
        return 192
    return FP32_LANES.get(tuple(compute_capability), 128)


@dataclass(frozen=True)
class Line:
    outcome: str  # "ok", "FAIL" or "skip"
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.outcome:5} {self.name:44} {self.detail}".rstrip()


@dataclass
class Report:
    """The lines of a run, printed as they come (``echo``)."""

    header: list[str] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    echo: Callable[[str], None] | None = print

    def say(self, text: str) -> None:
        self.header.append(text)
        if self.echo:
            self.echo(text)

    def add(self, outcome: str, name: str, detail: str = "") -> Line:
        line = Line(outcome, name, detail)
        self.lines.append(line)
        if self.echo:
            self.echo(str(line))
        return line

    def check(self, ok: bool, name: str, detail: str) -> bool:
        self.add("ok" if ok else "FAIL", name, detail)
        return ok

    @property
    def failed(self) -> int:
        return sum(line.outcome == "FAIL" for line in self.lines)

    def summary(self) -> str:
        skipped = sum(line.outcome == "skip" for line in self.lines)
        return (f"summary: {len(self.lines)} checks, {self.failed} failed, {skipped} skipped: "
                f"{'FAILED' if self.failed else 'all passed'}")

    def text(self) -> str:
        return "\n".join([*self.header, *map(str, self.lines), self.summary()])


# --- the device and its peak ----------------------------------------------------------------------

@dataclass(frozen=True)
class Peak:
    multiprocessors: int
    clock_hz: float
    lanes: int

    @property
    def tflops(self) -> float:
        """float32 fused multiply-adds per second, as TFLOP/s (2 per lane per clock)."""
        return self.multiprocessors * self.lanes * 2 * self.clock_hz / 1e12

    def __str__(self) -> str:
        return (f"{self.multiprocessors} multiprocessors × {self.lanes} float32 lanes × 2 × "
                f"{self.clock_hz / 1e6:.0f} MHz = {self.tflops:.1f} TFLOP/s float32 peak")


def device_peak(factory) -> Peak:
    from cupy.cuda import runtime

    properties = runtime.getDeviceProperties(factory.backend.device_info.index)
    return Peak(int(properties["multiProcessorCount"]), float(properties["clockRate"]) * 1e3,
                fp32_lanes(factory.backend.device_info.compute_capability))


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_setup(factory, report: Report) -> Peak:
    import cupy
    from cupy.cuda import runtime

    def cuda(number: int) -> str:
        return f"{number // 1000}.{number % 1000 // 10}"

    report.say("nnfs-cuda GPU check (python -m nnfs_cuda)")
    report.say(f"  nnfs-core {_version('nnfs-core')}, nnfs-cuda {_version('nnfs-cuda')}, "
               f"nnfs-cpu {_version('nnfs-cpu')}, CuPy {getattr(cupy, '__version__', '?')}, "
               f"numpy {np.__version__}, Python {platform.python_version()}")
    report.say(f"  CUDA driver {cuda(runtime.driverGetVersion())}, "
               f"runtime {cuda(runtime.runtimeGetVersion())}")
    peak = device_peak(factory)
    report.say(f"  device {factory.backend.device_info}: {peak}")
    report.say(f"  on {time.strftime('%Y-%m-%d %H:%M %Z')}")
    return peak


# --- ordering: a product read back at once, and operations on inputs still being written ----------

def _close(actual, expected, tolerance: float) -> tuple[bool, str]:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    error = float(np.max(np.abs(actual - expected) / (np.abs(expected) + 1.0)))
    ok = bool(np.all(np.isfinite(actual))) and error <= tolerance
    return ok, f"largest relative error {error:.2g} (allowed {tolerance:.2g})"


def _tolerance(dtype: str, side: int) -> float:
    """What a side-long float32 (or float64) sum can be off by, with a margin."""
    eps = float(np.finfo(dtype).eps)
    return 8 * eps * np.sqrt(side) + 64 * eps


def product_read_at_once(factory, side: int, peak: Peak, report: Report) -> None:
    """A side³ product read back as soon as it is queued; the handle's stream after it and
    after an nrm2; the product's speed against the peak."""
    from cupy_backends.cuda.libs import cublas

    dtype = factory.dtype
    rng = np.random.default_rng(11)
    a_host = rng.uniform(-1, 1, (side, side)).astype(dtype)
    b_host = (rng.uniform(-1, 1, (side, side)) * (2 / np.sqrt(side))).astype(dtype)
    expected = a_host.astype(np.float64) @ b_host.astype(np.float64)
    layer = factory.backend._device
    name = f"{dtype} {side}³ product read back at once"
    with factory.matrix(side, side, a_host) as a, factory.matrix(side, side, b_host) as b, \
            factory.matrix(side, side) as c:
        factory.gemm(1.0, a, b, 0.0, c)
        got = nnfs.transfer(c)  # no wait between the two but the one transfer makes
        ok, detail = _close(got, expected, _tolerance(dtype, side))
        report.check(ok, name, detail)
        factory.gemm(1.0, a, b, 0.0, c)
        bound = cublas.getStream(layer._handle)
        report.check(bound == layer._stream.ptr, "cuBLAS handle's stream after a gemm",
                     f"{bound:#x}, the factory's is {layer._stream.ptr:#x}")
        norm = factory.nrm2(c)
        bound = cublas.getStream(layer._handle)
        report.check(bound == layer._stream.ptr, "cuBLAS handle's stream after an nrm2",
                     f"{bound:#x}, the factory's is {layer._stream.ptr:#x}")
        ok, detail = _close(norm, np.linalg.norm(expected), _tolerance(dtype, side * side))
        report.check(ok, f"{dtype} nrm2 of the product, at once", detail)
        factory.synchronize()
        seconds = []
        for _ in range(5):
            start = time.perf_counter()
            factory.gemm(1.0, a, b, 0.0, c)
            factory.synchronize()
            seconds.append(time.perf_counter() - start)
        speed = 2 * side**3 / statistics.median(seconds) / 1e12
        if dtype == "float32":
            report.check(speed <= peak.tflops, f"{dtype} {side}³ product speed",
                         f"{speed:.2f} TFLOP/s (median of 5), peak {peak.tflops:.1f}")
        else:
            report.add("ok", f"{dtype} {side}³ product speed", f"{speed:.2f} TFLOP/s")


def late_inputs(factory, side: int, report: Report) -> None:
    """Each operation on an input that a side³ product is still writing when the operation
    is queued, read back at once and compared with numpy."""
    dtype = factory.dtype
    rng = np.random.default_rng(12)

    def host(shape, low=-1.0, high=1.0):
        return rng.uniform(low, high, shape).astype(dtype).astype(np.float64)

    a_host = host((side, side))
    b_host = host((side, side)) * (2 / np.sqrt(side))
    b_host = b_host.astype(dtype).astype(np.float64)
    c = a_host @ b_host  # what the product writes
    y_host, act_host = host((side, side), 0.05, 0.95), host((side, side), -0.9, 0.9)
    bias_host, x_host, v_host = host(side), host(side), host(side)
    tolerance = 4 * _tolerance(dtype, side)
    eps = float(np.finfo(dtype).eps)
    matrices = [factory.matrix(side, side, data) for data in (a_host, b_host, None, y_host,
                                                               act_host, None)]
    a, b, product, y, act, out = matrices
    vectors = [factory.vector(side, data) for data in (bias_host, x_host, v_host, None)]
    bias, x, v, w = vectors

    def late() -> None:
        factory.gemm(1.0, a, b, 0.0, product)  # milliseconds: the next operation's input

    def read(m):
        return lambda: nnfs.transfer(m)

    sigmoid_c = ref.activation("sigmoid", c)
    tanh_c = np.tanh(c)
    cases: list[tuple[str, Callable[[], object], Callable[[], object], object]] = [
        ("copy", lambda: factory.copy(product, out), read(out), c),
        ("fill after the product", lambda: factory.fill(product, 0.25), read(product),
         np.full_like(c, 0.25)),
        ("scal", lambda: factory.scal(-2.0, product), read(product), -2 * c),
        ("axpy", lambda: (nnfs.transfer(y_host, out), factory.axpy(0.5, product, out)),
         read(out), 0.5 * c + y_host),
        ("sub", lambda: factory.sub(product, y, out), read(out), c - y_host),
        ("mul", lambda: factory.mul(product, y, out), read(out), c * y_host),
        *[(f"activation {kind} with bias",
           lambda kind=kind: factory.activation(kind, product, out, bias), read(out),
           ref.activation(kind, c, bias_host)) for kind in ("tanh", "sigmoid", "relu",
                                                             "softmax")],
        ("activation_backward tanh", lambda: factory.activation_backward("tanh", act, product),
         read(product), ref.activation_backward("tanh", act_host, c)),
        ("cost_delta quadratic, tanh output",
         lambda: (factory.activation("tanh", product, product),
                  factory.cost_delta("quadratic", "tanh", 0.5, y, product, out)),
         read(out), 0.5 * (tanh_c - y_host) * (1 - tanh_c**2)),
        ("cost_sum quadratic", lambda: None, lambda: factory.cost_sum("quadratic", y, product),
         ref.cost_sum("quadratic", y_host, c, 0)),
        ("cost_sum binary_cross_entropy",
         lambda: factory.activation("sigmoid", product, product),
         lambda: factory.cost_sum("binary_cross_entropy", y, product),
         ref.cost_sum("binary_cross_entropy", y_host, sigmoid_c, eps)),
        ("rank1_update", lambda: factory.rank1_update(0.5, x, v, product), read(product),
         c + 0.5 * np.outer(x_host, v_host)),
        ("gemv transposed", lambda: factory.gemv(1.0, product, x, 0.0, w, trans=True), read(w),
         c.T @ x_host),
    ]
    failed = []
    for name, queue, result, expected in cases:
        late()
        queue()
        ok, detail = _close(result(), expected, tolerance)
        if not ok:
            failed.append(f"{name}: {detail}")
    for m in (*matrices, *vectors):
        m.release()
    more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
    report.check(not failed, f"{dtype} {len(cases)} operations on a running product",
                 "; ".join(failed[:3]) + more if failed else
                 f"each read back at once matches numpy (tolerance {tolerance:.2g})")


# --- the conformance kit ------------------------------------------------------------------------

def kit(factory, report: Report, verbose: bool = False) -> None:
    results = [run_check(check, factory) for check in CHECKS]
    bad = [r for r in results if r.outcome in ("fail", "error")]
    for result in results:
        if result in bad or verbose:
            message = result.message.splitlines()[0] if result.message else ""
            report.add({"pass": "ok", "skip": "skip"}.get(result.outcome, "FAIL"),
                       f"  kit {result.dtype} {result.check}", message[:200])
    skipped = sum(r.outcome == "skip" for r in results)
    seconds = sum(r.seconds for r in results)
    report.check(not bad, f"{factory.dtype} conformance kit ({len(results)} checks)",
                 f"{len(results) - len(bad) - skipped} passed, {len(bad)} failed, "
                 f"{skipped} skipped, {seconds:.1f} s")


# --- the article's benchmark --------------------------------------------------------------------

def benchmark_against_cpu(factory, size: bench.Size, peak: Peak, report: Report) -> None:
    result = bench.run(factory, size)
    report.check(result.tflops <= peak.tflops, f"benchmark {factory.dtype} ({size.epochs} epochs)",
                 f"{result.seconds:.3f} s, {result.tflops:.2f} TFLOP/s in the products, "
                 f"peak {peak.tflops:.1f}; one epoch {result.one_epoch_seconds:.3f} s")
    try:
        cpu = nnfs.backend("cpu", factory.dtype)
    except nnfs.NnfsError as error:
        report.add("skip", "benchmark cost against the cpu backend", str(error)[:200])
        return
    on_cpu = bench.run(cpu, size)
    cpu.release()
    difference = abs(result.cost - on_cpu.cost) / max(abs(on_cpu.cost), 1e-30)
    report.check(difference <= 1e-3, "benchmark cost against the cpu backend",
                 f"cuda {result.cost:.7g}, cpu {on_cpu.cost:.7g}, relative difference "
                 f"{difference:.1g} (allowed 1e-3); cpu took {on_cpu.seconds:.2f} s")


# --- the whole run ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    device: int = 0
    dtypes: tuple[str, ...] = ("float32", "float64")
    side: int = 4096
    size: bench.Size = bench.ARTICLE
    kit: bool = True
    benchmark: bool = True
    verbose: bool = False


def run(plan: Plan, report: Report) -> Report:
    """Every check of ``plan``, each factory released when its part is done. Raises
    nnfs.BackendUnavailable when the backend cannot run here."""
    first = nnfs.backend("cuda", plan.dtypes[0], device=plan.device)
    peak = describe_setup(first, report)
    first.release()
    for dtype in plan.dtypes:
        factory = nnfs.backend("cuda", dtype, device=plan.device)
        try:
            product_read_at_once(factory, plan.side, peak, report)
            late_inputs(factory, plan.side, report)
            if plan.kit:
                kit(factory, report, plan.verbose)
        finally:
            factory.release()
    if plan.benchmark:
        factory = nnfs.backend("cuda", "float32", device=plan.device)
        try:
            benchmark_against_cpu(factory, plan.size, peak, report)
        finally:
            factory.release()
    return report
