"""nnfs train's optimizers, dropout, schedules, early stopping, log and resume: the accuracy
Adam reaches on the digits, each option's effect, a run stopped by Ctrl-C and resumed ending
with the uninterrupted run's model, and every bad option one line on stderr before any work."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import nnfs
from conftest import run_nnfs


def accuracy_of(output: str) -> float:
    found = re.search(r"test accuracy: ([\d.]+)% \((\d+) of (\d+)\) after (\d+) epochs", output)
    assert found, output
    return float(found.group(1)) / 100


def test_adam_reaches_98_percent_on_the_digits_in_20_epochs():
    result = run_nnfs("train", "--optimizer", "adam", "--epochs", "20", "--quiet")
    assert result.returncode == 0, result.stderr
    assert accuracy_of(result.stdout) >= 0.98
    assert "after 20 epochs" in result.stdout


@pytest.mark.parametrize("options", [
    ("--optimizer", "momentum", "--momentum", "0.8"),
    ("--optimizer", "nesterov", "--weight-decay", "1e-4", "--schedule", "cosine"),
    ("--optimizer", "adamw", "--layers", "128:relu:0.1,10:softmax"),
    ("--optimizer", "sgd", "--eta", "0.1", "--dropout", "0.1"),
], ids=["momentum", "nesterov-cosine", "adamw-dropout", "sgd-dropout"])
def test_every_optimizer_trains_the_digits(options):
    result = run_nnfs("train", *options, "--epochs", "8", "--quiet")
    assert result.returncode == 0, result.stderr
    assert accuracy_of(result.stdout) >= 0.9


def test_patience_stops_on_held_out_training_data_and_says_so():
    result = run_nnfs("train", "--optimizer", "adam", "--eta", "0.01", "--epochs", "19",
                      "--patience", "2")  # 19 epochs: a line for each
    assert result.returncode == 0, result.stderr
    epochs = int(re.search(r"after (\d+) epochs", result.stdout).group(1))
    assert epochs < 19
    assert re.search(rf"early stopping: stopped after epoch {epochs}, the weights of epoch \d+",
                     result.stdout)
    assert "held out for validation" in result.stdout
    assert "validation accuracy" in result.stdout  # the epochs' lines watch the held-out part


def test_the_log_is_a_csv_of_each_epochs_figures(tmp_path):
    log = tmp_path / "run.csv"
    result = run_nnfs("train", "--optimizer", "adam", "--epochs", "4", "--schedule", "cosine",
                      "--log", str(log), "--quiet")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(log.open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    assert list(rows[0]) == ["epoch", "cost", "validation_cost", "validation_accuracy", "eta"]
    etas = [float(row["eta"]) for row in rows]
    assert etas[0] == pytest.approx(0.003) and etas == sorted(etas, reverse=True)
    assert all(0.0 < float(row["validation_accuracy"]) <= 1.0 for row in rows)


def test_a_run_stopped_by_ctrl_c_resumes_to_the_model_of_the_uninterrupted_run(tmp_path):
    options = ["--optimizer", "adam", "--epochs", "10", "--layers", "64:relu:0.2,10:softmax",
               "--seed", "3"]
    whole = tmp_path / "whole.npz"
    result = run_nnfs("train", *options, "--save", str(whole), "--quiet")
    assert result.returncode == 0, result.stderr
    model = tmp_path / "run.npz"
    command = [sys.executable, "-m", "nnfs", "train", *options, "--save", str(model),
               "--checkpoint-every", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    for line in process.stdout:  # the epochs' lines, printed after each checkpoint
        if line.startswith("epoch    3/10"):
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out + err
    saved = re.search(r"holds the checkpoint of epoch (\d+)", err)
    assert saved and 3 <= int(saved.group(1)) < 10, err
    resumed = run_nnfs("train", *options, "--save", str(model), "--checkpoint-every", "1",
                       "--resume", str(model), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    cpu = nnfs.backend("cpu")
    with nnfs.load(whole, cpu) as first, nnfs.load(model, cpu) as second:
        np.testing.assert_array_equal(nnfs.transfer(first.parameters),
                                      nnfs.transfer(second.parameters))
        assert [layer.dropout for layer in second.layers] == [0.2, 0.0]
    assert accuracy_of(resumed.stdout) == accuracy_of(result.stdout)


@pytest.mark.parametrize("options, expected", [
    (("--optimizer", "sgd", "--momentum", "0.9"), "--momentum is for --optimizer momentum"),
    (("--optimizer", "momentum", "--momentum", "1.5"), "momentum must be in [0, 1)"),
    (("--optimizer", "adam", "--eta", "-0.1"), "must be positive"),
    (("--optimizer", "adam", "--eta", "nan"), "finite"),
    (("--optimizer", "nesterov", "--weight-decay", "-1"), "weight_decay must be 0 or more"),
    (("--dropout", "1.0"), "dropout must be in [0, 1)"),
    (("--layers", "64:relu:1.5,10:softmax"), "dropout must be in [0, 1)"),
    (("--layers", "64:relu:half,10:softmax"), "must be a number in [0, 1)"),
    (("--layers", "64:relu,10:softmax:0.5"), "output layer"),
    (("--patience", "-1"), "--patience must be 0 or more"),
    (("--patience", "2", "--validation-fraction", "0"), "--validation-fraction"),
    (("--schedule", "cosine", "--eta", "5:0.1,5:0.01"), "give one of them"),
    (("--resume", "missing.npz"), "does not exist"),
])
def test_bad_options_are_one_line_before_any_work(options, expected, tmp_path):
    result = run_nnfs("train", *options, "--epochs", "2", "--save", str(tmp_path / "m.npz"))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnfs train: error:"), result.stderr
    assert expected in lines[0], lines[0]
    assert "test accuracy" not in result.stdout
    assert os.listdir(tmp_path) == [] or os.listdir(tmp_path) == ["missing.npz"]


def test_resuming_with_another_optimizer_is_refused_before_any_work(tmp_path):
    model = tmp_path / "run.npz"
    first = run_nnfs("train", "--optimizer", "adam", "--epochs", "2", "--save", str(model),
                     "--checkpoint-every", "1", "--quiet")
    assert first.returncode == 0, first.stderr
    checkpoint = tmp_path / "checkpoint.npz"
    checkpoint.write_bytes(model.read_bytes())  # the final model is a plain model: use a copy
    result = run_nnfs("train", "--optimizer", "adamw", "--epochs", "4", "--resume",
                      str(checkpoint), "--quiet")
    assert result.returncode == 1
    assert "not a checkpoint" in result.stderr or "the optimizer" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_optimizer_or_schedule_is_refused_by_the_parser():
    for options in (("--optimizer", "rmsprop"), ("--schedule", "linear")):
        result = run_nnfs("train", *options)
        assert result.returncode == 2 and "invalid choice" in result.stderr
