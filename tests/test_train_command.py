"""nnfs train and nnfs predict: the main job (issue #6)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import nnfs
from conftest import run_nnfs
from nnfs import fully_connected


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
    lines = ["a,b,c,cls"] + [f"{a:.5f},{b:.5f},{c:.5f},{k}"
                             for (a, b, c), k in zip(X, y, strict=True)]
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
    text = "x1,x2,label\r\n" + "".join(f"{a:.4f},{b:.4f},{k}\r\n"
                                       for (a, b), k in zip(X, y, strict=True))
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = run_nnfs("train", "--data", str(tmp_path / "excel.csv"), "--layers",
                      "4:tanh,2:softmax", "--epochs", "2", "--eta", "0.1")
    assert result.returncode == 0, result.stderr
    assert "data: " in result.stdout and "48 training and 12 test samples" in result.stdout


# --- what nnfs train saves takes the data as the user has it (issue #19) ---------------------

@pytest.mark.parametrize("standardize", [True, False], ids=["standardized", "no-standardize"])
def test_the_digits_model_takes_load_digits_data_as_scikit_learn_gives_it(tmp_path, standardize):
    """The digits are trained at 1/16 (or standardised) and the model folds it in: on the
    held-out digits exactly as ``load_digits()`` gives them (0 to 16), it scores what nnfs train
    printed (it scored 89% instead of 98% when the model expected pixels divided by 16)."""
    from sklearn.datasets import load_digits

    from nnfs.data import digits, split

    model = tmp_path / "digits.npz"
    extra = [] if standardize else ["--no-standardize", "--eta", "0.1"]
    result = run_nnfs("train", "--quiet", "--save", str(model), *extra)
    assert result.returncode == 0, result.stderr
    printed = accuracy_of(result.stdout)
    _, test = split(digits(), 0.2, 0)  # the command's own split: seed 0
    X, y = load_digits(return_X_y=True)
    rows = [int(np.flatnonzero((row == X).all(axis=1) & (y == label))[0])
            for row, label in zip(test.X, test.y, strict=True)]
    with nnfs.load(model, nnfs.backend("cpu")) as network:
        predicted = nnfs.predict(network, X[rows]).argmax(axis=1)
    accuracy = float(np.mean(predicted == y[rows]))
    assert accuracy == pytest.approx(printed, abs=0.5 / len(rows))
    assert accuracy >= 0.95


def _regression_csv(path, rows=400, delimiter=",", seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3)) * [1, 10, 0.1] + [0, 50, 3]
    y = 1000 + 300 * X[:, 0] - 2 * (X[:, 1] - 50) ** 2 / 10 + 40 * (X[:, 2] - 3)
    lines = [delimiter.join(["a", "b", "c", "price"])] + [
        delimiter.join(f"{v:.6f}" for v in (*row, target))
        for row, target in zip(X, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return X, y


def test_regression_from_a_column_of_fractions_through_train_and_predict(tmp_path):
    data_file, model = tmp_path / "houses.csv", tmp_path / "houses.safetensors"
    _, y = _regression_csv(data_file, delimiter=";")
    result = run_nnfs("train", "--data", str(data_file), "--delimiter", ";", "--layers",
                      "32:tanh,1:linear", "--epochs", "60", "--eta", "0.05", "--save",
                      str(model))
    assert result.returncode == 0, result.stderr
    assert "regression targets from" in result.stdout and "test rmse" in result.stdout
    found = re.search(r"test rmse: ([\d.e+-]+), mae: ([\d.e+-]+), r2: ([\d.-]+) \(80 samples\)",
                      result.stdout)
    assert found, result.stdout
    rmse, mae, r2 = (float(found.group(i)) for i in (1, 2, 3))
    assert r2 > 0.9 and mae <= rmse < 0.3 * y.std()
    predicted = run_nnfs("predict", "--model", str(model), "--data", str(data_file),
                         "--delimiter", ";")
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert lines[0] == "value" and len(lines) == 401
    values = np.array(lines[1:], float)
    written = np.loadtxt(data_file, delimiter=";", skiprows=1)[:, :3]
    with nnfs.load(model, nnfs.backend("cpu")) as network:  # the model takes raw features
        np.testing.assert_allclose(values, nnfs.predict(network, written)[:, 0], rtol=1e-6)
    assert np.corrcoef(values, y)[0, 1] > 0.95  # and gives prices, not scaled ones
    assert re.match(r"rmse: [\d.e+-]+, mae: [\d.e+-]+, r2: 0\.9\d+ \(400 samples\)$",
                    predicted.stderr.strip()), predicted.stderr


def test_regression_asked_for_on_whole_targets(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    y = np.round(100 * X[:, 0] + 500).astype(int)
    (tmp_path / "w.csv").write_text("\n".join(f"{a:.5f},{b:.5f},{t}" for (a, b), t in
                                              zip(X, y, strict=True)))
    result = run_nnfs("train", "--data", str(tmp_path / "w.csv"), "--task", "regression",
                      "--quiet", "--epochs", "30")
    assert result.returncode == 0, result.stderr
    assert float(re.search(r"r2: ([\d.-]+)", result.stdout).group(1)) > 0.9


@pytest.mark.parametrize("arguments, message", [
    (["--layers", "8:tanh,2:softmax"], "regression trains a linear output .* end --layers "
                                       "with 1:linear .* got 2:softmax"),
    (["--layers", "8:tanh,1:sigmoid"], "got 1:sigmoid"),
    (["--cost", "cross_entropy"], "--cost cross_entropy is a classifier's"),
])
def test_regression_refuses_what_it_does_not_train_before_training(tmp_path, arguments,
                                                                   message):
    _regression_csv(tmp_path / "r.csv", rows=50)
    result = run_nnfs("train", "--data", str(tmp_path / "r.csv"), "--quiet", *arguments)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert "epoch" not in result.stdout


def _animals(path, rows=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 2))
    names = np.where(X[:, 0] > 0.5, "zebra, striped", np.where(X[:, 1] > 0, "cat", "émeu"))
    path.write_text("x,y,animal\n" + "".join(f"{a:.5f},{b:.5f},\"{n}\"\n" for (a, b), n in
                                              zip(X, names, strict=True)), encoding="utf-8")
    return X, names


def test_text_labels_are_trained_kept_in_the_model_and_printed_by_predict(tmp_path):
    data_file, model = tmp_path / "animals.csv", tmp_path / "animals.npz"
    _, names = _animals(data_file)
    result = run_nnfs("train", "--data", str(data_file), "--layers", "16:tanh,3:softmax",
                      "--epochs", "30", "--eta", "0.2", "--save", str(model), "--report",
                      "--quiet")
    assert result.returncode == 0, result.stderr
    assert accuracy_of(result.stdout) > 0.9
    table = result.stdout.split("confusion matrix", 1)[1].splitlines()
    # the classes in sorted order, a row each (and a column each, named as far as it fits)
    assert [row[:14].strip() for row in table[2:5]] == ["cat", "zebra, striped", "émeu"]
    assert table[1].split()[0] == "cat" and table[1].split()[-1] == "émeu"
    from nnfs.io import inspect_model

    assert inspect_model(model).classes == ("cat", "zebra, striped", "émeu")
    predicted = run_nnfs("predict", "--model", str(model), "--data", str(data_file))
    assert predicted.returncode == 0, predicted.stderr
    import csv

    rows = list(csv.reader(predicted.stdout.splitlines()))
    assert rows[0] == ["label"] and {row[0] for row in rows[1:]} <= set(names)
    assert np.mean([row[0] for row in rows[1:]] == names) > 0.9
    assert float(re.search(r"accuracy: ([\d.]+)%", predicted.stderr).group(1)) > 90
    probabilities = run_nnfs("predict", "--model", str(model), "--data", str(data_file),
                             "--probabilities")
    header = next(csv.reader(probabilities.stdout.splitlines()))
    assert header == ["label", "cat", "zebra, striped", "émeu"]


def test_text_labels_must_have_an_output_each(tmp_path):
    _animals(tmp_path / "a.csv", rows=40)
    result = run_nnfs("train", "--data", str(tmp_path / "a.csv"), "--layers", "8:tanh,5:softmax",
                      "--quiet", "--epochs", "1")
    assert result.returncode == 1
    assert "has 3 classes named by text ('cat', 'zebra, striped', 'émeu'), one output each; " \
        "end --layers with 3:softmax" in result.stderr


def test_the_report_holds_the_confusion_matrix_precision_and_recall():
    result = run_nnfs("train", "--quiet", "--epochs", "5", "--report")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    matrix = np.array([line.split()[1:] for line in lines[start + 2:start + 12]], int)
    right = int(re.search(r"\((\d+) of (\d+)\)", lines[0]).group(1))
    assert np.trace(matrix) == right and matrix.sum() == 359
    per_class = [line.split() for line in lines[start + 13:start + 23]]
    recall = [float(row[2]) for row in per_class]
    np.testing.assert_allclose(recall, np.diag(matrix) / matrix.sum(axis=1), atol=5e-5)
    precision = [float(row[1]) for row in per_class]
    np.testing.assert_allclose(precision, np.diag(matrix) / matrix.sum(axis=0), atol=5e-5)


# --- divergence and folding never lose or spoil the training (issue #16) ------------------------

def _large(path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)) * 1e3
    labels = (X[:, 0] > 0).astype(int)
    path.write_text("a,b,c,label\n" + "".join(f"{a:.4f},{b:.4f},{c:.4f},{k}\n" for (a, b, c), k
                                              in zip(X, labels, strict=True)))
    return path


DIVERGING = ("--layers", "8:relu,2:linear", "--cost", "quadratic", "--no-standardize",
             "--batch-size", "32", "--eta", "1:1e-9,1:1e35")


def test_a_run_whose_last_update_diverges_exits_1_and_keeps_the_last_good_checkpoint(tmp_path):
    """Epoch 2's one update leaves weights that are not finite: the checkpoint of epoch 2 is
    not written over epoch 1's (it used to be, and the file could not be loaded), and the run
    exits 1 with one line saying so."""
    model = tmp_path / "m.npz"
    result = run_nnfs("train", "--data", str(_large(tmp_path / "large.csv")), *DIVERGING,
                      "--save", str(model), "--checkpoint-every", "1", "--quiet")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "training diverged in epoch 2" in result.stderr
    assert f"({model} holds the checkpoint of epoch 1)" in result.stderr
    with nnfs.load(model, nnfs.backend("cpu")) as network:
        assert np.isfinite(nnfs.transfer(network.parameters)).all()
    result = run_nnfs("train", "--data", str(tmp_path / "large.csv"), *DIVERGING, "--save",
                      str(tmp_path / "other.npz"), "--quiet")
    assert result.returncode == 1 and "(nothing was saved)" in result.stderr
    assert not (tmp_path / "other.npz").exists()


def test_folding_that_would_overflow_keeps_the_trained_layers_behind_a_scaling_layer(
        tmp_path, monkeypatch, capsys):
    """A feature of spread 0.01 and first-layer weights grown to 1e37: W/σ overflows float32.
    The model saved is the trained network, unchanged, behind a layer that standardises: it
    loads, and on raw features predicts what the network predicted on standardised ones (the
    folded weights used to be written as inf, into a file nnfs.load refused)."""
    from nnfs import data
    from nnfs.cli import main

    fit_module = sys.modules["nnfs.fit"]
    real_fit = fit_module.fit
    seen = {}

    def fit_then_grow(network, X, Y, **options):
        history = real_fit(network, X, Y, **options)
        weights = nnfs.transfer(network.layers[0].weights).copy()
        weights[:, 0] = 1e37  # finite in float32, but not once divided by 0.01
        nnfs.transfer(weights, network.layers[0].weights)
        seen["outputs"] = nnfs.predict(network, options["validation"][0])
        return history

    monkeypatch.setattr(fit_module, "fit", fit_then_grow)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3)) * [0.01, 1, 1] + [5, 0, 0]
    labels = (X[:, 1] > 0).astype(int)
    path = tmp_path / "small.csv"
    path.write_text("".join(f"{a:.17g},{b:.17g},{c:.17g},{k}\n"
                            for (a, b, c), k in zip(X, labels, strict=True)))
    model = tmp_path / "m.npz"
    status = main(["train", "--data", str(path), "--layers", "8:tanh,2:softmax", "--epochs",
                   "2", "--quiet", "--save", str(model)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "folding the features' scaling into the first layer would overflow float32" in \
        captured.err and "3 → 3 linear" in captured.err
    _, test = data.split(data.read(path), 0.2, 0)
    with nnfs.load(model, nnfs.backend("cpu")) as network:
        assert [layer.out_dim for layer in network.layers] == [3, 8, 2]
        assert np.isfinite(nnfs.transfer(network.parameters)).all()
        np.testing.assert_allclose(nnfs.predict(network, test.X), seen["outputs"], atol=1e-5)
    assert f"{accuracy_of(captured.out):.4f}" == \
        f"{np.mean(seen['outputs'].argmax(axis=1) == test.y):.4f}"


def test_a_feature_no_float32_model_can_read_is_refused_before_training(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2)) * [0.01, 1] + [1e9, 0]
    (tmp_path / "t.csv").write_text("when,x,label\n" + "".join(
        f"{a:.17g},{b:.17g},{int(b > 0)}\n" for a, b in X))
    result = run_nnfs("train", "--data", str(tmp_path / "t.csv"), "--quiet")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "feature 0 ('when') varies by 0.0" in result.stderr
    assert "float32 cannot tell its values apart" in result.stderr and "--dtype float64" in \
        result.stderr
    result = run_nnfs("train", "--data", str(tmp_path / "t.csv"), "--quiet", "--dtype",
                      "float64", "--epochs", "2")
    assert result.returncode == 0, result.stderr


def test_predict_runs_a_model_in_its_own_dtype(tmp_path):
    from bad_files import model_members, zip_of

    parameters = np.full(26, 1e-3)
    parameters[0] = 1e300  # a float64 number no float32 holds
    (tmp_path / "m.npz").write_bytes(zip_of(model_members(
        dtype=np.array("float64"), parameters=parameters)))
    (tmp_path / "x.csv").write_text("0,0,0\n")
    result = run_nnfs("predict", "--model", str(tmp_path / "m.npz"), "--data",
                      str(tmp_path / "x.csv"))
    assert result.returncode == 0, result.stderr
    result = run_nnfs("predict", "--model", str(tmp_path / "m.npz"), "--data",
                      str(tmp_path / "x.csv"), "--dtype", "float32")
    assert result.returncode == 1 and "too large for float32" in result.stderr
