"""nnfs train and nnfs predict: the main job (issue #6)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import nnfs
from nnfs import fully_connected
from conftest import run_nnfs


def accuracy_of(output: str) -> float:
    found = re.search(r"test accuracy: ([\d.]+)% \((\d+) of (\d+)\)", output)
    assert found, output
    return float(found.group(1)) / 100


def test_defaults_reach_97_percent_on_the_digits():
    result = run_nnfs("train", "--quiet")
    assert result.returncode == 0, result.stderr
    assert accuracy_of(result.stdout) >= 0.97
    assert result.stderr == ""


def test_progress_lines_when_not_a_terminal():
    result = run_nnfs("train", "--epochs", "10", "--eta", "0.05")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch")]
    assert len(lines) == 10 and lines[-1].startswith("epoch   10/10: cost ")
    assert "\r" not in result.stdout + result.stderr


def test_save_plot_checkpoints_and_predict(tmp_path):
    model, plot = tmp_path / "digits.npz", tmp_path / "cost.png"
    result = run_nnfs("train", "--epochs", "6", "--eta", "0.05", "--save", str(model),
                      "--plot", str(plot), "--checkpoint-every", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with nnfs.load(model, nnfs.backend("cpu")) as network:
        assert network.in_dim == 64 and network.out_dim == 10
    from nnfs.data import digits

    dataset = digits()
    rows = np.column_stack([dataset.X[:40], dataset.y[:40]])
    csv = tmp_path / "some.csv"
    np.savetxt(csv, rows, delimiter=",", fmt="%g")
    out = tmp_path / "predictions.csv"
    predicted = run_nnfs("predict", "--model", str(model), "--data", str(csv), "--output", str(out))
    assert predicted.returncode == 0, predicted.stderr
    labels = out.read_text().split()
    assert labels[0] == "label" and len(labels) == 41
    assert re.match(r"accuracy: [\d.]+% \(\d+ of 40\)", predicted.stderr)
    assert np.mean(np.array(labels[1:], int) == dataset.y[:40]) > 0.8
    probabilities = run_nnfs("predict", "--model", str(model), "--data", str(csv),
                             "--probabilities", "--label-column", "64")
    assert probabilities.stdout.splitlines()[0].startswith("label,output_0,")


def test_predict_under_an_mpi_launch_writes_from_rank_0_only(tmp_path):
    """Every rank of ``mpiexec -n 2 nnfs predict`` runs the same command line; only rank 0
    predicts, prints and writes (the launcher's variables say which rank a process is)."""
    model = tmp_path / "m.npz"
    with nnfs.inference_network(nnfs.backend("cpu"), 3, [fully_connected(2, "softmax")],
                                seed=0) as network:
        nnfs.save(network, model)
    csv = tmp_path / "x.csv"
    np.savetxt(csv, np.random.default_rng(0).uniform(-1, 1, (5, 3)), delimiter=",")
    for rank, writes in (("1", False), ("0", True)):
        out = tmp_path / f"rank{rank}.csv"
        env = {"PMI_SIZE": "2", "PMI_RANK": rank}
        result = run_nnfs("predict", "--model", str(model), "--data", str(csv),
                          "--output", str(out), env=env)
        assert result.returncode == 0, result.stderr
        assert out.exists() is writes, rank
        result = run_nnfs("predict", "--model", str(model), "--data", str(csv), env=env)
        assert (result.stdout.splitlines()[:1] == ["label"]) is writes, rank


def test_train_on_a_csv_with_a_named_label(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    lines = ["a,b,c,cls"] + [f"{a:.5f},{b:.5f},{c:.5f},{k}" for (a, b, c), k in zip(X, y)]
    (tmp_path / "toy.csv").write_text("\n".join(lines))
    result = run_nnfs("train", "--data", str(tmp_path / "toy.csv"), "--label-column", "cls",
                      "--layers", "8:tanh,2:softmax", "--epochs", "20", "--eta", "0.3", "--quiet")
    assert result.returncode == 0, result.stderr
    assert accuracy_of(result.stdout) > 0.9


@pytest.mark.parametrize("arguments, message", [
    (["--layers", "64-tanh"], "--layers: '64-tanh' must be UNITS:ACTIVATION"),
    (["--layers", "64:tanh,8:softmax"], "the last layer has 8 units but the data has 10 classes"),
    (["--layers", "64:swish,10:softmax"], "unknown activation 'swish'"),
    (["--eta", "fast"], "--eta: 'fast' must be a number"),
    (["--eta", "-1"], "eta .* must be positive"),
    (["--batch-size", "0"], "batch_size must be positive"),
    (["--batch-size", "5000"], "batch_size is 5000 but X has only"),
    (["--checkpoint-every", "2"], "--checkpoint-every 2 needs --save"),
    (["--data", "/nonexistent/data.csv"], "does not exist"),
    (["--backend", "nosuch"], "names no installed backend"),
    (["--test-fraction", "1.5"], "between 0 and 1"),
])
def test_bad_input_is_one_line_on_stderr(arguments, message):
    result = run_nnfs("train", "--quiet", "--epochs", "1", *arguments)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert re.search(message, result.stderr), result.stderr


def test_bad_csv_names_the_line(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b,label\n1,2,0\n3,oops,1\n")
    result = run_nnfs("train", "--data", str(tmp_path / "bad.csv"), "--quiet")
    assert result.returncode == 1
    assert "line 3: column 1 ('b') holds 'oops'" in result.stderr


def test_predict_refuses_a_model_that_does_not_fit_the_data(tmp_path):
    model = tmp_path / "m.npz"
    assert run_nnfs("train", "--epochs", "1", "--eta", "0.05", "--save", str(model),
                    "--quiet").returncode == 0
    (tmp_path / "three.csv").write_text("1,2,3\n4,5,6\n")
    result = run_nnfs("predict", "--model", str(model), "--data", str(tmp_path / "three.csv"))
    assert result.returncode == 1 and "has 3 features per sample but the model" in result.stderr
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    result = run_nnfs("predict", "--model", str(tmp_path / "junk.npz"), "--data",
                      str(tmp_path / "three.csv"))
    assert result.returncode == 1 and "not an nnfs model" in result.stderr


def test_epochs_scale_the_default_schedule_and_must_agree_with_an_explicit_one():
    from nnfs.commands import default_schedule, learning_rates

    assert default_schedule(50) == [(30, 0.05), (20, 0.01)]
    assert learning_rates(None, None) == [(30, 0.05), (20, 0.01)]
    assert learning_rates(None, 10) == [(6, 0.05), (4, 0.01)]
    assert learning_rates(None, 1) == [(1, 0.05)]
    assert learning_rates("0.2", 7) == 0.2
    assert learning_rates("3:0.1,2:0.01", 5) == [(3, 0.1), (2, 0.01)]
    result = run_nnfs("train", "--quiet", "--epochs", "4", "--eta", "3:0.1,2:0.01")
    assert result.returncode == 1 and "--epochs 4 contradicts the schedule" in result.stderr
    result = run_nnfs("train", "--quiet", "--epochs", "3")
    assert result.returncode == 0 and "after 3 epochs" in result.stdout


def test_a_destination_that_cannot_take_the_model_is_refused_before_training(tmp_path):
    """--save into a file larger than the process may write (RLIMIT_FSIZE, as ulimit -f sets
    it): refused once the network's size is known, before the first epoch (no progress line),
    with one line on stderr; and the same for --checkpoint-every's file."""
    import resource
    import subprocess
    import sys

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    # a checkpoint holds the training's weights beside the model's (folded) ones
    for extra, size in (([], "79.0 KiB"), (["--checkpoint-every", "1"], "154.1 KiB")):
        result = subprocess.run(
            [sys.executable, "-m", "nnfs", "train", "--epochs", "3", "--eta", "0.05",
             "--save", str(tmp_path / "model.npz"), *extra],
            capture_output=True, text=True, timeout=120, preexec_fn=limited)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stdout.startswith("data: digits")  # it got as far as the data
        assert "epoch" not in result.stdout, "it trained before finding out"
        assert result.stderr.count("\n") == 1
        assert f"({size}), but this process may write files of at most 20000 bytes" \
            in result.stderr, result.stderr
        assert list(tmp_path.iterdir()) == []


def test_a_bom_csv_from_excel_trains_on_every_sample(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    text = "x1,x2,label\r\n" + "".join(f"{a:.4f},{b:.4f},{k}\r\n" for (a, b), k in zip(X, y, strict=True))
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = run_nnfs("train", "--data", str(tmp_path / "excel.csv"), "--layers",
                      "4:tanh,2:softmax", "--epochs", "2", "--eta", "0.1")
    assert result.returncode == 0, result.stderr
    assert "data: " in result.stdout and "48 training and 12 test samples" in result.stdout
