"""fit against PyTorch itself: every optimizer and option of ``optimizer_parity.CASES``
(momentum, Nesterov, weight decay, Adam, AdamW, step, cosine and plateau schedules) from the
same initial weights on the same batches in float64 ends, after 100 steps, with torch.optim's
weights to 1e-10 relative.

Optional: it needs PyTorch (``pip install torch``), which no nnfs extra brings; without it the
tests skip and say so. CI checks the same cases against a numpy re-implementation of the rules
(``test_optimizer_parity.py``)."""

from __future__ import annotations

import pytest

from optimizer_parity import CASES, relative_difference, run_nnfs, run_numpy, run_torch

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch); "
                                            "test_optimizer_parity.py checks the same rules "
                                            "against numpy")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_fit_ends_with_torch_optims_weights(case):
    theirs = run_torch(case)
    difference = relative_difference(run_nnfs(case), theirs)
    assert difference <= 1e-10, (
        f"{case.name}: after 100 steps the weights differ from torch.optim's by "
        f"{difference:.3g} (relative)")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_numpy_rules_of_ci_are_torchs(case):
    assert relative_difference(run_numpy(case), run_torch(case)) <= 1e-10
