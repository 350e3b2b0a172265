"""Data-parallel training over MPI (issue #9): ``mpiexec -n 2`` on this machine's loopback.

The jobs are tests/mpi_jobs/fit_job.py, one scenario per run. Every ``mpiexec`` runs with a
bounded wait twice over: the launcher's own job timeout (MPIEXEC_TIMEOUT for MPICH's Hydra) and
the test's, after which the whole process group is killed and the test fails saying a rank
hung. The tests that need no launcher (the missing mpi4py) run always.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnfs
from conftest import ROOT, backend_params
from nnfs import fully_connected

JOB = ROOT / "tests" / "mpi_jobs" / "fit_job.py"
#: Seconds a job may take before it is called hung (one takes about 1 s here).
JOB_TIMEOUT = 120


def _mpiexec() -> str | None:
    """The mpiexec next to this Python (the mpich wheel puts it there), else on PATH."""
    return (shutil.which("mpiexec", path=str(Path(sys.executable).parent))
            or shutil.which("mpiexec"))


def _missing() -> str | None:
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed here: pip install 'nnfs-core[mpi]'"
    if _mpiexec() is None:
        return "no mpiexec here: pip install 'nnfs-core[mpi]' brings MPICH's"
    return None


def requires_mpi(test):
    """Mark a test that starts MPI jobs; skip it, saying what to install, where it cannot."""
    test = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))(test)
    return pytest.mark.mpi(test)


@functools.cache
def _loopback() -> tuple[list[str], dict[str, str]]:
    """mpiexec options and environment that keep a job on this machine's loopback interface,
    for MPICH's Hydra or Open MPI, whichever this mpiexec is."""
    version = subprocess.run([_mpiexec(), "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    if "HYDRA" in version.upper():
        return ["-iface", "lo"], {"MPIEXEC_TIMEOUT": str(JOB_TIMEOUT - 20)}
    return (["--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"],
            {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})


def run_mpi(ranks: int, *args: str, timeout: float = JOB_TIMEOUT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``mpiexec -n ranks python args...``, killed with its whole process group if it takes
    longer than ``timeout`` (then the test fails: some rank hung)."""
    options, extra = _loopback()
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("NNFS_")}
    environment.update(extra)
    environment.update(env or {})
    command = [_mpiexec(), "-n", str(ranks), *options, sys.executable, *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=environment, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(command)} did not end within {timeout} s: a rank hangs\n"
                    f"{stdout}{stderr}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def run_job(tmp_path: Path, *options: str, ranks: int = 2) -> tuple[subprocess.CompletedProcess,
                                                                    list[dict]]:
    """fit_job.py on ``ranks`` ranks; its result, and each rank's report (rank order).
    RuntimeWarnings are errors there, as nnfs's are in this suite."""
    result = run_mpi(ranks, "-W", "error::RuntimeWarning", str(JOB), "--out", str(tmp_path),
                     *options)
    reports = []
    for rank in range(ranks):
        report = tmp_path / f"rank{rank}.json"
        reports.append(json.loads(report.read_text()) if report.exists() else None)
    return result, reports


def one_process(backend: str, dtype: str, *, samples=49, batch_size=8, epochs=3, eta=0.3,
                layers="7:tanh,3:softmax", validation=11):
    """What fit_job.py trains, in this process alone with batch N·b: (parameters, history)."""
    sys.path.insert(0, str(JOB.parent))
    from fit_job import data

    X, y = data(samples, 1)
    Xv, yv = data(validation, 99)
    architecture = [fully_connected(int(units), kind)
                    for units, kind in (item.split(":") for item in layers.split(","))]
    factory = nnfs.backend(backend, dtype)
    with nnfs.inference_network(factory, X.shape[1], architecture, seed=10) as network:
        history = nnfs.fit(network, X, y, epochs=epochs, batch_size=batch_size, eta=eta, seed=7,
                           quiet=True, validation=(Xv, yv))
        return nnfs.transfer(network.parameters).astype(np.float64), history


def tolerance(dtype: str) -> float:
    return 1e-5 if dtype == "float32" else 1e-12


def assert_same_training(tmp_path, reports, expected_parameters, expected_history, dtype):
    """Every rank's history and rank 0's saved model match one process's; all ranks agree."""
    ours = np.load(tmp_path / "model.npz")["parameters"].astype(np.float64)
    close = tolerance(dtype)
    np.testing.assert_allclose(ours, expected_parameters, rtol=close * 10, atol=close)
    assert len({report["checksum"] for report in reports}) == 1  # bit for bit on every rank
    for report in reports:
        history = report["history"]
        assert history["ranks"] == len(reports)
        np.testing.assert_allclose(history["cost"], expected_history.cost, rtol=close)
        np.testing.assert_allclose(history["validation_cost"], expected_history.validation_cost,
                                   rtol=close)
        assert history["validation_accuracy"] == expected_history.validation_accuracy
        assert report["loaded"] is True


# --- equivalence --------------------------------------------------------------------------------

@requires_mpi
@pytest.mark.parametrize("factory", backend_params(names=("cpu", "opencl", "reference")),
                         indirect=True)
@pytest.mark.parametrize("samples", [49, 48], ids=["short-last-batch", "whole-batches"])
def test_two_ranks_of_batch_b_train_as_one_process_of_batch_2b(factory, samples, tmp_path):
    """49 samples, 2 ranks × 4 per step: 6 whole global batches of 8, then one of a single
    sample, so rank 1 has no share of it (and sums a zero gradient)."""
    result, reports = run_job(tmp_path, "--backend", factory.name, "--dtype", factory.dtype,
                              "--samples", str(samples))
    assert result.returncode == 0, result.stdout + result.stderr
    expected, history = one_process(factory.name, factory.dtype, samples=samples)
    assert_same_training(tmp_path, reports, expected, history, factory.dtype)
    steps_per_epoch = -(-samples // 8)
    assert all(report["gradient_sum"] == 3 * steps_per_epoch for report in reports)


@requires_mpi
def test_ranks_on_different_backends_still_train_as_one(tmp_path):
    """Any backend per rank: cpu on rank 0, the reference backend on rank 1."""
    if "reference" not in {info.name for info in nnfs.backends() if info.available}:
        pytest.skip("the reference backend is not installed (bash .ci/run installs it)")
    result, reports = run_job(tmp_path, "--backend", "cpu,reference", "--dtype", "float32")
    assert result.returncode == 0, result.stdout + result.stderr
    expected, history = one_process("cpu", "float32")
    assert_same_training(tmp_path, reports, expected, history, "float32")


@requires_mpi
@pytest.mark.parametrize("layer", ["cuda-standin", "cuda-recorder"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_factory_sums_on_the_device_through_its_nccl_layer(dtype, layer, tmp_path):
    """nnfs-cuda's NCCL path, over the numpy stand-in of its device layer (whose "NCCL" sums
    through MPI), and over its real device layer on the recording fake of CuPy (whose NCCL
    does too, and which refuses any operation off the factory's stream): the gradient never
    goes through nnfs's host buffer, and training is still one process's. A real GPU and NCCL
    are not here (see nnfs-cuda's README)."""
    if importlib.util.find_spec("nnfs_cuda") is None:
        pytest.skip("nnfs-cuda is not installed (bash .ci/run installs it)")
    result, reports = run_job(tmp_path, "--backend", layer, "--dtype", dtype)
    assert result.returncode == 0, result.stdout + result.stderr
    expected, history = one_process("cpu", dtype)
    assert_same_training(tmp_path, reports, expected, history, dtype)
    assert all(report["nccl_calls"] == report["gradient_sum"] == 21 for report in reports)
    if layer == "cuda-recorder":
        for report in reports:
            assert report["violations"] == []
            assert len(report["streams"]) == 1 and "legacy" not in report["streams"][0]


# --- every rank refuses, or the job ends --------------------------------------------------------

@requires_mpi
@pytest.mark.parametrize(("fault", "words"), [
    ("layers", "rank 1 has network '5 → 8 tanh → 3 softmax' where rank 0 has '5 → 7 tanh"),
    ("dtype", "rank 1 has dtype 'float64' where rank 0 has 'float32'"),
    ("data", "rank 1 has data checksum"),
    ("bad-x", "fit failed on rank 1 of 2: NnfsValueError: fit: X holds nan in row 3, column 2"),
    ("validation", "rank 1 has validation checksum"),
    ("validation-labels", "rank 1 has validation checksum"),
])
def test_ranks_that_differ_are_refused_on_every_rank_before_training(fault, words, tmp_path):
    result, reports = run_job(tmp_path, "--fault", fault)
    assert result.returncode != 0
    for report in reports:
        assert report["error"]["type"] == "DataParallelError"
        assert words in report["error"]["message"]
        assert report["error"]["ranks"] == [1]
        assert "history" not in report
    assert not (tmp_path / "model.npz").exists()


@requires_mpi
def test_fewer_samples_than_ranks_is_an_error_on_every_rank(tmp_path):
    result, reports = run_job(tmp_path, "--samples", "1", "--batch-size", "1")
    assert result.returncode != 0
    for report in reports:
        assert report["error"]["type"] == "NnfsValueError"
        assert ("X has 1 samples but the data-parallel job has 2 ranks: every rank needs at "
                "least one sample") in report["error"]["message"]


@requires_mpi
def test_a_batch_larger_than_the_data_over_all_ranks_is_refused(tmp_path):
    result, reports = run_job(tmp_path, "--samples", "10", "--batch-size", "6")
    assert result.returncode != 0
    for report in reports:
        assert ("batch_size is 6 per rank, 12 per step over 2 ranks, but X has only 10 "
                "samples; give batch_size at most 5") in report["error"]["message"]


@requires_mpi
def test_weights_that_drift_apart_stop_every_rank_naming_the_rank(tmp_path):
    """Rank 1 changes a weight by 1e-3 after epoch 1: the check after epoch 2 catches it."""
    result, reports = run_job(tmp_path, "--fault", "drift")
    assert result.returncode != 0
    for report in reports:
        assert report["error"]["type"] == "DataParallelError"
        assert report["error"]["message"].startswith(
            "the weights of rank 1 differ from rank 0's after epoch 2")
        assert report["error"]["ranks"] == [1]


@requires_mpi
def test_a_diverging_cost_stops_every_rank_at_the_same_batch(tmp_path):
    result, reports = run_job(tmp_path, "--fault", "diverge")
    assert result.returncode != 0
    errors = [report["error"] for report in reports]
    assert errors[0]["type"] == "TrainingDiverged"
    assert "summed over the 2 ranks" in errors[0]["message"]
    assert errors[1] == errors[0]  # the same batch, the same summed cost, on both ranks


@requires_mpi
def test_a_rank_that_fails_alone_takes_the_job_down_naming_itself(tmp_path):
    """Rank 1 raises in epoch 2 while rank 0 waits in the next allreduce: instead of a hang,
    the job ends at once (run_mpi fails the test if it does not end)."""
    result, reports = run_job(tmp_path, "--fault", "raise")
    assert result.returncode != 0
    assert ("nnfs: rank 1 of 2 failed during data-parallel training (nnfs.fit): RuntimeError: "
            "rank 1 gives up in epoch 2") in result.stderr
    assert "aborting the MPI job" in result.stderr
    assert reports == [None, None]  # neither rank got past fit


@requires_mpi
def test_an_uncaught_exception_in_a_script_ends_the_whole_job(tmp_path):
    """After nnfs.mpi.world(), rank 1's script dies while rank 0 waits at a barrier: the job
    ends (as under python -m mpi4py), where MPI alone would wait for rank 1 forever."""
    script = tmp_path / "crash.py"
    script.write_text("import nnfs\nworld = nnfs.mpi.world()\n"
                      "if world.rank == 1:\n    raise ValueError('rank 1 is done for')\n"
                      "world.barrier()\n")
    result = run_mpi(2, str(script), timeout=60)
    assert result.returncode != 0
    assert "ValueError: rank 1 is done for" in result.stderr  # the traceback, as usual
    assert "nnfs: rank 1 of 2 failed during the script" in result.stderr


#: How a rank's script may end early: sys.exit at any status, SystemExit, or simply its end.
EARLY_ENDS = {"sys.exit()": "import sys\n    sys.exit()",
              "sys.exit(3)": "import sys\n    sys.exit(3)",
              "SystemExit": "raise SystemExit('rank 1 has had enough')",
              "the end of its script": "pass"}


@requires_mpi
@pytest.mark.parametrize("waits_in", ["world.barrier()", "fit", "world.save()"])
@pytest.mark.parametrize("how", sorted(EARLY_ENDS))
def test_a_rank_that_ends_its_script_early_ends_the_job(tmp_path, how, waits_in):
    """After nnfs.mpi.world(), rank 1 leaves its script (SystemExit bypasses the exception
    hook) while rank 0 goes on into a call that needs it: rank 0 hears that rank 1 ended and
    ends the job, naming both, instead of waiting forever."""
    calls = {
        "world.barrier()": "world.barrier()",
        "fit": "nnfs.fit(network, np.zeros((8, 2)), np.zeros(8), epochs=1, batch_size=2, "
               "quiet=True, data_parallel=world)",
        "world.save()": f"world.save(network, {str(tmp_path / 'm.npz')!r})",
    }
    script = tmp_path / "early.py"
    script.write_text(
        "import numpy as np\nimport nnfs\nworld = nnfs.mpi.world()\n"
        "network = nnfs.inference_network(nnfs.backend('cpu'), 2,\n"
        "                                 [nnfs.fully_connected(1, 'sigmoid')], seed=0)\n"
        f"if world.rank == 1:\n    {EARLY_ENDS[how]}\nelse:\n    {calls[waits_in]}\n")
    result = run_mpi(2, str(script), timeout=60)
    assert result.returncode != 0
    assert ("nnfs: rank 0 of 2 failed during " in result.stderr
            and "DataParallelError: rank 1 of 2 ended its script (sys.exit(), or its end) "
                "while rank 0 waits for it in" in result.stderr), result.stderr
    assert "aborting the MPI job" in result.stderr


@requires_mpi
def test_ranks_that_end_at_different_times_end_normally(tmp_path):
    """No false alarm: rank 1 ends its script at once, rank 0 works on for longer than the
    grace period, needing nobody, and ends too; both call sys.exit(0), as sys.exit(main())
    does. The job succeeds."""
    script = tmp_path / "uneven.py"
    script.write_text(
        "import sys, time\nimport nnfs\nworld = nnfs.mpi.world()\nworld.barrier()\n"
        f"if world.rank == 0:\n    time.sleep({nnfs.mpi.EXIT_NOTICE_GRACE_SECONDS + 1})\n"
        "    print('rank 0 done')\nsys.exit(0)\n")
    result = run_mpi(2, str(script), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("rank 0 done") == 1 and "aborting" not in result.stderr


@requires_mpi
def test_nnfs_train_data_that_one_rank_cannot_read_fails_on_every_rank(tmp_path):
    result = run_mpi(2, "-m", "nnfs", "train", "--data", str(tmp_path / "missing.csv"),
                     "--epochs", "1", "--eta", "0.1")
    assert result.returncode == 1
    message = ("nnfs train: error: reading the data failed on ranks 0, 1 of 2: "
               "NnfsFileNotFoundError: data file")
    assert result.stderr.count(message) == 2, result.stderr


# --- files --------------------------------------------------------------------------------------

@requires_mpi
def test_only_rank_0_writes_and_every_rank_loads(tmp_path):
    result, reports = run_job(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ["model.npz", "rank0.json", "rank1.json"]  # one model, no temporaries
    assert all(report["loaded"] for report in reports)


@requires_mpi
def test_a_save_that_fails_on_rank_0_fails_on_every_rank(tmp_path):
    result, reports = run_job(tmp_path, "--fault", "save-nowhere")
    assert result.returncode != 0
    for report in reports:
        assert report["error"]["type"] == "DataParallelError"
        assert report["error"]["message"].startswith(
            "rank 0 could not save the model: NnfsFileNotFoundError")


# --- nnfs train ---------------------------------------------------------------------------------

@requires_mpi
@pytest.mark.parametrize("flag", [[], ["--mpi"]], ids=["detected", "--mpi"])
def test_nnfs_train_under_mpiexec_runs_data_parallel(flag, tmp_path):
    """``mpiexec -n 2 nnfs train --batch-size 8`` trains the model of ``nnfs train
    --batch-size 16``; rank 0 alone prints and writes the checkpoints and the model."""
    common = ["--eta", "0.05", "--epochs", "4", "--checkpoint-every", "2"]
    result = run_mpi(2, "-m", "nnfs", "train", *common, "--batch-size", "8", *flag,
                     "--save", str(tmp_path / "parallel.npz"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("test accuracy:") == 1
    assert "data-parallel: 2 ranks" in result.stdout
    single = subprocess.run([sys.executable, "-m", "nnfs", "train", *common, "--batch-size", "16",
                             "--save", str(tmp_path / "single.npz")],
                            capture_output=True, text=True, timeout=JOB_TIMEOUT)
    assert single.returncode == 0, single.stderr
    accuracy = next(line for line in single.stdout.splitlines() if "test accuracy:" in line)
    assert accuracy.split(" after ")[0] in result.stdout
    parallel = np.load(tmp_path / "parallel.npz")["parameters"]
    alone = np.load(tmp_path / "single.npz")["parameters"]
    np.testing.assert_allclose(parallel, alone, rtol=1e-4, atol=1e-4 * np.abs(alone).max())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["parallel.npz", "single.npz"]


# --- nnfs bench --mpi ---------------------------------------------------------------------------

@requires_mpi
def test_nnfs_bench_mpi_reports_time_allreduce_share_and_bytes(tmp_path):
    result = run_mpi(2, "-m", "nnfs", "bench", "tiny", "--mpi", "--json", "--epochs", "20",
                     "--repeats", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # rank 0 alone prints
    assert report["ranks"] == 2 and report["batch_per_rank"] == 1
    assert report["bytes_per_step"] == (17 + 1) * 4  # 2-4-1: 17 parameters, and the cost
    assert report["ring_bytes_per_rank_per_step"] == report["bytes_per_step"]
    assert 0 < report["allreduce_seconds_per_epoch"] < report["seconds_per_epoch"]
    assert 0 < report["allreduce_share"] < 1
    assert report["allreduce_alone_seconds"] > 0
    assert report["gradient_sum"] == "through host buffers"
    text = run_mpi(2, "-m", "nnfs", "bench", "tiny", "--epochs", "5", "--repeats", "1")
    assert text.returncode == 0, text.stderr
    assert "data-parallel on 2 ranks" in text.stdout  # detected without --mpi
    # the cost on a cluster's links is on paper, in benchmarks/cost_models.py (tests/test_layout.py)
    assert "python benchmarks/cost_models.py" in text.stdout


def test_the_benchmarks_parameter_count_is_the_networks(cpu):
    from nnfs import bench

    for name in ("tiny", "mid"):
        preset = bench.PRESETS[name]
        layers = [fully_connected(units, kind) for units, kind in preset.layers]
        with nnfs.inference_network(cpu, preset.in_dim, layers) as network:
            assert bench.parameter_count(preset) == network.parameter_count
    assert bench.parameter_count(bench.PRESETS["article"]) == 55_016_010


# --- without MPI --------------------------------------------------------------------------------

def test_without_mpi4py_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    with pytest.raises(nnfs.MpiUnavailable, match=r"pip install 'nnfs-core\[mpi\]'"):
        nnfs.mpi.world()
    factory = nnfs.backend("cpu")
    with nnfs.inference_network(factory, 2, [fully_connected(1, "sigmoid")]) as network, \
            pytest.raises(nnfs.MpiUnavailable, match=r"nnfs-core\[mpi\]"):
        nnfs.fit(network, np.zeros((4, 2)), np.zeros(4), epochs=1, data_parallel=True)


def test_nnfs_train_mpi_without_mpi4py_says_what_to_install(tmp_path):
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['mpi4py'] = None\n")
    environment = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "nnfs", "train", "--mpi", "--epochs", "1"],
                            capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("nnfs train: error: data-parallel training needs mpi4py")
    assert "pip install 'nnfs-core[mpi]'" in result.stderr


def test_importing_nnfs_does_not_start_mpi():
    code = "import sys, nnfs, nnfs.mpi; print('mpi4py' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_fit_refuses_a_data_parallel_that_is_not_a_world(cpu):
    with nnfs.inference_network(cpu, 2, [fully_connected(1, "sigmoid")]) as network, \
            pytest.raises(nnfs.NnfsTypeError, match=r"data_parallel must be nnfs.mpi.world\(\)"):
        nnfs.fit(network, np.zeros((4, 2)), np.zeros(4), epochs=1, data_parallel="yes")


@pytest.mark.parametrize(("environ", "size"), [
    ({}, 1),
    ({"PMI_SIZE": "4"}, 4),  # MPICH's and Intel MPI's Hydra
    ({"OMPI_COMM_WORLD_SIZE": "2"}, 2),  # Open MPI
    ({"MV2_COMM_WORLD_SIZE": "8"}, 8),  # MVAPICH
    ({"PMI_SIZE": ""}, 1),
])
def test_an_mpi_launch_is_recognised_from_the_launchers_variables(environ, size):
    assert nnfs.mpi.launched_size(environ) == size


@pytest.mark.parametrize("size", [1, 7, 8, 218_057])
def test_the_weights_checksum_sees_any_one_changed_bit(size):
    from nnfs.mpi import _checksum

    weights = np.random.default_rng(size).normal(size=size).astype(np.float32)
    reference = _checksum(weights)
    assert np.array_equal(_checksum(weights.copy().reshape(1, -1)), reference)
    bits = weights.view(np.uint32)
    for index in {0, size // 2, size - 1}:
        for bit in (0, 17, 31):
            changed = bits.copy()
            changed[index] ^= np.uint32(1 << bit)
            assert not np.array_equal(_checksum(changed.view(np.float32)), reference)


def test_the_weights_checksum_wraps_around_without_a_warning():
    from nnfs.mpi import _checksum

    words = np.full(3, 2**64 - 1, dtype=np.uint64)  # sums past 2⁶⁴, plus a tail of 4 bytes
    host = np.concatenate([words.view(np.uint8), np.full(4, 255, np.uint8)])
    total, folded = _checksum(host)  # RuntimeWarnings of nnfs are errors in this suite
    assert int(total) == (3 * (2**64 - 1) + 2**32 - 1) % 2**64
    assert int(folded) == (2**64 - 1) ^ (2**32 - 1)

