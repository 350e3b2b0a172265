"""The kit's checks of optimizers and dropout can fail: the reference backend with one flaw in
its optimizer step or its dropout masks is caught by the check that looks there, and passes the
others."""

from __future__ import annotations

import numpy as np
import pytest

import nnfs
from nnfs.kinds import Hyper
from nnfs.testing import CHECKS, run_check

# the flawed backends below are made from the reference backend
pytest.importorskip("nnfs_reference", reason="the reference backend is not installed")
from nnfs_reference import ReferenceBackend
from nnfs_reference.backend import OPTIMIZERS, _dropout_mask, _optimizer_step

TRAINING_CHECKS = {"optimizer_steps", "dropout_masks", "gradients_with_dropout",
                   "optimizers_agree_with_cpu"}


class NoBiasCorrection(ReferenceBackend):
    """Adam's step at η instead of η/(1 − β₁ᵗ), as if t were large."""

    def optimizer_step(self, kind, parameters, gradient, state, decay, hyper):
        plan = super().optimizer_step(kind, parameters, gradient, state, decay, hyper)
        if kind not in ("adam", "adamw"):
            return plan

        def run():
            saved = hyper[Hyper.STEP_SIZE]
            hyper[Hyper.STEP_SIZE] = hyper[Hyper.ETA]
            plan()
            hyper[Hyper.STEP_SIZE] = saved

        return run


class NumbersBoundWhenMade(ReferenceBackend):
    """The step's numbers copied when the plan is made: a schedule would never reach it."""

    def optimizer_step(self, kind, parameters, gradient, state, decay, hyper):
        return super().optimizer_step(kind, parameters, gradient, state, decay, hyper.copy())


class DecayOnBiases(ReferenceBackend):
    """Weight decay on every parameter, as PyTorch does when given them all."""

    def optimizer_step(self, kind, parameters, gradient, state, decay, hyper):
        if decay is None:
            return super().optimizer_step(kind, parameters, gradient, state, decay, hyper)
        rule, in_gradient = OPTIMIZERS[kind]
        everywhere = np.ones(parameters.size, self.numpy_dtype)
        return lambda: _optimizer_step(rule, in_gradient, parameters.handle, gradient.handle,
                                       [v.handle for v in state], everywhere, hyper)


class KeyTheOtherWayRound(ReferenceBackend):
    """Philox keyed by (layer, seed) instead of (seed, layer)."""

    def dropout_mask(self, mask, rate, seed, layer, counter):
        return lambda: _dropout_mask(mask.handle, rate, layer, seed, counter)


class CounterReadWhenMade(ReferenceBackend):
    """The step of the mask read when the plan is made: the same mask at every step."""

    def dropout_mask(self, mask, rate, seed, layer, counter):
        return super().dropout_mask(mask, rate, seed, layer, counter.copy())


class AllocatesEveryStep(ReferenceBackend):
    """Scratch for each optimizer step, allocated as the step runs."""

    def optimizer_step(self, kind, parameters, gradient, state, decay, hyper):
        plan = super().optimizer_step(kind, parameters, gradient, state, decay, hyper)

        def run():
            self.memory.allocated(parameters.size * self.itemsize)
            plan()

        return run


@pytest.mark.parametrize("backend, failing", [
    (NoBiasCorrection, {"optimizer_steps", "optimizers_agree_with_cpu"}),
    (NumbersBoundWhenMade, {"optimizer_steps", "optimizers_agree_with_cpu"}),
    (DecayOnBiases, {"optimizer_steps", "optimizers_agree_with_cpu"}),
    (KeyTheOtherWayRound, {"dropout_masks", "gradients_with_dropout",
                           "optimizers_agree_with_cpu"}),
    (CounterReadWhenMade, {"dropout_masks", "gradients_with_dropout",
                           "optimizers_agree_with_cpu"}),
    (AllocatesEveryStep, {"optimizers_agree_with_cpu"}),
], ids=lambda value: value.__name__ if isinstance(value, type) else "")
def test_the_kit_catches_each_flaw(backend, failing):
    factory = nnfs.Factory(backend())
    try:
        outcomes = {check.name: run_check(check, factory) for check in CHECKS
                    if check.name in TRAINING_CHECKS}
    finally:
        factory.release()
    failed = {name for name, result in outcomes.items() if result.outcome in ("fail", "error")}
    assert failed == failing, {name: result.message for name, result in outcomes.items()}


def test_the_unflawed_reference_backend_passes():
    factory = nnfs.Factory(ReferenceBackend())
    try:
        for check in CHECKS:
            if check.name in TRAINING_CHECKS:
                result = run_check(check, factory)
                assert result.outcome == "pass", (check.name, result.message)
    finally:
        factory.release()
