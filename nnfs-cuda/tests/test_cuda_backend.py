"""The cuda backend (nnfs-cuda), in three parts:

1. **Without a GPU, for real**: importing, listing and selecting the backend on a machine with
   no driver; the probe's reasons; NVRTC compiling kernels.cu (NVRTC needs no GPU); the
   offline GPU check script's install and its handling of a missing GPU.
2. **The factory's logic over ``NumpyStandIn``** (tests/cuda_standin.py), a numpy stand-in for
   the device layer — NOT a GPU: the conformance kit, shape mapping onto cuBLAS, views, the
   memory check, the allocation counter, when the factory waits, errors for bad input. These
   prove the logic that sits above CuPy; they prove nothing about cuBLAS, the CUDA kernels'
   arithmetic or the stream. Where every call goes and when memory is read is checked over
   the recorder (tests/test_cuda_ordering.py); the arithmetic on a GPU by part 3.
3. **On a GPU** (``@pytest.mark.gpu``): skipped here with the driver's reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

# without nnfs-cuda the module is skipped with this reason (nothing below could be imported)
pytest.importorskip("nnfs_cuda", reason="nnfs-cuda is not installed here: pip install "
                    "./nnfs-cuda (bash .ci/run installs it)")

from cuda_standin import StandInCudaFactory, StandInError, standin_factory_class

import nnfs
from conftest import ROOT, run_kit_check, run_nnfs
from nnfs import fully_connected
from nnfs.testing import CHECKS
from nnfs_cuda import SlowFloat64Warning, backend as cuda_backend, bench, kernels
from nnfs_cuda.device import DeviceUnavailable, _cupy_distributions, find_devices
from nnfs_cuda.plugin import probe

# --- 1. without a GPU, for real -----------------------------------------------------------------


def _cuda_info() -> nnfs.BackendInfo:
    return next(info for info in nnfs.backends() if info.name == "cuda")


def test_importing_nnfs_cuda_imports_no_cupy():
    code = ("import sys, nnfs_cuda, nnfs_cuda.plugin, nnfs_cuda.backend, nnfs_cuda.device; "
            "print('cupy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_backends_list_cuda_and_say_why_it_cannot_run():
    info = _cuda_info()
    assert info.distribution == "nnfs-cuda"
    assert info.dtypes == ("float32", "float64")
    if info.available:
        assert info.devices, "an available cuda backend names its devices"
        return
    assert info.reason, "an unavailable backend gives its reason"
    with pytest.raises(nnfs.BackendUnavailable) as raised:
        nnfs.backend("cuda")
    assert info.reason in str(raised.value)


def test_nnfs_backends_command_shows_cuda():
    result = run_nnfs("backends", "--json")
    assert result.returncode == 0, result.stderr
    assert '"name": "cuda"' in result.stdout and '"distribution": "nnfs-cuda"' in result.stdout


def test_creating_the_factory_without_a_gpu_says_why():
    status = probe()
    if status.available:
        pytest.skip(f"this machine has a CUDA device ({status.devices[0]}); the no-GPU "
                    "behaviour is not observable here")
    with pytest.raises(nnfs.BackendUnavailable, match=re.escape(status.reason)):
        nnfs_cuda_factory = nnfs.Factory(cuda_backend.CudaBackend())
        nnfs_cuda_factory.release()


def test_gpu_owner_command_without_a_gpu_exits_2_with_the_reason():
    if probe().available:
        pytest.skip("this machine has a CUDA device: python -m nnfs_cuda would run for real")
    result = subprocess.run([sys.executable, "-m", "nnfs_cuda", "--size", "small"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot be used here" in result.stderr


def _gpu_check(tmp_path, *options: str, **env: str) -> subprocess.CompletedProcess:
    """nnfs-cuda/gpu-check.sh, installing into ``tmp_path`` with this environment's Python."""
    if probe().available:
        pytest.skip("this machine has a GPU: run bash nnfs-cuda/gpu-check.sh itself (about 3 "
                    "minutes)")
    return subprocess.run(
        ["bash", str(ROOT / "nnfs-cuda" / "gpu-check.sh"), *options], capture_output=True,
        text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHON": sys.executable, "NNFS_GPU_CHECK_DIR": str(tmp_path), **env})


@pytest.mark.parametrize("builder", ["setuptools", "offline_build"])
def test_the_offline_gpu_check_installs_and_says_there_is_no_gpu(tmp_path, builder):
    """The script's steps on a machine without a GPU: the install from the checkout (with
    setuptools, or with offline_build.py as where setuptools is old or missing), the command
    exiting 2 with the reason, the GPU tests skipping with it, one report, exit status 2."""
    if not _cupy_distributions():
        pytest.skip("no CuPy is installed (nnfs-cuda's extras cuda12 and cuda13 bring one), "
                    "and gpu-check.sh runs where one is")
    forced = {"NNFS_GPU_CHECK_OFFLINE_BUILD": "1"} if builder == "offline_build" else {}
    result = _gpu_check(tmp_path, **forced)
    assert result.returncode == 2, result.stdout + result.stderr
    report = (tmp_path / "gpu-check-report.txt").read_text()
    assert result.stdout == report
    assert f"installed with: {'setuptools' if builder == 'setuptools' else 'nnfs-cuda/offline'}" \
        in report
    reason = probe().reason
    assert "== python -m nnfs_cuda --device 0 : no usable GPU here" in report
    assert reason in report.split("== pytest")[0]
    tests = report.split("== pytest -m gpu: passed")[1]
    assert tests.count(f"needs an NVIDIA GPU: {reason}") >= 6 and " skipped" in tests
    assert "== NO GPU: nothing was verified on a GPU" in report
    for name in ("nnfs_core", "nnfs_cpu", "nnfs_cuda"):
        assert (tmp_path / "site" / f"{name}-{nnfs.__version__}.dist-info").is_dir()
    dist_info = tmp_path / "site" / f"nnfs_cuda-{nnfs.__version__}.dist-info"
    entry_points = dist_info / "entry_points.txt"
    assert "cuda = nnfs_cuda.plugin" in entry_points.read_text()
    assert (tmp_path / "site" / "nnfs_cuda" / "kernels.cu").is_file()


def test_the_offline_gpu_check_refuses_an_unknown_option(tmp_path):
    result = _gpu_check(tmp_path, "--fast")
    assert result.returncode == 3
    assert "unknown option --fast (use --device N, --quick)" in result.stderr


class _FakeRuntime:
    """What find_devices reads from cupy.cuda.runtime, as a test sets it."""

    class CUDARuntimeError(RuntimeError):
        pass

    def __init__(self, driver=12040, count=1, error=None):
        self._driver, self._count, self._error = driver, count, error

    def driverGetVersion(self):
        return self._driver

    def runtimeGetVersion(self):
        return 12090

    def getDeviceCount(self):
        if self._error:
            raise self.CUDARuntimeError(self._error)
        return self._count

    cudaDevAttrSingleToDoublePrecisionPerfRatio = 87

    def getDeviceProperties(self, index):
        return {"name": b"Fake GPU", "totalGlobalMem": 11 * 2**30, "major": 6, "minor": 1}

    def deviceGetAttribute(self, attribute, index):
        assert attribute == 87
        return 32


@pytest.fixture
def fake_runtime(monkeypatch):
    """Make ``from cupy.cuda import runtime`` give a fake runtime (and one CuPy installed)."""
    import types

    def install(runtime):
        cuda = types.ModuleType("cupy.cuda")
        cuda.runtime = runtime
        monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
        monkeypatch.setattr("nnfs_cuda.device._cupy_distributions", lambda: ["cupy-cuda12x"])

    return install


@pytest.mark.parametrize(("runtime", "expected"), [
    (_FakeRuntime(driver=0), "no NVIDIA driver"),
    (_FakeRuntime(error="cudaErrorNoDevice: no CUDA-capable device is detected"),
     "cudaErrorNoDevice"),
    (_FakeRuntime(driver=11080, error="cudaErrorInsufficientDriver: driver too old"),
     "for CUDA up to 11.8"),
    (_FakeRuntime(count=0), "found no CUDA device"),
])
def test_probe_reasons(fake_runtime, runtime, expected):
    fake_runtime(runtime)
    status = probe()
    assert not status.available
    assert expected in status.reason


def test_probe_lists_devices(fake_runtime):
    fake_runtime(_FakeRuntime(count=2))
    status = probe()
    assert status.available and len(status.devices) == 2
    assert status.devices[1] == "1: Fake GPU (11.0 GiB, compute 6.1)"
    assert find_devices()[0].float64_ratio == 32 and not find_devices()[0].fast_float64


def test_float64_speed_comes_from_the_driver_when_it_says():
    from nnfs_cuda.device import DeviceInfo

    assert not DeviceInfo(0, "GTX 1080 Ti", 1, (6, 1)).fast_float64  # from the table
    assert DeviceInfo(0, "A100", 1, (8, 0)).fast_float64
    assert DeviceInfo(0, "future data-centre GPU", 1, (12, 3), float64_ratio=2).fast_float64
    assert not DeviceInfo(0, "A100 as a driver might see it", 1, (8, 0), 64).fast_float64


def test_probe_without_cupy(monkeypatch):
    """nnfs-cuda alone (no extra) installs no CuPy: the reason names both extras, as a plain
    fact rather than an exception's name (nnfs backends prints it)."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setitem(sys.modules, "cupy.cuda", None)
    monkeypatch.setattr("nnfs_cuda.device._cupy_distributions", lambda: [])
    status = probe()
    assert not status.available
    assert status.reason.startswith("CuPy is not installed; install it with the extra of your")
    assert "pip install 'nnfs-cuda[cuda12]'" in status.reason
    assert "pip install 'nnfs-cuda[cuda13]'" in status.reason
    assert "Error" not in status.reason


def test_probe_with_a_cupy_that_cannot_be_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setitem(sys.modules, "cupy.cuda", None)
    monkeypatch.setattr("nnfs_cuda.device._cupy_distributions", lambda: ["cupy-cuda12x"])
    status = probe()
    assert not status.available
    assert status.reason.startswith("CuPy cannot be imported (ModuleNotFoundError: import of cupy")
    assert "pip install 'nnfs-cuda[cuda12]'" in status.reason


def test_probe_refuses_two_cupy_wheels(fake_runtime, monkeypatch):
    fake_runtime(_FakeRuntime())
    monkeypatch.setattr("nnfs_cuda.device._cupy_distributions",
                        lambda: ["cupy-cuda12x", "cupy-cuda13x"])
    with pytest.raises(DeviceUnavailable, match="cupy-cuda12x, cupy-cuda13x"):
        find_devices()


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as error:  # NVRTC is a CUDA library: it can be missing
        pytest.skip(f"NVRTC cannot be loaded here ({type(error).__name__}: {error}); it comes "
                    "with nnfs-cuda's extras cuda12 and cuda13 (cuda-toolkit[nvrtc])")
    return nvrtc


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("arch", ["61", "75", "80", "90"])
def test_nvrtc_compiles_the_kernels(dtype, arch):
    """The exact source the GPU compiles, for the article's GTX 1080 Ti (6.1) to Hopper (9.0);
    and the float32 kernels do no float64 arithmetic (slow on consumer GPUs), except the
    cost's reduction, which accumulates in double on purpose."""
    nvrtc = _nvrtc()
    program = nvrtc.createProgram(kernels.source(), "kernels.cu", [], [])
    names = kernels.name_expressions(dtype)
    for name in names:
        nvrtc.addNameExpression(program, name)
    options = [*kernels.NVRTC_OPTIONS, "-ftz=true", f"--gpu-architecture=compute_{arch}"]
    try:
        nvrtc.compileProgram(program, options)
    except Exception:
        pytest.fail(f"NVRTC refused kernels.cu:\n{nvrtc.getProgramLog(program)}")
    ptx = nvrtc.getPTX(program)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    bodies = {entry.split("(")[0]: entry for entry in ptx.split(".entry ")[1:]}
    for name in names:
        body = bodies[nvrtc.getLoweredName(program, name)]
        if dtype == "float32" and not name.startswith("cost_partials"):
            assert ".f64" not in body, f"{name} does float64 arithmetic"


# --- the kernels' description, shared by the real layer and the stand-in -------------------------

def test_kernel_codes_cover_nnfs_kinds():
    from nnfs.kinds import ActivationKind, CostKind

    assert {k for k in ActivationKind if k != "softmax"} == {
        k.lower() for k in kernels.enum("Activation")}
    assert {str(k) for k in CostKind} == {k.lower() for k in kernels.enum("Cost")}
    assert cuda_backend.THREADS == 256


def test_kernel_arguments_are_checked_against_kernels_cu():
    x = np.zeros(4, np.float32)
    converted = kernels.arguments("fill", (x, 0.5, 4), "float32")
    assert [type(v) for v in converted[1:]] == [np.float32, np.int64]
    with pytest.raises(TypeError, match="takes 3 arguments"):
        kernels.arguments("fill", (x, 0.5), "float32")
    with pytest.raises(TypeError, match="parameter T\\* x: expected a 1-D array of float64"):
        kernels.arguments("fill", (x, 0.5, 4), "float64")
    with pytest.raises(TypeError, match="does not fit in int"):
        kernels.arguments("activation_backward", (x, x, 2**31, 4), "float32")
    with pytest.raises(TypeError, match="no kernel"):
        kernels.arguments("softmax", (), "float32")


# --- 2. the factory's logic over the numpy stand-in (NOT a GPU) ----------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.name)
def test_cuda_logic_conforms_on_numpy_standin(check, dtype):
    factory = StandInCudaFactory(dtype)
    run_kit_check(check, factory)


def _network(factory, sizes=(6, 8, 5, 3), kinds=("tanh", "relu", "sigmoid"), batch=16):
    """Inputs x, targets y, and the inference and training networks of a small network."""
    rng = np.random.default_rng(0)
    x = factory.matrix(sizes[0], batch, rng.uniform(-1, 1, (sizes[0], batch)))
    y = factory.matrix(sizes[-1], batch, rng.uniform(0.1, 0.9, (sizes[-1], batch)))
    layers = [fully_connected(n, kind) for n, kind in zip(sizes[1:], kinds, strict=True)]
    network = nnfs.inference_network(factory, sizes[0], layers, seed=1)
    return SimpleNamespace(x=x, y=y, network=network, training=nnfs.training_network(network, x))


def test_sgd_queues_every_epoch_and_waits_once_per_cost():
    """The article's point: ten epochs go to the stream back to back; the host waits for the
    cost that sgd returns, and once more for the check of the last update's parameters, which
    no later forward pass reads (a reduction like the cost's: no blocking cuBLAS call)."""
    factory = StandInCudaFactory()
    device = factory.backend._device
    net = _network(factory)
    training, y = net.training, net.y
    nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.1)
    step = training.step(y, nnfs.quadratic_cost, -0.1 / 16)
    ops_per_epoch = len(step.forward) + len(step.gradient) + len(step.update)
    syncs, device.longest_queue = device.synchronizations, 0
    nnfs.sgd(training, y, nnfs.quadratic_cost, 10, 0.1)
    assert device.synchronizations - syncs == 2
    assert device.longest_queue >= 10 * ops_per_epoch, "epochs waited for each other"
    nnfs.sgd(training, y, nnfs.quadratic_cost, [(5, 0.1), (3, 0.05), (2, 0.01)])
    assert device.synchronizations - syncs == 6, "one wait per (epochs, eta) pair, one check"
    factory.synchronize()
    assert device.synchronizations - syncs == 7 and factory.stats().synchronizations == 1
    assert device.blocking_calls == 0


def test_host_reads_wait_for_the_stream():
    factory = StandInCudaFactory()
    with factory.matrix(2, 3) as m:
        factory.fill(m, 2.0)
        assert factory.backend._device.queue, "fill is queued, not run"
        assert np.array_equal(nnfs.transfer(m), np.full((2, 3), 2.0))
        assert not factory.backend._device.queue
        factory.fill(m, 3.0)
        assert factory.nrm2(m) == pytest.approx(np.sqrt(6 * 9.0))  # nrm2 blocks as cuBLAS does


def test_no_allocation_per_epoch_and_pool_growth_is_counted():
    """An epoch takes nothing from the pool; if a CuPy call inside one did (a temporary), the
    pool would grow and the factory's allocation counter would show it."""
    factory = StandInCudaFactory()
    net = _network(factory)
    training, y = net.training, net.y
    nnfs.sgd(training, y, nnfs.quadratic_cost, 2, 0.1)
    before, held = factory.stats(), factory.backend._device.pool_held_bytes()
    nnfs.sgd(training, y, nnfs.quadratic_cost, 20, 0.1)
    assert factory.stats().allocations == before.allocations
    assert factory.backend._device.pool_held_bytes() == held

    device = factory.backend._device
    drain = device._drain

    def drain_with_a_temporary() -> None:
        device.pool.take(3 << 20)  # what a hidden CuPy temporary would do to the pool
        drain()

    device._drain = drain_with_a_temporary
    nnfs.sgd(training, y, nnfs.quadratic_cost, 3, 0.1)
    device._drain = drain
    assert factory.stats().allocations > before.allocations
    assert factory.backend.pool_growths >= 1


def test_a_network_too_big_for_the_device_is_refused_before_allocating():
    factory = standin_factory_class(capacity=1 << 20)()  # a 1 MiB device
    allocations = factory.backend._device.allocations
    with factory.matrix(200, 300) as x:  # 240 kB of float32
        network = nnfs.inference_network(factory, 200, [fully_connected(300, "tanh"),
                                                        fully_connected(10, "sigmoid")])
        made = factory.backend._device.allocations
        with pytest.raises(nnfs.OutOfDeviceMemory) as raised:
            nnfs.training_network(network, x)  # needs about 1.2 MB more
    error = raised.value
    assert factory.backend._device.allocations == made, "it allocated before refusing"
    assert error.requested > error.available
    assert str(error.requested) in str(error) and str(error.available) in str(error)
    assert made == allocations + 2  # x and the parameters
    network.release()


def test_an_allocation_the_device_refuses_becomes_out_of_device_memory():
    # the driver reports 64 MiB free, but the device holds 1 MiB: the check passes, CuPy fails
    factory = standin_factory_class(capacity=1 << 20, reported_free=64 << 20)()
    with pytest.raises(nnfs.OutOfDeviceMemory) as raised:
        factory.matrix(1024, 1024)  # 4 MiB
    error = raised.value
    assert error.requested == 4 << 20
    assert error.available is not None and str(error.available) in str(error)
    assert "Out of memory allocating" in str(error)
    assert isinstance(error, MemoryError)


def test_column_views_go_to_cublas_as_pointers_into_one_buffer():
    factory = StandInCudaFactory()
    device = factory.backend._device
    with factory.matrix(4, 10, np.arange(40.0).reshape(4, 10)) as big, factory.matrix(3, 4) as w, \
            factory.matrix(3, 5) as c:
        allocations = factory.stats().allocations
        view = big.columns(2, 7)
        factory.gemm(1.0, w, view, 0.0, c)
        operation, call = device.log[-1]
        assert operation == "gemm"
        assert (call["m"], call["n"], call["k"]) == (3, 5, 4)
        assert (call["lda"], call["ldb"], call["ldc"]) == (3, 4, 3)  # each operand's rows
        owner = big.buffer.storage
        assert np.shares_memory(call["b"], owner)
        offset = (call["b"].__array_interface__["data"][0]
                  - owner.__array_interface__["data"][0]) // owner.itemsize
        assert offset == 2 * 4, "the view starts two columns (of 4 rows) in"
        assert factory.stats().allocations == allocations, "a view allocated"


def test_transposes_map_onto_cublas_dimensions():
    factory = StandInCudaFactory()
    device = factory.backend._device
    with factory.matrix(5, 3) as a, factory.matrix(2, 5) as b, factory.matrix(3, 2) as c, \
            factory.vector(5) as x, factory.vector(3) as y:
        factory.gemm(1.0, a, b, 0.0, c, trans_a=True, trans_b=True)  # c = aᵀ·bᵀ
        _, call = device.log[-1]
        assert (call["trans_a"], call["trans_b"], call["m"], call["n"], call["k"]) == (
            True, True, 3, 2, 5)
        assert (call["lda"], call["ldb"], call["ldc"]) == (5, 2, 3)
        factory.gemv(1.0, a, x, 0.0, y, trans=True)  # y = aᵀ·x: cuBLAS takes a's own 5×3
        assert device.log[-1] == ("gemv", {"trans": True, "m": 5, "n": 3, "lda": 5})


def test_the_standin_catches_a_read_that_does_not_wait(monkeypatch):
    """The stand-in has teeth: a factory that reads the host copy before the stream got there
    reads stale memory, and the conformance kit fails."""
    def read_without_waiting(self, x):
        flat = np.zeros(x.size, dtype=self.numpy_dtype)
        self._device.download(x.handle, flat)
        return np.ascontiguousarray(flat.reshape(x.cols, x.rows).T)

    monkeypatch.setattr(cuda_backend.CudaBackend, "read", read_without_waiting)
    factory = StandInCudaFactory()
    with factory.matrix(2, 2, [[1, 2], [3, 4]]) as m:
        assert not np.array_equal(nnfs.transfer(m), [[1, 2], [3, 4]])


def test_the_standin_refuses_what_cublas_refuses(monkeypatch):
    def gemv_with_op_shape(self, alpha, a, x, beta, y, trans):
        rows, cols = (a.cols, a.rows) if trans else (a.rows, a.cols)
        return self._device.gemv(trans, rows, cols, alpha, a.handle, rows, x.handle, beta,
                                 y.handle)

    def gemm_ignoring_transpose(self, alpha, a, b, beta, c, trans_a, trans_b):
        return self._device.gemm(trans_a, trans_b, c.rows, c.cols, a.cols, alpha, a.handle,
                                 a.rows, b.handle, b.rows, beta, c.handle, c.rows)

    monkeypatch.setattr(cuda_backend.CudaBackend, "gemv", gemv_with_op_shape)
    monkeypatch.setattr(cuda_backend.CudaBackend, "gemm", gemm_ignoring_transpose)
    factory = StandInCudaFactory()
    with factory.matrix(4, 2) as a, factory.vector(4) as x, factory.vector(2) as y:
        with pytest.raises(StandInError, match="gemv: y: needs 4 elements, the array has 2"):
            factory.gemv(1.0, a, x, 0.0, y, trans=True)
        refused = r"gemm: A: leading dimension 2 is below max\(1, rows = 4\)"
        with factory.matrix(2, 4) as wide, factory.matrix(2, 3) as b, \
                factory.matrix(4, 3) as c, pytest.raises(StandInError, match=refused):
            factory.gemm(1.0, wide, b, 0.0, c, trans_a=True)  # k taken as 4, not 2


def test_device_index_must_exist():
    two = standin_factory_class(devices=2)
    with pytest.raises(nnfs.NnfsValueError, match="no device 2: this machine has 2 CUDA devices"):
        two(device=2)
    with pytest.raises(nnfs.NnfsValueError, match="0 or more"):
        two(device=-1)
    for bad in ("0", 1.0, True, None):
        with pytest.raises(nnfs.NnfsTypeError, match="device must be a device index"):
            two(device=bad)
    assert two(device=1).backend.device_info.index == 1


def test_float64_works_and_says_it_is_slow_on_consumer_gpus():
    consumer = standin_factory_class(compute_capability=(6, 1))  # the article's GTX 1080 Ti
    with pytest.warns(SlowFloat64Warning, match=r"compute 6\.1.*1/32 to 1/64"):
        factory = consumer("float64")
    with factory.matrix(1, 1, [[2.0]]) as m:
        assert nnfs.transfer(m).dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowFloat64Warning)
        consumer("float32")
        standin_factory_class(compute_capability=(8, 0))("float64")  # an A100: no warning


def test_matrices_of_another_device_or_backend_are_refused():
    two = standin_factory_class(devices=2)
    first, second = two(device=0), two(device=1)
    cpu = nnfs.backend("cpu")
    with first.matrix(2, 2) as a, second.matrix(2, 2, [[1, 2], [3, 4]]) as b, \
            cpu.matrix(2, 2, [[5, 6], [7, 8]]) as c:
        mismatch = r"on device 1.*not to cuda float32 on device 0"
        with pytest.raises(nnfs.BackendMismatch, match=mismatch):
            first.copy(b, a)
        with pytest.raises(nnfs.BackendMismatch, match="belongs to cpu"):
            first.axpy(1.0, c, a)
        nnfs.transfer(b, a)  # through the host: allowed
        assert np.array_equal(nnfs.transfer(a), [[1, 2], [3, 4]])
        nnfs.transfer(c, a)
        assert np.array_equal(nnfs.transfer(a), [[5, 6], [7, 8]])


def test_release_waits_for_the_stream_and_frees_the_layer():
    factory = StandInCudaFactory()
    m = factory.matrix(2, 2)
    factory.fill(m, 1.0)
    factory.release()
    assert factory.backend._device.released and not factory.backend._device.queue
    factory.release()  # idempotent
    with pytest.raises(nnfs.ReleasedError):
        factory.matrix(1, 1)
    assert "released" in repr(factory)


def test_the_peak_comes_from_the_multiprocessors_lanes_and_clock():
    from nnfs_cuda.verify import Peak, fp32_lanes

    assert fp32_lanes((9, 0)) == 128 and fp32_lanes((8, 0)) == 64 and fp32_lanes((6, 1)) == 128
    assert fp32_lanes((8, 6)) == 128 and fp32_lanes((7, 5)) == 64 and fp32_lanes((12, 0)) == 128
    h200 = Peak(132, 1.98e9, fp32_lanes((9, 0)))  # NVIDIA's figure: 67 TFLOP/s float32
    assert 66 < h200.tflops < 68
    gtx_1080_ti = Peak(28, 1.582e9, fp32_lanes((6, 1)))  # the article's card: 11.3
    assert 11.2 < gtx_1080_ti.tflops < 11.4


def test_benchmark_counts_the_article_flops():
    # forward W·a and ∇W for each layer, Wᵀ·δ for all but the first: 2·units·inputs·n each
    n = 10000
    expected = 2 * n * (2 * 5000 * 10000 + 3 * 1000 * 5000 + 3 * 10 * 1000)
    assert bench.gemm_flops(bench.ARTICLE) == expected
    # the article's 2.25 s is then about 10 TFLOP/s on a GTX 1080 Ti (11.3 at its peak)
    assert 9.5 < expected * 10 / 2.25 / 1e12 < 11.3


def test_benchmark_runs_on_the_standin():
    size = bench.Size(12, ((8, "tanh"), (6, "sigmoid"), (2, "sigmoid")), 20, 3)
    factory = StandInCudaFactory()
    result = bench.run(factory, size)
    assert result.seconds > 0 and result.tflops > 0 and np.isfinite(result.cost)
    assert "3 epochs" in result.report() and "TFLOP/s" in result.report()
    assert factory.stats().bytes_in_use == StandInCudaFactory().stats().bytes_in_use


# --- 3. on a GPU ----------------------------------------------------------------------------------

_STATUS = probe()
gpu = pytest.mark.skipif(not _STATUS.available,
                         reason=f"needs an NVIDIA GPU: {_STATUS.reason}")


@pytest.fixture
def gpu_factory():
    return nnfs.backend("cuda")


# The stream of every cuBLAS routine, a product read back at once, uploads and what does not
# fit run on a GPU too: tests/test_cuda_ordering.py, parametrized "gpu".


@pytest.mark.gpu
@gpu
def test_gpu_sgd_waits_once_per_cost(gpu_factory, monkeypatch):
    device = gpu_factory.backend._device
    waits = []
    wait = device.synchronize

    def counted() -> None:
        waits.append(1)
        wait()

    monkeypatch.setattr(device, "synchronize", counted)
    net = _network(gpu_factory)
    nnfs.sgd(net.training, net.y, nnfs.quadratic_cost, 10, 0.1)
    assert len(waits) == 1


@pytest.mark.gpu
@gpu
def test_gpu_pool_does_not_grow_during_epochs_but_its_growth_is_counted(gpu_factory):
    import cupy

    net = _network(gpu_factory, sizes=(64, 256, 128, 10), batch=512)
    training, y = net.training, net.y
    nnfs.sgd(training, y, nnfs.quadratic_cost, 2, 0.1)
    before = gpu_factory.stats().allocations
    held = gpu_factory.backend._device.pool_held_bytes()
    nnfs.sgd(training, y, nnfs.quadratic_cost, 20, 0.1)
    assert gpu_factory.backend._device.pool_held_bytes() == held
    assert gpu_factory.stats().allocations == before
    with cupy.cuda.Device(gpu_factory.device_info.index):
        foreign = cupy.empty(64 << 20, dtype=cupy.uint8)  # somebody else's 64 MiB
    assert gpu_factory.stats().allocations == before + 1
    del foreign


@pytest.mark.gpu
@gpu
def test_gpu_missing_device_index():
    count = len(_STATUS.devices)
    with pytest.raises(nnfs.NnfsValueError, match=f"no device {count}"):
        cuda_backend.CudaBackend(device=count)


@pytest.mark.gpu
@gpu
def test_gpu_owner_command_small():
    """The command as a subprocess, kept short: the full run is ``python -m nnfs_cuda``."""
    result = subprocess.run([sys.executable, "-m", "nnfs_cuda", "--size", "small", "--side",
                             "1024", "--skip-kit"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "TFLOP/s" in result.stdout and result.stdout.rstrip().endswith("all passed")


def test_without_a_driver_the_probe_says_so_without_importing_cupy():
    """Choosing the default backend probes nnfs-cuda on every machine it is installed on;
    where there is no NVIDIA driver, that must not cost CuPy's import (a second or two)."""
    code = ("import sys, nnfs_cuda.device as d\n"
            "d._driver_library_loads = lambda: False\n"
            "try:\n"
            "    d.find_devices()\n"
            "except d.DeviceUnavailable as reason:\n"
            "    print(reason)\n"
            "print('cupy imported' if any(m.split('.')[0] == 'cupy' for m in sys.modules)\n"
            "      else 'cupy not imported')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "cupy not imported"
    assert lines[0].startswith("no NVIDIA driver") or lines[0].startswith("CuPy is not installed")
