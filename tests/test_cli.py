"""The nnfs command: backends, demo, and errors as one line on stderr."""

from __future__ import annotations

import json

from conftest import run_nnfs


def test_backends_table():
    result = run_nnfs("backends")
    assert result.returncode == 0, result.stderr
    header, _rule, *rows = result.stdout.splitlines()
    for column in ("name", "distribution", "version", "available", "devices", "dtypes", "reason"):
        assert column in header
    cpu = next(row for row in rows if row.startswith("cpu "))
    assert "nnfs-cpu" in cpu and "yes" in cpu and "float32,float64" in cpu


def test_backends_json():
    result = run_nnfs("backends", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    cpu = next(b for b in data["backends"] if b["name"] == "cpu")
    assert cpu["available"] is True and cpu["dtypes"] == ["float32", "float64"]
    assert isinstance(data["warnings"], list)


def test_demo_prints_the_article_figures():
    result = run_nnfs("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "untrained output: [0.4352" in out
    assert "cost after sgd of    1 epochs at eta 0.05: 0.0020987" in out
    assert "trained output:   [0.49999" in out or "trained output:   [0.5" in out
    assert "input unchanged:  True" in out


def test_demo_float64():
    result = run_nnfs("demo", "--dtype", "float64")
    assert result.returncode == 0 and "cpu float64" in result.stdout


def test_errors_are_one_line_and_no_traceback():
    result = run_nnfs("demo", "--backend", "nosuch")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "nnfs demo: error: the backend name 'nosuch' names no installed")


def test_environment_backend_error_names_the_variable():
    result = run_nnfs("demo", env={"NNFS_BACKEND": "nosuch"})
    assert result.returncode == 1 and "NNFS_BACKEND='nosuch'" in result.stderr


def test_no_command_prints_help():
    result = run_nnfs()
    assert result.returncode == 2 and "backends" in result.stdout and "demo" in result.stdout


def test_bench_reports_time_floor_and_what_ran_it():
    """nnfs bench: the epoch against its GEMM floor, no allocation while timed, and the
    factory's own description (which BLAS multiplied); figures are printed, never judged."""
    result = run_nnfs("bench", "tiny", "--epochs", "50", "--repeats", "2", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["preset"] == "tiny" and figures["backend"] == "cpu"
    assert figures["seconds_per_epoch"] > 0 and figures["floor_seconds_per_epoch"] > 0
    assert figures["allocations_during_timing"] == 0
    assert figures["factory"].startswith("cpu float32 (numpy ")
    text = run_nnfs("bench", "tiny", "--epochs", "50", "--repeats", "2", "--dtype", "float64")
    assert text.returncode == 0, text.stderr
    assert "\n  on cpu float64 (numpy " in text.stdout
    assert "ratio to floor:" in text.stdout
    assert "allocations during the timed epochs: 0" in text.stdout
