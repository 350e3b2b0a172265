"""The guide's examples of model files and data files (docs/guide/formats.md and
docs/guide/command-line.md, once the README's) run as written (issue #19)."""

from __future__ import annotations

import shlex
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

GUIDE = ROOT / "docs" / "guide"


def guide_block(page: str, heading: str, language: str) -> str:
    """The first ``language`` block after ``heading`` in a page of the user guide."""
    text = (GUIDE / page).read_text(encoding="utf-8")
    assert heading in text, f"{page} has no section {heading!r}"
    section = text.split(heading, 1)[1]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_model_file_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("safetensors", reason="the example writes a safetensors file")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(guide_block("formats.md", "## The model file", "python"), "formats.md", "exec"),
         namespace)
    assert sorted(namespace["tensors"]) == ["layers.0.bias", "layers.0.weight",
                                            "layers.1.bias", "layers.1.weight"]
    assert namespace["tensors"]["layers.0.weight"].shape == (4, 3)
    import nnfs

    assert np.array_equal(nnfs.transfer(namespace["same"].parameters),
                          nnfs.transfer(namespace["network"].parameters))


def _files(directory) -> None:
    """The files the data example names: prices separated by semicolons, and animals."""
    rng = np.random.default_rng(0)
    for name, rows in (("houses.csv", 300), ("new-houses.csv", 20)):
        X = rng.normal(size=(rows, 2)) * [30, 2] + [120, 3]
        price = 1500 * X[:, 0] + 20_000 * X[:, 1] + rng.normal(size=rows) * 1000
        (directory / name).write_text("area;rooms;price\n" + "".join(
            f"{a:.1f};{r:.2f};{p:.2f}\n" for (a, r), p in zip(X, price, strict=True)))
    X = rng.normal(size=(300, 2))
    names = np.where(X[:, 0] > 0.5, "emu", np.where(X[:, 1] > 0, "cat", "dog"))
    (directory / "animals.csv").write_text("x,y,animal\n" + "".join(
        f"{a:.4f},{b:.4f},{n}\n" for (a, b), n in zip(X, names, strict=True)))


def test_the_data_file_example_runs(tmp_path):
    pytest.importorskip("safetensors", reason="the example saves a safetensors file")
    _files(tmp_path)
    outputs = {}
    for line in guide_block("command-line.md", "## Data files, labels and regression",
                                   "sh").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        target = None
        if ">" in words:
            at = words.index(">")
            words, target = words[:at], words[at + 1]
        assert words[0] == "nnfs", line
        result = subprocess.run([sys.executable, "-m", "nnfs", *words[1:]], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (line, result.stderr)
        outputs[words[1] + " " + words[3]] = result.stdout
        if target:
            (tmp_path / target).write_text(result.stdout)
    assert "test rmse" in outputs["train houses.csv"]
    assert float(outputs["train houses.csv"].split("r2: ")[1].split()[0]) > 0.9
    prices = (tmp_path / "prices.csv").read_text().split()
    assert prices[0] == "value" and len(prices) == 21
    assert all(50_000 < float(price) < 400_000 for price in prices[1:])
    report = outputs["train animals.csv"]
    assert "confusion matrix" in report and report.count("cat") >= 2
