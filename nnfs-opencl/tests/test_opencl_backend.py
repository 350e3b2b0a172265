"""The OpenCL backend beyond the conformance kit: its gemm kernels on shapes that cross their
blocks, synchronisation, device memory, device choice and its errors.

The kit itself (tests/test_conformance.py) and the article's example (tests/test_article.py)
run on opencl too, because they take every installed backend.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import nnfs
from nnfs import backend_api as api
from nnfs.testing import CHECKS, CheckSkipped, checks

pytestmark = pytest.mark.opencl


def _opencl_status() -> str | None:
    """Why the OpenCL tests cannot run here, or None when they can."""
    for info in nnfs.backends():
        if info.name == "opencl":
            return None if info.available else f"opencl is unavailable here: {info.reason}"
    return "nnfs-opencl is not installed (pip install './nnfs-opencl[pocl]')"


REASON = _opencl_status()
needs_device = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _clblast_reason() -> str | None:
    try:
        import pyclblast  # noqa: F401
    except ImportError as error:
        return (f"pyclblast is not installed ({error}): pip install 'nnfs-opencl[clblast]' "
                "(needs the CLBlast library, e.g. Debian's libclblast-dev)")
    return None


def _dtypes() -> list[str]:
    if REASON is not None:
        return ["float32"]
    return next(info for info in nnfs.backends() if info.name == "opencl").dtypes


@pytest.fixture
def opencl():
    return nnfs.backend("opencl")


@pytest.fixture
def fresh():
    """A factory of its own, for tests that patch it or release it."""
    from nnfs_opencl.backend import OpenclBackend

    factory = nnfs.Factory(OpenclBackend())
    yield factory
    factory.release()


# --- gemm ---------------------------------------------------------------------------------------

STRATEGIES = ["blocked", "tiled", "clblast"]


def _gemm_factory(strategy: str, dtype: str) -> nnfs.Factory:
    if strategy == "clblast" and _clblast_reason():
        pytest.skip(_clblast_reason())
    return nnfs.backend("opencl", dtype, gemm=strategy)


@needs_device
@pytest.mark.parametrize("dtype", _dtypes())
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_gemm_passes_the_kit_gemm_checks(strategy, dtype):
    """The kit's gemm checks (awkward shapes, transposes, alpha, beta, views) on each kernel,
    not only on the one "auto" picks for this device."""
    factory = _gemm_factory(strategy, dtype)
    checks.check_gemm(factory)
    checks.check_gemm_ignores_old_output(factory)


@needs_device
@pytest.mark.parametrize("dtype", _dtypes())
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.name)
def test_the_whole_kit_passes_with_clblast(check, dtype):
    """The conformance kit runs on the default gemm (tests/test_conformance.py); CLBlast's
    products, its drain every epoch and its released events are held to all of it too."""
    factory = _gemm_factory("clblast", dtype)
    try:
        check.function(factory)
    except CheckSkipped as reason:
        pytest.skip(str(reason))


#: (m, k, n) across the kernels' blocks: 128 × 128 blocks and 256-deep slices of the blocked
#: kernel, 64 × 64 tiles and 16-deep slices of the tiled one, and ragged edges everywhere.
LARGE_SHAPES = [(130, 300, 140), (257, 513, 129), (64, 16, 64), (1, 700, 3), (300, 1, 9)]


@needs_device
@pytest.mark.parametrize("dtype", _dtypes())
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gemm_across_block_boundaries(strategy, dtype):
    factory = _gemm_factory(strategy, dtype)
    rng = np.random.default_rng(20)
    tolerance = 2e-5 if dtype == "float32" else 1e-12
    cases = [(shape, ta, tb, scalars) for shape in LARGE_SHAPES
             for ta in (False, True) for tb in (False, True)
             for scalars in ((1.0, 0.0), (-0.75, 1.5))]
    for number, ((m, k, n), trans_a, trans_b, (alpha, beta)) in enumerate(cases):
        a_host = rng.uniform(-1, 1, (k, m) if trans_a else (m, k))
        b_host = rng.uniform(-1, 1, (n, k) if trans_b else (k, n))
        c_host = rng.uniform(-1, 1, (m, n + 2))  # c is the middle columns of a wider matrix
        a_host, b_host, c_host = (x.astype(dtype).astype(np.float64)
                                  for x in (a_host, b_host, c_host))
        with factory.matrix(*a_host.shape, a_host) as a, \
                factory.matrix(*b_host.shape, b_host) as b, \
                factory.matrix(m, n + 2, c_host) as wide:
            factory.gemm(alpha, a, b, beta, wide.columns(1, n + 1), trans_a=trans_a,
                         trans_b=trans_b)
            got = nnfs.transfer(wide).astype(np.float64)
        op_a = a_host.T if trans_a else a_host
        op_b = b_host.T if trans_b else b_host
        expected = alpha * op_a @ op_b + beta * c_host[:, 1:-1]
        scale = abs(alpha) * np.abs(op_a) @ np.abs(op_b) + abs(beta) * np.abs(c_host[:, 1:-1]) + 1
        what = (f"case {number}: {strategy} gemm {m}×{k}×{n} ta={trans_a} tb={trans_b} "
                f"alpha={alpha} beta={beta}")
        assert np.all(np.abs(got[:, 1:-1] - expected) <= tolerance * scale), what
        assert np.array_equal(got[:, [0, -1]], c_host[:, [0, -1]]), f"{what}: wrote outside c"


@needs_device
def test_kernels_are_built_once_per_factory(fresh, monkeypatch):
    """Making and running plans builds no OpenCL program: they were built with the factory."""
    import pyopencl as cl

    built = []
    original = cl.Program.build

    def counting_build(self, *args, **kwargs):
        built.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cl.Program, "build", counting_build)
    with fresh.matrix(3, 4, np.ones((3, 4))) as x, fresh.matrix(2, 4) as y, \
            nnfs.inference_network(fresh, 3, [nnfs.fully_connected(5, "relu"),
                                              nnfs.fully_connected(2, "softmax")]) as network, \
            nnfs.training_network(network, x) as training:
        nnfs.sgd(training, y, nnfs.cross_entropy_cost, 3, 0.1)
        fresh.gemm(1.0, x, x, 0.0, fresh.matrix(3, 3), trans_b=True)
        fresh.nrm2(x)
    assert built == []


# --- synchronisation and memory -----------------------------------------------------------------

def test_the_event_is_released_for_the_pyclblast_releases_that_retain_it(monkeypatch):
    """Up to pyclblast 1.4 (every release so far) the plan drops CLBlast's reference; a later
    release is trusted, and the resident-memory test below would tell if it still leaks."""
    pytest.importorskip("pyopencl", reason="pyopencl is not installed")
    from importlib import metadata

    from nnfs_opencl import gemm

    for version, releases in (("1.4.0", True), ("1.3.1", True), ("1.4.1rc1", True),
                              ("1.5.0", False), ("1.10", False), ("2.0", False)):
        monkeypatch.setattr(metadata, "version", lambda name, v=version: v)
        assert gemm._pyclblast_leaks_events() is releases, version


@needs_device
@pytest.mark.slow
def test_clblast_products_leak_no_events_over_20000_epochs():
    """pyclblast returns CLBlast's event with a retain of its own, so each product used to
    leave one cl_event behind: 28.8 MB over these 20,000 epochs of an 8-16-3 network on PoCL.
    Resident memory, read after a warm-up and after every tenth of the run, stays within
    1 MiB."""
    import gc

    from conftest import resident_bytes

    factory = _gemm_factory("clblast", "float32")
    rng = np.random.default_rng(11)
    with factory.matrix(8, 32, rng.uniform(-1, 1, (8, 32))) as x, \
            factory.matrix(3, 32, rng.uniform(0, 1, (3, 32))) as y, \
            nnfs.inference_network(factory, 8, [nnfs.fully_connected(16, "tanh"),
                                                nnfs.fully_connected(3, "sigmoid")],
                                   seed=1) as network, \
            nnfs.training_network(network, x) as training:
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1000, 0.1)  # warm-up
        gc.collect()
        start, growth = resident_bytes(), []
        for _ in range(10):
            nnfs.sgd(training, y, nnfs.quadratic_cost, 2000, 0.1)
            gc.collect()
            growth.append(resident_bytes() - start)
    print(f"clblast, 20,000 epochs of 8-16-3: resident memory growth in KiB "
          f"{[g // 1024 for g in growth]}")
    assert max(growth) < 2**20, f"resident memory grew by {max(growth)} bytes: {growth}"


@needs_device
@pytest.mark.parametrize("strategy", ["auto", "clblast"])
def test_sgd_drains_the_queue_as_often_as_its_gemm_needs(strategy, monkeypatch):
    """CLBlast may allocate inside a call: sgd calls queue.finish() after every epoch. The
    built-in kernels allocate nothing: only every QUEUED_EPOCHS epochs of a pair, a bound on
    the queue. Counted by the factory and by the finish calls themselves."""
    import pyopencl as cl

    from nnfs_opencl.gemm import QUEUED_EPOCHS

    factory = _gemm_factory(strategy, "float32")
    every = 1 if strategy == "clblast" else QUEUED_EPOCHS
    assert factory.sync_every == every and QUEUED_EPOCHS > 1
    schedule = [(2 * QUEUED_EPOCHS + 5, 0.1), (QUEUED_EPOCHS + 3, 0.05)]
    expected = sum(epochs // every for epochs, _ in schedule)
    finishes = []
    original = cl.CommandQueue.finish
    with factory.matrix(4, 16, np.random.default_rng(0).uniform(size=(4, 16))) as x, \
            factory.matrix(3, 16) as y, \
            nnfs.inference_network(factory, 4, [nnfs.fully_connected(8, "tanh"),
                                                nnfs.fully_connected(3, "sigmoid")]) as network, \
            nnfs.training_network(network, x) as training:
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.1)
        before = factory.stats().synchronizations
        monkeypatch.setattr(cl.CommandQueue, "finish",
                            lambda queue: (finishes.append(queue), original(queue))[1])
        costs = nnfs.sgd(training, y, nnfs.quadratic_cost, schedule)
        monkeypatch.undo()
        assert factory.stats().synchronizations - before == expected
    assert len(finishes) == expected and all(queue is factory.backend.queue for queue in finishes)
    assert all(math.isfinite(value) for value in costs)
    assert expected == (sum(epochs for epochs, _ in schedule) if strategy == "clblast" else 3)


@needs_device
def test_every_device_buffer_is_counted_and_epochs_make_none(fresh, monkeypatch):
    """The allocation counter counts every pyopencl.Buffer the backend makes; epochs make none."""
    import pyopencl as cl

    made = []
    real_buffer = cl.Buffer

    def counting_buffer(*args, **kwargs):
        made.append(args)
        return real_buffer(*args, **kwargs)

    monkeypatch.setattr(cl, "Buffer", counting_buffer)
    before = fresh.stats().allocations
    rng = np.random.default_rng(1)
    with fresh.matrix(16, 300, rng.uniform(size=(16, 300))) as x, \
            fresh.matrix(4, 300, rng.uniform(size=(4, 300))) as y, \
            nnfs.inference_network(fresh, 16, [nnfs.fully_connected(130, "tanh"),
                                               nnfs.fully_connected(4, "softmax")]) as network, \
            nnfs.training_network(network, x) as training:
        assert len(made) == fresh.stats().allocations - before
        made.clear()
        counted = fresh.stats().allocations
        nnfs.sgd(training, y, nnfs.cross_entropy_cost, [(20, 0.1), (10, 0.05)])
        assert made == [] and fresh.stats().allocations == counted


@needs_device
def test_a_network_larger_than_one_allocation_is_refused_before_allocating(fresh):
    limit = fresh.memory_limits().max_allocation_bytes
    units = 1000
    inputs = limit // (fresh.itemsize * units) + 10  # the parameters exceed one allocation
    before = fresh.stats()
    with pytest.raises(nnfs.OutOfDeviceMemory) as raised:
        nnfs.inference_network(fresh, inputs, [nnfs.fully_connected(units, "tanh")])
    needed = (inputs + 1) * units * fresh.itemsize
    assert str(needed) in str(raised.value) and str(limit) in str(raised.value)
    assert (raised.value.requested, raised.value.available) == (needed, limit)
    assert fresh.stats() == before


@needs_device
def test_a_training_network_larger_than_the_device_is_refused_whole(fresh):
    """Each buffer fits one allocation but all of them do not fit the device: nothing is
    allocated, and the error names the bytes needed and the bytes available."""
    limits = fresh.memory_limits()
    width = 64
    samples = min(limits.max_allocation_bytes // (width * fresh.itemsize),
                  2**31 // width - 1)  # z and a of each layer just fit one allocation
    layers = int(limits.total_bytes // (2 * width * samples * fresh.itemsize)) + 1
    with fresh.matrix(1, samples) as x, \
            nnfs.inference_network(fresh, 1, [nnfs.fully_connected(width, "tanh")] * layers) \
            as network:
        before = fresh.stats()
        available = fresh.memory_limits().total_bytes
        with pytest.raises(nnfs.OutOfDeviceMemory) as raised:
            nnfs.training_network(network, x)
        assert fresh.stats() == before, "something was allocated before the refusal"
        assert raised.value.available == available
        assert raised.value.requested > available
        assert str(raised.value.requested) in str(raised.value)
        assert str(available) in str(raised.value)


@needs_device
def test_the_drivers_refusal_is_out_of_device_memory(fresh, monkeypatch):
    """With the size check out of the way, the driver itself refuses: same error, nothing kept."""
    too_big = fresh.memory_limits().max_allocation_bytes // fresh.itemsize + 1024
    monkeypatch.setattr(fresh, "memory_limits", lambda: api.MemoryLimits(None, None))
    before = fresh.stats()
    with pytest.raises(nnfs.OutOfDeviceMemory, match="driver refused") as raised:
        fresh.vector(too_big)
    assert raised.value.requested == too_big * fresh.itemsize
    assert fresh.stats() == before


# --- work-groups that every kernel allows --------------------------------------------------------

def _stricter_kernels(monkeypatch, limits: dict[str, int]) -> None:
    """Make the named kernels report a smaller CL_KERNEL_WORK_GROUP_SIZE than PoCL does, as a
    GPU kernel with many registers would, and a preferred multiple of 32 (NVIDIA's)."""
    from nnfs_opencl import programs

    real = programs.kernel_work_group

    def stricter(kernel, cl_device):
        size, _ = real(kernel, cl_device)
        return min(size, limits.get(kernel.function_name, size)), 32

    monkeypatch.setattr(programs, "kernel_work_group", stricter)


@needs_device
def test_a_kernel_that_allows_a_smaller_work_group_gets_one(monkeypatch):
    """The device allows 4096 work-items per group but, as on a GPU, one reduction kernel
    allows only 64 and the tiled gemm's kernels 100: the element-wise program is built again
    for 64 and the tiles shrink to 8 × 8, each with a warning, and the kit's checks pass."""
    from nnfs_opencl.backend import OpenclBackend
    from nnfs_opencl.programs import SmallerWorkGroupWarning

    _stricter_kernels(monkeypatch, {"nrm2_scaled": 64, "gemm_nn": 100, "gemm_tt": 100})
    with pytest.warns(SmallerWorkGroupWarning) as caught:
        factory = nnfs.Factory(OpenclBackend(gemm="tiled"))
    messages = [str(warning.message) for warning in caught]
    backend = factory.backend
    wanted = min(256, backend.device.cl_device.max_work_group_size)
    if wanted < 128:
        pytest.skip(f"this device allows only {wanted} work-items per group")
    assert backend.group == 64 and backend.group_limit.size == 64
    assert any("allows work-groups of 64 items" in m and f"than the {wanted}" in m
               for m in messages)
    tiles = backend.gemm_strategy.parameters
    assert (tiles["TM"], tiles["TN"]) == (8, 8) and backend.gemm_strategy.allowed.size == 100
    assert any("allows work-groups of 100 items" in m and "built again for 64" in m
               for m in messages)
    for check in (checks.check_vector_operations, checks.check_nrm2_extremes,
                  checks.check_gemv, checks.check_cost_sums, checks.check_gemm):
        check(factory)
    factory.release()


@needs_device
def test_a_work_group_below_the_preferred_multiple_says_it_may_be_slow(monkeypatch):
    from nnfs_opencl.backend import OpenclBackend
    from nnfs_opencl.programs import SmallerWorkGroupWarning

    _stricter_kernels(monkeypatch, {"gemv_t": 20})
    with pytest.warns(SmallerWorkGroupWarning, match="prefers multiples of 32, so this may be"):
        factory = nnfs.Factory(OpenclBackend())
    assert factory.backend.group == 16
    checks.check_gemv(factory)
    factory.release()


@needs_device
def test_the_device_maximum_of_pocl_is_honoured_by_every_kernel():
    """PoCL takes its device's maximum work-group from POCL_MAX_WORK_GROUP_SIZE: with 16,
    every program fits it, with no warning, and the kit's checks of each gemm pass."""
    from nnfs_opencl.device import select_device

    platform = select_device().platform_name
    if "Portable Computing Language" not in platform:
        pytest.skip(f"POCL_MAX_WORK_GROUP_SIZE is PoCL's; the default device is on {platform}")
    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        "import nnfs\n"
        "from nnfs.testing import checks\n"
        "for gemm in ('blocked', 'tiled'):\n"
        "    f = nnfs.backend('opencl', gemm=gemm)\n"
        "    b = f.backend\n"
        "    assert b.device.cl_device.max_work_group_size == 16, b.device.cl_device\n"
        "    for check in (checks.check_gemm, checks.check_gemv, checks.check_vector_operations,\n"
        "                  checks.check_nrm2_extremes, checks.check_cost_sums):\n"
        "        check(f)\n"
        "    print(gemm, b.group, b.gemm_strategy.parameters)\n")
    result = _run(code, {"POCL_MAX_WORK_GROUP_SIZE": "16"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "blocked 16 " in result.stdout
    assert "tiled 16 {'TM': 4, 'TN': 4," in result.stdout


@needs_device
def test_a_launch_the_driver_refuses_is_an_nnfs_error_naming_it(fresh):
    """Were a work-group ever too large, the driver's refusal at enqueue would be an
    nnfs.DeviceError naming the kernel and the device, not pyopencl's error."""
    backend = fresh.backend
    backend.group = 2 * backend.device.cl_device.max_work_group_size  # what PoCL will refuse
    with fresh.matrix(3, 3) as m, \
            pytest.raises(nnfs.DeviceError, match="the kernel fill on opencl") as raised:
        fresh.fill(m, 1.0)
    assert fresh.backend.device.name in str(raised.value)
    assert "INVALID_WORK_GROUP_SIZE" in str(raised.value) or "INVALID_WORK_ITEM_SIZE" in str(
        raised.value)


@needs_device
def test_a_program_the_compiler_refuses_is_an_nnfs_error_with_its_log(monkeypatch):
    from nnfs_opencl import programs
    from nnfs_opencl.backend import OpenclBackend

    monkeypatch.setattr(programs, "kernel_source", lambda name: "__kernel void broken( {")
    with pytest.raises(nnfs.DeviceError, match=r"building kernels/elementwise\.cl for ") as raised:
        OpenclBackend()
    assert "-DGROUP=" in str(raised.value)


# --- CL_OUT_OF_RESOURCES: memory, or a kernel's fault ---------------------------------------------

def _driver_error(routine: str, status: str):
    import pyopencl as cl

    record = cl._cl._ErrorRecord(msg=f"{routine} failed: {status}",
                                 code=getattr(cl.status_code, status), routine=routine)
    return cl.RuntimeError(record)


@needs_device
def test_out_of_resources_at_a_wait_may_be_memory_or_a_kernel_fault(fresh, monkeypatch):
    """NVIDIA's OpenCL reports a kernel's out-of-bounds access as CL_OUT_OF_RESOURCES at the
    next wait: sgd's drain, synchronize() and a read each raise an nnfs.DeviceError that names
    the operation and the device and says it may be either."""
    import pyopencl as cl

    rng = np.random.default_rng(3)
    with fresh.matrix(4, 8, rng.uniform(size=(4, 8))) as x, fresh.matrix(2, 8) as y, \
            nnfs.inference_network(fresh, 4, [nnfs.fully_connected(2, "sigmoid")]) as network, \
            nnfs.training_network(network, x) as training:
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.1)

        def fault(*args, **kwargs):
            raise _driver_error("clFinish", "OUT_OF_RESOURCES")

        monkeypatch.setattr(cl.CommandQueue, "finish", fault)
        for call, operation in ((fresh.synchronize, "synchronize"),
                                (lambda: nnfs.sgd(training, y, nnfs.quadratic_cost,
                                                  fresh.sync_every, 0.1), "synchronize")):
            with pytest.raises(nnfs.DeviceError) as raised:
                call()
            text = str(raised.value)
            assert not isinstance(raised.value, MemoryError)
            for words in (operation, fresh.backend.device.name, "CL_OUT_OF_RESOURCES",
                          "out of memory", "kernel may have faulted", "queued before this call"):
                assert words in text, (words, text)
        monkeypatch.undo()
        monkeypatch.setattr(cl, "enqueue_copy", lambda *a, **k: fault())
        with pytest.raises(nnfs.DeviceError, match="reading a 4×8 matrix back on opencl"):
            nnfs.transfer(x)
        with pytest.raises(nnfs.DeviceError, match="reading a reduction's partial results"):
            fresh.nrm2(x)


@needs_device
def test_out_of_resources_at_an_allocation_is_not_called_out_of_memory(fresh, monkeypatch):
    """The queue is drained when a buffer is allocated, so CL_OUT_OF_RESOURCES there may be an
    earlier kernel's fault: a DeviceError saying both, with nothing kept; a refused allocation
    (MEM_OBJECT_ALLOCATION_FAILURE) stays OutOfDeviceMemory."""
    import pyopencl as cl

    before = fresh.stats()
    for status, error in (("OUT_OF_RESOURCES", nnfs.DeviceError),
                          ("MEM_OBJECT_ALLOCATION_FAILURE", nnfs.OutOfDeviceMemory)):
        def refuse(*args, status=status, **kwargs):
            raise _driver_error("clEnqueueFillBuffer", status)

        monkeypatch.setattr(cl, "enqueue_fill_buffer", refuse)
        with pytest.raises(error) as raised:
            fresh.matrix(30, 40)
        assert fresh.stats() == before
        assert status in str(raised.value) and fresh.backend.device.name in str(raised.value)
    monkeypatch.undo()
    with fresh.matrix(30, 40) as fine:
        assert nnfs.transfer(fine).shape == (30, 40)


@needs_device
def test_clblast_failures_are_nnfs_errors_naming_the_product(monkeypatch):
    factory = _gemm_factory("clblast", "float32")

    def fail(*args, **kwargs):
        raise RuntimeError("PyCLBlast: 'CLBlastSgemm' failed: CLBlastOpenCLOutOfResources: "
                           "CL_OUT_OF_RESOURCES")

    monkeypatch.setattr(factory.backend.gemm_strategy.pyclblast, "gemm", fail)
    with factory.matrix(2, 2) as a, factory.matrix(2, 2) as c, \
            pytest.raises(nnfs.DeviceError, match=r"gemm \(clblast\) on opencl") as raised:
        factory.gemm(1.0, a, a, 0.0, c)
    assert "kernel may have faulted" in str(raised.value)


# --- same answers as the cpu backend ------------------------------------------------------------

@needs_device
@pytest.mark.parametrize("dtype", _dtypes())
def test_nrm2_neither_overflows_nor_underflows_and_agrees_with_the_cpu(dtype):
    """The scaled sum of the reduction kernel: [1e20]*4 is 2e20 (not inf) and [1e-30]*4 is
    2e-30 (not 0), as on the CPU backend, across every work-group of the reduction; an
    infinite entry gives inf and a NaN gives NaN, as BLAS does."""
    opencl, cpu = nnfs.backend("opencl", dtype), nnfs.backend("cpu", dtype)
    huge, tiny = (1e20, 1e-30) if dtype == "float32" else (1e200, 1e-200)
    rng = np.random.default_rng(16)
    cases = [np.full(4, huge), np.full(4, tiny), np.zeros(9),
             rng.choice([huge, -tiny, 0.0, 3.0], 50_001) * rng.uniform(0.5, 1, 50_001)]
    for values in cases:
        with opencl.vector(values.size, values) as ours, cpu.vector(values.size, values) as theirs:
            got, expected = opencl.nrm2(ours), cpu.nrm2(theirs)
            assert math.isfinite(got)
            assert got == pytest.approx(expected, rel=1e-5 if dtype == "float32" else 1e-12)
    with opencl.vector(300) as v:
        opencl.fill(v, 3.0 * huge)
        opencl.scal(3.0 * huge, v.subvector(7, 8))  # (3·huge)² is inf in this dtype
        assert opencl.nrm2(v) == math.inf
        opencl.sub(v, v, v.subvector(0, 300))  # inf − inf = NaN at entry 7, zeros elsewhere
        assert math.isnan(opencl.nrm2(v))


@needs_device
def test_the_article_example_matches_the_cpu_backend(opencl, cpu):
    from nnfs.examples import article_example

    ours, theirs = article_example(opencl), article_example(cpu)
    np.testing.assert_allclose(ours.untrained, theirs.untrained, rtol=1e-6)
    np.testing.assert_allclose(ours.costs[:3], theirs.costs[:3], rtol=1e-4)
    # after 2221 epochs the output is 0.5 to within a few float32 steps (6e-8 each), so the
    # last cost (about 2e-13) can differ relatively by tens of percent: compare it absolutely
    assert abs(ours.costs[3] - theirs.costs[3]) < 1e-11
    np.testing.assert_allclose(ours.trained, theirs.trained, rtol=1e-5)
    assert ours.input_unchanged


# --- devices and bad input ----------------------------------------------------------------------

@needs_device
def test_device_is_chosen_by_number_pair_or_name(opencl):
    from nnfs_opencl.device import all_devices, select_device

    first = all_devices()[0]
    for name in (0, "0", f"{first.platform_number}:{first.device_number}", first.name[:6].upper()):
        assert select_device(name).number == first.number
    with pytest.raises(nnfs.NnfsValueError, match="there is no OpenCL device 99"):
        select_device(99)
    with pytest.raises(nnfs.NnfsValueError, match="no OpenCL device or platform name contains"):
        select_device("no-such-device-name")
    with pytest.raises(nnfs.NnfsTypeError):
        select_device(1.5)


def test_the_default_device_is_the_first_gpu_else_the_first(monkeypatch):
    pytest.importorskip("pyopencl", reason="pyopencl is not installed")
    import pyopencl as cl

    from nnfs_opencl import device as devices

    class Fake:
        def __init__(self, kind):
            self.type = kind
            self.name = f"fake {kind}"

    def fake(kinds):
        return [devices.Device(i, 0, i, Fake(kind), "fake platform")
                for i, kind in enumerate(kinds)]

    monkeypatch.delenv(devices.ENV_DEVICE, raising=False)
    monkeypatch.setattr(devices, "build_failure", lambda device: None)
    cpu, gpu = cl.device_type.CPU, cl.device_type.GPU
    monkeypatch.setattr(devices, "all_devices", lambda: fake([cpu, gpu, gpu]))
    assert devices.select_device().number == 1
    monkeypatch.setattr(devices, "all_devices", lambda: fake([cpu, cpu]))
    assert devices.select_device().number == 0
    monkeypatch.setenv(devices.ENV_DEVICE, "1")
    assert devices.select_device().number == 1


def test_the_default_passes_over_devices_that_cannot_build_a_program(monkeypatch):
    pytest.importorskip("pyopencl", reason="pyopencl is not installed")
    import pyopencl as cl

    from nnfs_opencl import device as devices

    class Fake:
        def __init__(self, kind, name):
            self.type = kind
            self.name = name
            self.global_mem_size = 2**30

    cpu, gpu = cl.device_type.CPU, cl.device_type.GPU
    found = [devices.Device(0, 0, 0, Fake(gpu, "broken gpu"), "fake platform"),
             devices.Device(1, 1, 0, Fake(cpu, "broken cpu"), "fake platform"),
             devices.Device(2, 2, 0, Fake(cpu, "working cpu"), "fake platform")]
    broken = {"broken gpu": "error: unknown target CPU 'generic'", "broken cpu": "no compiler"}
    monkeypatch.delenv(devices.ENV_DEVICE, raising=False)
    monkeypatch.setattr(devices, "all_devices", lambda: found)
    monkeypatch.setattr(devices, "build_failure", lambda device: broken.get(device.name))
    assert devices.select_device().name == "working cpu"
    assert devices.select_device(1).name == "broken cpu"  # asked for by name: no passing over
    broken["working cpu"] = "it broke too"
    with pytest.raises(nnfs.BackendUnavailable, match="no OpenCL device can build a program") \
            as raised:
        devices.select_device()
    for reason in ("unknown target CPU 'generic'", "no compiler", "it broke too"):
        assert reason in str(raised.value)


@needs_device
def test_a_bad_device_in_the_environment_is_explained(monkeypatch):
    monkeypatch.setenv("NNFS_OPENCL_DEVICE", "no-such-device-name")
    registry = api.Registry()
    with pytest.raises(nnfs.BackendUnavailable, match="NNFS_OPENCL_DEVICE='no-such-device-name'"):
        registry.backend("opencl")


@needs_device
def test_bad_options_are_refused():
    with pytest.raises(nnfs.NnfsValueError, match="gemm='fastest' is not allowed; expected "
                                                  "one of 'auto', 'blocked', 'tiled'"):
        nnfs.backend("opencl", gemm="fastest")
    from nnfs_opencl.backend import OpenclBackend

    with pytest.raises(nnfs.NnfsValueError, match="gemm option must be one of"):
        OpenclBackend(gemm="fastest")  # the backend's own check, when made directly
    with pytest.raises(nnfs.NnfsTypeError, match="does not take the option"):
        nnfs.backend("opencl", queue=None)


def test_float64_without_device_support_is_a_clear_error(monkeypatch):
    if REASON is not None:
        pytest.skip(REASON)
    from nnfs_opencl import device as devices
    from nnfs_opencl.backend import OpenclBackend
    from nnfs_opencl.plugin import probe

    class NoDouble:
        double_fp_config = 0
        extensions = "cl_khr_byte_addressable_store cl_khr_icd"

    assert devices.supports_float64(NoDouble()) is False
    monkeypatch.setattr(devices, "supports_float64", lambda cl_device: False)
    assert probe().dtypes == ("float32",)
    with pytest.raises(nnfs.UnsupportedOperation, match="does not support float64"):
        OpenclBackend(dtype="float64")


@needs_device
def test_matrices_of_another_backend_or_context_are_refused(opencl, cpu, fresh):
    with opencl.matrix(2, 2) as a, cpu.matrix(2, 2) as on_cpu, fresh.matrix(2, 2) as elsewhere:
        with pytest.raises(nnfs.BackendMismatch, match="cpu float32"):
            opencl.gemm(1.0, on_cpu, a, 0.0, opencl.matrix(2, 2))
        with pytest.raises(nnfs.BackendMismatch, match="belongs to opencl"):
            opencl.axpy(1.0, elsewhere, a)  # same device, another OpenCL context
        nnfs.transfer([[1, 2], [3, 4]], elsewhere)
        assert nnfs.transfer(nnfs.transfer(elsewhere, a)).tolist() == [[1, 2], [3, 4]]


@needs_device
def test_released_buffers_and_factories_are_refused(fresh):
    m = fresh.matrix(2, 2)
    view = m.columns(0, 1)
    m.release()
    with pytest.raises(nnfs.ReleasedError):
        fresh.scal(2.0, view)
    fresh.release()
    with pytest.raises(nnfs.ReleasedError):
        fresh.matrix(1, 1)
    assert fresh.stats().bytes_in_use == 0


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_no_opencl_platform_is_a_clear_error_and_the_rest_works():
    """With no OpenCL driver at all (the loader pointed at a vendor file that does not
    exist), selecting opencl says what to install, and the cpu backend still works."""
    pytest.importorskip("pyopencl", reason="pyopencl is not installed")
    if REASON is not None and "not installed" in REASON:
        pytest.skip(REASON)
    code = (
        "import nnfs\n"
        "info = [i for i in nnfs.backends() if i.name == 'opencl'][0]\n"
        "print('available', info.available)\n"
        "try:\n"
        "    nnfs.backend('opencl')\n"
        "except nnfs.BackendUnavailable as error:\n"
        "    print('error', error)\n"
        "print('cpu', nnfs.backend('cpu').name)\n")
    result = _run(code, {"OCL_ICD_VENDORS": "/nonexistent/no-driver.icd"})
    assert result.returncode == 0, result.stderr
    assert "available False" in result.stdout
    assert "no OpenCL platform found" in result.stdout
    assert "nnfs-opencl[pocl]" in result.stdout
    assert "cpu cpu" in result.stdout


@needs_device
def test_the_benchmark_prints_its_tables():
    result = subprocess.run(
        [sys.executable, "-m", "nnfs_opencl.bench", "--sizes", "64", "--repeats", "1",
         "--scale", "0.01", "--epochs", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "gemm, float32, GFLOP/s" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.strip().startswith("64 ")]
    assert [row[1] for row in rows] == ["nn", "nt", "tn"]
    assert "seconds per epoch" in result.stdout and "× the cpu backend's time" in result.stdout


@needs_device
def test_samples_are_copied_as_they_are_both_ways(opencl):
    """One sample per host row is one sample per device column: fit's batch copies move the
    bytes directly, into and out of column views, and into a host array of any layout."""
    rng = np.random.default_rng(4)
    host = rng.uniform(-1, 1, (7, 3)).astype(np.float32)  # 7 samples of 3 features
    with opencl.matrix(3, 10) as x:
        view = x.columns(2, 9)
        opencl.backend.write_samples(host, view)
        expected = np.zeros((3, 10), np.float32)
        expected[:, 2:9] = host.T
        np.testing.assert_array_equal(nnfs.transfer(x), expected)
        out = np.empty((7, 3), np.float32)
        opencl.backend.read_samples(view, out)
        np.testing.assert_array_equal(out, host)
        strided = np.empty((7, 6), np.float32)[:, ::2]  # not contiguous: the general way
        opencl.backend.read_samples(view, strided)
        np.testing.assert_array_equal(strided, host)
