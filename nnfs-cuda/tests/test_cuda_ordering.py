"""Where nnfs-cuda's work goes and when memory is read: streams, ordering, lifetimes, device
errors — what a real GPU punishes and the numpy stand-in cannot see.

nnfs-cuda's real device layer (``CupyDevice``, not a stand-in for it) runs over the recorder
of tests/cuda_recorder.py, a recording fake of the CuPy it uses — NOT a GPU. The recorder
raises :class:`RecorderViolation` wherever an operation of a factory is issued off that
factory's stream, a wait returns with work on the factory's memory still queued elsewhere, or
a copy reads a host buffer that is pageable, freed or changed before the copy runs.

Tests parametrized with ``gpu`` run the same body on a real GPU (``pytest -m gpu``) and skip
here with the driver's reason.
"""

from __future__ import annotations

import gc
import re
import sys
import weakref
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("nnfs_cuda", reason="nnfs-cuda is not installed here: pip install "
                    "./nnfs-cuda (bash .ci/run installs it)")

from cuda_recorder import (
    CUBLAS_STATUS_ALLOC_FAILED,
    CUBLAS_STATUS_EXECUTION_FAILED,
    Recorder,
    RecorderViolation,
    recorder_of,
)

import nnfs
from conftest import run_kit_check
from nnfs import fully_connected
from nnfs.testing import CHECKS
from nnfs_cuda import device as cuda_device
from nnfs_cuda.backend import CudaBackend
from nnfs_cuda.plugin import probe


def CudaFactory(*args, **options) -> nnfs.Factory:  # made like the backend class
    """A factory of the CUDA backend of its own, made directly."""
    return nnfs.Factory(CudaBackend(*args, **options))


_STATUS = probe()
needs_gpu = pytest.mark.skipif(not _STATUS.available,
                               reason=f"needs an NVIDIA GPU: {_STATUS.reason}")


@pytest.fixture
def recorder():
    """A strict recorder, installed for the test; nothing may be left queued at the end."""
    found = Recorder()
    with found.installed():
        yield found
    assert not found.violations


@pytest.fixture(params=["recorder", pytest.param("gpu", marks=[pytest.mark.gpu, needs_gpu])])
def cuda(request):
    """The same test over the recorder (small sizes) and on a GPU (sizes where one kernel
    takes milliseconds): ``cuda.factory(dtype)``, ``cuda.cublas``, ``cuda.recorder``."""
    if request.param == "recorder":
        found = Recorder()
        with found.installed():
            from cupy_backends.cuda.libs import cublas

            yield SimpleNamespace(recorder=found, cublas=cublas, factory=CudaFactory, side=96)
        assert not found.violations
    else:
        from cupy_backends.cuda.libs import cublas

        yield SimpleNamespace(recorder=None, cublas=cublas, factory=CudaFactory, side=4096)


def _network(factory, sizes=(6, 8, 5, 3), kinds=("tanh", "relu", "sigmoid"), batch=16):
    rng = np.random.default_rng(0)
    x = factory.matrix(sizes[0], batch, rng.uniform(-1, 1, (sizes[0], batch)))
    y = factory.matrix(sizes[-1], batch, rng.uniform(0.1, 0.9, (sizes[-1], batch)))
    layers = [fully_connected(n, kind) for n, kind in zip(sizes[1:], kinds, strict=True)]
    network = nnfs.inference_network(factory, sizes[0], layers, seed=1)
    return SimpleNamespace(x=x, y=y, network=network, training=nnfs.training_network(network, x))


def _stream(factory):
    return factory.backend._device._stream


# --- the conformance kit, sgd, fit over the recorder ----------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.name)
def test_the_kit_passes_over_the_recorder_with_every_operation_on_its_stream(recorder, check,
                                                                            dtype):
    factory = CudaFactory(dtype)
    run_kit_check(check, factory)
    assert recorder.operations, "the check ran nothing on the device"
    for operation in recorder.operations:  # the factory's, or another CudaFactory the check made
        assert operation.stream.non_blocking, f"{operation}"
    assert not recorder.pending(), "work was left queued after release"


def test_sgd_queues_every_epoch_on_the_factory_stream_and_waits_for_its_reads(recorder):
    """Ten epochs queued back to back; the host waits for the cost sgd returns, then once more
    for the check of the last update's parameters (no forward pass reads that update)."""
    factory = CudaFactory()
    net = _network(factory)
    nnfs.sgd(net.training, net.y, nnfs.quadratic_cost, 1, 0.1)
    since, waits = len(recorder.operations), len(recorder.waits)
    cost = nnfs.sgd(net.training, net.y, nnfs.quadratic_cost, 10, 0.1)
    assert np.isfinite(cost)
    assert recorder.streams_used(since) == {_stream(factory)}
    assert [w.why for w in recorder.waits[waits:]] == ["Stream.synchronize"] * 2, \
        "a wait for the cost and one for the check of the last update"
    epoch = (len(recorder.operations) - since) // 10
    assert recorder.waits[waits].queued >= 10 * epoch - 2, "the epochs waited for each other"
    assert not recorder.pending()


def test_fit_runs_on_the_factory_stream_and_an_epoch_allocates_nothing(recorder):
    factory = CudaFactory()
    rng = np.random.default_rng(3)
    X = rng.normal(size=(70, 5))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3).astype(int)
    network = nnfs.inference_network(factory, 5, [fully_connected(7, "tanh"),
                                                  fully_connected(3, "softmax")], seed=2)
    seen = {}

    def on_epoch(epoch, history):
        seen[epoch] = (recorder.mallocs, recorder.pinned_allocations, factory.stats().allocations)

    history = nnfs.fit(network, X, labels, epochs=4, batch_size=8, eta=0.3, seed=1, quiet=True,
                       validation=(X[:20], labels[:20]), on_epoch=on_epoch)
    assert len(history.as_dict()["cost"]) == 4
    assert seen[2] == seen[4], "an epoch allocated (device memory, pinned memory or buffers)"
    assert recorder.streams_used() == {_stream(factory)}
    uploads = [op for op in recorder.operations if op.kind.endswith("host → device")]
    assert len(uploads) >= 4 * 9 * 2, "every batch's samples and targets are uploaded"
    assert recorder.pinned_allocations == 1, "one staging memory, allocated with the factory"


def test_every_buffer_is_allocated_on_the_factory_stream(recorder):
    factory = CudaFactory()
    net = _network(factory)
    nnfs.sgd(net.training, net.y, nnfs.quadratic_cost, 2, 0.1)
    arenas = {block.arena for block in recorder.blocks if block.in_use}
    assert arenas == {_stream(factory)}


def test_two_devices_each_keep_to_their_own_stream(monkeypatch):
    recorder = Recorder(devices=2)
    with recorder.installed():
        first, second = CudaFactory(device=0), CudaFactory(device=1)
        a = first.matrix(3, 3, np.eye(3))
        b = second.matrix(3, 3, np.full((3, 3), 2.0))
        c, d = first.matrix(3, 3), second.matrix(3, 3)
        first.gemm(1.0, a, a, 0.0, c)
        second.gemm(1.0, b, b, 0.0, d)
        nnfs.transfer(d, c)  # through the host
        assert np.array_equal(nnfs.transfer(c), np.full((3, 3), 12.0))
        by_device = {(op.device, op.stream) for op in recorder.operations}
        assert by_device == {(0, _stream(first)), (1, _stream(second))}
    assert not recorder.violations


# --- cuBLAS on the factory's stream (the handle is rebound on every call) ------------------------

def test_the_cublas_handle_is_on_the_factory_stream_after_each_routine(cuda):
    """CuPy rebinds the handle to the current stream at every call, so reading it before any
    call proves nothing: read it after each routine has run."""
    factory = cuda.factory()
    handle, stream = factory.backend._device._handle, _stream(factory)
    rng = np.random.default_rng(0)
    with factory.matrix(5, 4, rng.random((5, 4))) as a, factory.matrix(4, 3) as b, \
            factory.matrix(5, 3) as c, factory.vector(4, rng.random(4)) as x, \
            factory.vector(5) as y:
        routines = {
            "gemm": lambda: factory.gemm(1.0, a, b, 0.0, c),
            "gemv": lambda: factory.gemv(1.0, a, x, 0.0, y),
            "ger": lambda: factory.rank1_update(0.5, y, x, a),
            "axpy": lambda: factory.axpy(2.0, x, b.column(0)),
            "scal": lambda: factory.scal(0.5, y),
            "nrm2": lambda: factory.nrm2(x),
        }
        for name, run in routines.items():
            cuda.cublas.setStream(handle, 0)  # as someone else's CuPy call could leave it
            run()
            assert cuda.cublas.getStream(handle) == stream.ptr, (
                f"after {name}, the cuBLAS handle is on stream {cuda.cublas.getStream(handle)}, "
                f"not the factory's {stream.ptr}")
    factory.release()


def test_a_product_read_back_as_soon_as_it_is_queued_is_the_product(cuda):
    """A side×side×side product (4096³ on a GPU: milliseconds of work), read at once."""
    factory = cuda.factory()
    side = cuda.side
    rng = np.random.default_rng(1)
    a_host = rng.uniform(-1, 1, (side, side)).astype(np.float32)
    b_host = rng.uniform(-1, 1, (side, side)).astype(np.float32)
    with factory.matrix(side, side, a_host) as a, factory.matrix(side, side, b_host) as b, \
            factory.matrix(side, side) as c:
        factory.gemm(1.0, a, b, 0.0, c)
        product = nnfs.transfer(c)  # queued behind the product on the same stream
        norm = factory.nrm2(c)
    expected = a_host.astype(np.float64) @ b_host.astype(np.float64)
    error = np.max(np.abs(product - expected))
    assert error < 1e-5 * side, f"the product read back differs by {error}"
    assert norm == pytest.approx(np.linalg.norm(expected), rel=1e-4)
    factory.release()


# --- uploads go through pinned staging memory and never read a dead or changed host buffer -------

def test_an_upload_never_reads_the_host_array_after_it_returns(cuda):
    factory = cuda.factory()
    rng = np.random.default_rng(2)
    host = rng.random((64, 48)).astype(np.float32)
    kept = host.copy()
    with factory.matrix(64, 48) as m:
        nnfs.transfer(host, m)
        host[...] = -1.0  # reused at once
        alive = weakref.ref(host)
        del host
        gc.collect()
        assert alive() is None
        assert np.array_equal(nnfs.transfer(m), kept)
    factory.release()


def test_uploads_larger_than_the_staging_memory_and_many_in_a_row(recorder):
    """Uploads bigger than the pinned staging memory go in pieces, and a run of uploads with
    no wait in between reuses each half only after the copies out of it have run (the recorder
    checks each copy's source when it runs)."""
    factory = CudaFactory()
    staging = cuda_device.STAGING_BYTES
    big = np.random.default_rng(3).random(3 * staging // 4 + 1000).astype(np.float32)
    small = [np.full((32, 64), float(i), np.float32) for i in range(40)]  # 8 KiB each
    with factory.vector(big.size) as v:
        matrices = [factory.matrix(32, 64) for _ in small]
        nnfs.transfer(big, v)
        for host, m in zip(small, matrices, strict=True):
            nnfs.transfer(host, m)
        assert np.array_equal(nnfs.transfer(v), big)
        for host, m in zip(small, matrices, strict=True):
            assert np.array_equal(nnfs.transfer(m), host)
            m.release()
    assert recorder.pinned_allocations == 1
    copies = [op for op in recorder.operations if op.kind.endswith("host → device")]
    assert len(copies) > 3 + len(small), "the big upload went in pieces"


def test_fit_uploads_straight_from_its_sample_buffer(recorder, monkeypatch):
    """``_write_samples`` copies the host rows as they are (one sample per row is the
    column-major layout): no transposed copy per batch."""
    factory = CudaFactory()
    transposed = []
    original = np.ascontiguousarray

    def counting(array, *args, **kwargs):
        transposed.append(array.shape)
        return original(array, *args, **kwargs)

    X = np.random.default_rng(4).normal(size=(40, 5))
    network = nnfs.inference_network(factory, 5, [fully_connected(2, "sigmoid")], seed=0)
    monkeypatch.setattr(cuda_device.np, "ascontiguousarray", counting)
    nnfs.fit(network, X, np.zeros((40, 2)), epochs=2, batch_size=8, quiet=True, shuffle=False)
    monkeypatch.undo()
    assert transposed == [], f"the device layer made contiguous copies: {transposed[:3]}"


# --- the recorder has teeth: the defects it exists for, put back on purpose ----------------------

def _cublas_off_the_stream(on_stream):
    """The layer's old way for cuBLAS: the device current, the stream not (so CuPy binds the
    handle to the legacy default stream); every other call as ``on_stream`` does it."""

    def device_only(self, operation, call, *keep):
        if not operation.startswith("cuBLAS"):
            return on_stream(self, operation, call, *keep)
        device = self._device

        def run(_keep=keep):
            with device:
                return call()

        return run

    return device_only


def test_the_recorder_catches_cublas_off_the_factory_stream(recorder, monkeypatch):
    layer = cuda_device.CupyDevice
    monkeypatch.setattr(layer, "_on_stream", _cublas_off_the_stream(layer._on_stream))
    factory = CudaFactory()
    with factory.matrix(2, 2, np.eye(2)) as a, factory.matrix(2, 2) as c, \
            pytest.raises(RecorderViolation, match="cuBLAS gemm issued on the legacy default"):
        factory.gemm(1.0, a, a, 0.0, c)
    recorder.violations.clear()


def test_the_recorder_catches_a_wait_that_leaves_work_on_another_stream(monkeypatch):
    layer = cuda_device.CupyDevice
    monkeypatch.setattr(layer, "_on_stream", _cublas_off_the_stream(layer._on_stream))
    recorder = Recorder(strict=False)
    with recorder.installed():
        factory = CudaFactory()
        with factory.matrix(2, 2, np.eye(2)) as a, factory.matrix(2, 2) as c:
            factory.gemm(1.0, a, a, 0.0, c)
            back = nnfs.transfer(c)
    assert not np.array_equal(back, np.eye(2)), "the product was read before it ran"
    assert any(re.search(r"Stream.synchronize of stream .* returned while 1 operation\(s\) on "
                         r"its memory were still queued on the legacy default stream", text)
               for text in recorder.violations), recorder.violations


def test_the_recorder_catches_a_host_read_that_does_not_wait(recorder, monkeypatch):
    """A read that queues its copy but does not wait sees what the recorder leaves in a host
    buffer until the copy has run — NaN, so that no check can pass by luck — and the copy,
    when the stream gets to it, writes into a buffer that is already freed."""
    def read_without_waiting(self, x):
        flat = np.empty(x.size, dtype=self.numpy_dtype)
        self._device.download(x.handle, flat)
        return np.ascontiguousarray(flat.reshape(x.cols, x.rows).T)

    monkeypatch.setattr(CudaBackend, "read", read_without_waiting)
    factory = CudaFactory()
    with factory.matrix(2, 2, [[1, 2], [3, 4]]) as m:
        assert np.isnan(nnfs.transfer(m)).all()
        gc.collect()
        with pytest.raises(RecorderViolation, match="ran after the host buffer it writes"):
            factory.synchronize()
    recorder.violations.clear()


def test_the_recorder_catches_uploads_from_pageable_host_arrays_that_die(monkeypatch):
    def upload_as_before(self, host, view):  # the layer's old upload
        with self._device:
            view.set(np.ascontiguousarray(host.reshape(-1)), stream=self._stream)

    monkeypatch.setattr(cuda_device.CupyDevice, "upload", upload_as_before)
    recorder = Recorder(strict=False)
    with recorder.installed():
        factory = CudaFactory()
        with factory.matrix(2, 3) as m:
            nnfs.transfer(np.arange(6.0).reshape(2, 3), m)
            gc.collect()
            nnfs.transfer(m)
    assert any("reads pageable host memory" in text for text in recorder.violations)
    assert any("ran after the host buffer it reads (24 bytes) was freed" in text
               for text in recorder.violations), recorder.violations


def test_the_recorder_catches_staging_memory_reused_before_its_copy_ran(recorder, monkeypatch):
    def room_without_waiting(self, nbytes, stream):
        start = self._used if self._used + nbytes <= self.half else 0
        self._used = start + nbytes
        return self._memory[self._current, start:start + nbytes]

    monkeypatch.setattr(cuda_device._Staging, "_room", room_without_waiting)
    factory = CudaFactory()
    data = np.arange(cuda_device.STAGING_BYTES // 4, dtype=np.float32)  # two halves' worth
    with factory.vector(data.size) as v, pytest.raises(
            RecorderViolation, match="was changed after the copy was queued and before it ran"):
        nnfs.transfer(data, v)
        nnfs.transfer(v)
    recorder.violations.clear()


# --- device errors become nnfs errors naming the operation and the device ------------------------

def test_a_kernel_fault_surfaces_at_the_next_wait_as_a_device_error(recorder):
    factory = CudaFactory()
    device = str(factory.backend.device_info)
    with factory.matrix(4, 4) as m:
        recorder.faults.kernel = True
        factory.fill(m, 1.0)  # queued: nothing is known yet
        with pytest.raises(nnfs.DeviceError) as raised:
            nnfs.transfer(m)
        text = str(raised.value)
        assert isinstance(raised.value, RuntimeError) and isinstance(raised.value, nnfs.NnfsError)
        for words in ("synchronize", device, "cudaErrorIllegalAddress", "CUDA_LAUNCH_BLOCKING"):
            assert words in text, f"{words!r} not in {text!r}"
        with pytest.raises(nnfs.DeviceError, match=r"kernel fill .* failed \(CUDADriverError"):
            factory.fill(m, 2.0)  # every later call fails, and says so
    with pytest.raises(nnfs.DeviceError, match="release"):
        factory.release()
    assert factory.backend._device._handle is None, "release freed the handle even so"


def test_a_kernel_fault_during_sgd_is_a_device_error(recorder):
    factory = CudaFactory()
    net = _network(factory)
    recorder.faults.kernel = True
    with pytest.raises(nnfs.DeviceError, match="on device 0: Recorder"):
        nnfs.sgd(net.training, net.y, nnfs.quadratic_cost, 3, 0.1)


@pytest.mark.parametrize(("status", "error", "words"), [
    (CUBLAS_STATUS_ALLOC_FAILED, nnfs.OutOfDeviceMemory, "ran out of device memory"),
    (CUBLAS_STATUS_EXECUTION_FAILED, nnfs.DeviceError, "failed"),
])
def test_a_cublas_failure_names_the_routine_and_the_device(recorder, status, error, words):
    factory = CudaFactory()
    with factory.matrix(3, 4) as a, factory.matrix(4, 2) as b, factory.matrix(3, 2) as c:
        recorder.faults.cublas_status = status
        with pytest.raises(error) as raised:
            factory.gemm(1.0, a, b, 0.0, c)
    text = str(raised.value)
    assert "cuBLAS sgemm (3×2×4)" in text and str(factory.backend.device_info) in text
    assert words in text
    assert "CUBLASError" in text
    if error is nnfs.OutOfDeviceMemory:
        assert isinstance(raised.value, MemoryError) and raised.value.available is not None


def test_an_nvrtc_failure_names_the_compiler_and_the_device(recorder):
    recorder.compile_failure = "kernels.cu(42): error: identifier \"T\" is undefined"
    with pytest.raises(nnfs.BackendUnavailable) as raised:
        CudaFactory()
    text = str(raised.value)
    assert "NVRTC could not compile" in text and "device 0: Recorder" in text
    assert "kernels.cu(42)" in text


def test_what_does_not_fit_is_refused_with_both_numbers(cuda):
    """Bigger than the device's free memory: OutOfDeviceMemory before allocating, whatever
    the size of the device (the message prints bytes, then GiB)."""
    factory = cuda.factory()
    free = factory.memory_limits().total_bytes
    side = int((free / 4) ** 0.5) + 1024
    with pytest.raises(nnfs.OutOfDeviceMemory) as raised:
        factory.matrix(side, side)
    error = raised.value
    assert error.requested == side * side * 4 and error.requested > error.available
    assert re.search(rf"needs {error.requested} bytes .*has {error.available} bytes "
                     r"(\([\d.]+ [KMGT]iB\) )?available", str(error)), str(error)
    factory.release()


def test_release_frees_the_handle_and_the_pinned_memory(recorder):
    factory = CudaFactory()
    m = factory.matrix(3, 3, np.ones((3, 3)))
    factory.fill(m, 2.0)
    staging = weakref.ref(factory.backend._device._staging)
    factory.release()
    gc.collect()
    assert not recorder.pending() and staging() is None
    assert all(handle.destroyed for handle in recorder.handles)
    factory.release()  # idempotent


def test_the_recorder_does_not_leak_into_other_tests():
    assert "cupy" not in sys.modules or not hasattr(sys.modules["cupy"], "__recorder__")


def test_recorder_of_finds_the_recorder(recorder):
    assert recorder_of(CudaFactory()) is recorder


# --- python -m nnfs_cuda, the GPU owner's command, over the recorder -----------------------------

def _owner_command(capsys, recorder, *args: str) -> tuple[int, str]:
    from nnfs_cuda.__main__ import main

    with recorder.installed():
        code = main(["--side", "48", "--size", "small", *args])
    return code, capsys.readouterr().out


def test_the_gpu_owner_command_passes_over_the_recorder(capsys, monkeypatch, tmp_path):
    from nnfs_cuda import verify

    monkeypatch.setattr(verify, "CHECKS", CHECKS[:3])  # the whole kit runs above
    recorder = Recorder()
    code, out = _owner_command(capsys, recorder, "--report", str(tmp_path / "report.txt"))
    assert code == 0, out
    for name in ("float32 48³ product read back at once", "cuBLAS handle's stream after a gemm",
                 "cuBLAS handle's stream after an nrm2", "float64 16 operations on a running",
                 "float32 conformance kit (3 checks)", "benchmark cost against the cpu backend"):
        assert re.search(rf"^ok +{re.escape(name)}", out, re.MULTILINE), (name, out)
    assert "float32 peak" in out and out.rstrip().endswith("all passed")
    written = (tmp_path / "report.txt").read_text()
    assert written.splitlines()[-1] == out.rstrip().splitlines()[-1]
    assert not recorder.violations


def test_the_gpu_owner_command_catches_cublas_off_the_stream(capsys, monkeypatch):
    """Over a recorder that only records (as a GPU would only compute), the layer's old
    cuBLAS calls make the command fail where a GPU would show it: the product read back at
    once, the handle's stream, and the operations on a running product."""
    layer = cuda_device.CupyDevice
    monkeypatch.setattr(layer, "_on_stream", _cublas_off_the_stream(layer._on_stream))
    code, out = _owner_command(capsys, Recorder(strict=False), "--skip-kit", "--dtype",
                               "float32")
    assert code == 1
    for name in ("float32 48³ product read back at once", "cuBLAS handle's stream after a gemm",
                 "cuBLAS handle's stream after an nrm2", "float32 16 operations on a running",
                 "benchmark cost against the cpu backend"):
        assert re.search(rf"^FAIL +{re.escape(name)}", out, re.MULTILINE), (name, out)
    assert out.rstrip().endswith("FAILED")


def test_the_gpu_owner_command_flags_a_speed_above_the_cards_peak(capsys):
    # a "card" of 4 multiprocessors at 1 kHz: 1 MFLOP/s, which any product here exceeds
    code, out = _owner_command(capsys, Recorder(clock_khz=1), "--skip-kit", "--dtype",
                               "float32")
    assert code == 1
    assert re.search(r"^FAIL +float32 48³ product speed .* peak 0\.0", out, re.MULTILINE), out
    assert re.search(r"^FAIL +benchmark float32", out, re.MULTILINE), out
