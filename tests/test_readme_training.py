"""The training guide's examples of optimizers, schedules, dropout, early stopping and
checkpoints (docs/guide/training.md, once the README's) run as written, one after the other
in one namespace (the later ones use the earlier ones' data)."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT

GUIDE = ROOT / "docs" / "guide" / "training.md"
HEADINGS = ["## Optimizers and learning-rate schedules", "## Dropout", "## Early stopping",
            "## Checkpoints and resume"]


def example(heading: str) -> str:
    """The first python block after ``heading`` in the training guide."""
    text = GUIDE.read_text(encoding="utf-8")
    assert heading in text, f"{GUIDE.name} has no section {heading!r}"
    block = re.search(r"```python\n(.*?)```", text[text.index(heading):], re.DOTALL)
    assert block, f"no python example after {heading!r}"
    return block.group(1)


def test_the_training_examples_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the checkpoint's example writes run.npz
    namespace: dict = {}
    for heading in HEADINGS[:3]:
        exec(compile(example(heading), f"{GUIDE.name}: {heading}", "exec"), namespace)
    history = namespace["history"]
    assert history.best_epoch is not None and 1 <= history.best_epoch <= history.epochs
    exec(compile(example(HEADINGS[3]), f"{GUIDE.name}: {HEADINGS[3]}", "exec"), namespace)
    assert namespace["history"].epochs == 20 and (tmp_path / "run.npz").exists()
    assert namespace["probabilities"].shape == (100, 2)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2


@pytest.mark.parametrize("heading", HEADINGS)
def test_each_example_is_there(heading):
    assert example(heading).strip()
