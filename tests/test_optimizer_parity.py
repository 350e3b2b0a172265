"""fit with every optimizer and option gives the weights of torch.optim's update rules after
100 steps, to 1e-10 relative in float64: here against a numpy re-implementation of those rules
(``optimizer_parity.run_numpy``), so that the check runs everywhere; ``test_torch_parity.py``
runs the same cases against PyTorch itself where it is installed."""

from __future__ import annotations

import pytest

from optimizer_parity import CASES, STEPS, relative_difference, run_nnfs, run_numpy


def test_the_cases_are_100_steps():
    assert STEPS == 100


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_fit_follows_torch_optims_rules(case):
    difference = relative_difference(run_nnfs(case), run_numpy(case))
    assert difference <= 1e-10, f"{case.name}: weights differ by {difference:.3g} (relative)"


def test_the_rules_differ_from_each_other():
    """The cases would catch a wrong rule: each optimizer ends at weights of its own."""
    results = {case.name: run_numpy(case) for case in CASES}
    names = list(results)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert relative_difference(results[first], results[second]) > 1e-4, (first, second)
