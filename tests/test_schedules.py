"""nnfs.schedules: the learning rate of each epoch, for any optimizer, as torch's schedulers
stepped once per epoch give it; checked when made; a schedule that monitors validation figures
needs validation data. (fit with each schedule against torch.optim: test_optimizer_parity.py
and test_torch_parity.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnfs
from nnfs import fully_connected
from nnfs.optimizers import SGD, Adam
from nnfs.schedules import Cosine, Piecewise, ReduceOnPlateau, StepDecay


def make_data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(int)


def rates(schedule, epochs=10, base=0.1, optimizer=None, validation=False):
    X, y = make_data()
    factory = nnfs.backend("cpu", "float64")
    with nnfs.inference_network(factory, 3, [fully_connected(4, "tanh"),
                                             fully_connected(2, "softmax")], seed=0) as net:
        history = nnfs.fit(net, X, y, epochs=epochs, optimizer=optimizer or SGD(base),
                           schedule=schedule, quiet=True,
                           validation=(X, y) if validation else None)
    return history.eta


def test_step_decay_multiplies_every_few_epochs():
    assert rates(StepDecay(every=3, factor=0.5)) == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125], rel=1e-15)


def test_cosine_goes_from_the_base_rate_to_its_floor_over_fits_epochs():
    got = rates(Cosine(eta_min=0.01), epochs=5)
    expected = [0.01 + 0.09 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)]
    assert got == pytest.approx(expected, rel=1e-15)
    assert rates(Cosine(epochs=2), epochs=3, base=0.2)[:2] == pytest.approx([0.2, 0.1])


def test_piecewise_pairs_give_their_own_rates_to_any_optimizer():
    assert rates([(2, 0.01), (1, 0.001)], epochs=3, optimizer=Adam()) == [0.01, 0.01, 0.001]
    assert rates(Piecewise(((1, 0.3), (2, 0.2))), epochs=3) == [0.3, 0.2, 0.2]


def test_reduce_on_plateau_lowers_the_rate_once_the_figure_stops_improving():
    """A threshold no epoch can meet: after patience + 1 epochs without improvement the rate
    falls, then again after as many more, never below min_eta."""
    schedule = ReduceOnPlateau(factor=0.5, patience=1, threshold=0.99, min_eta=0.03,
                               monitor="cost")
    assert rates(schedule, epochs=8) == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.03, 0.03, 0.03])


def test_reduce_on_plateau_keeps_the_rate_while_the_figure_improves():
    assert rates(ReduceOnPlateau(patience=0, threshold=0.0), epochs=4,
                 validation=True) == [0.1] * 4


@pytest.mark.parametrize("make, error, expected", [
    (lambda: StepDecay(every=0), nnfs.NnfsValueError, "StepDecay: every"),
    (lambda: StepDecay(every=2, factor=1.5), nnfs.NnfsValueError, "StepDecay: factor"),
    (lambda: Cosine(epochs=0), nnfs.NnfsValueError, "Cosine: epochs"),
    (lambda: Cosine(eta_min=-1.0), nnfs.NnfsValueError, "Cosine: eta_min"),
    (lambda: ReduceOnPlateau(factor=0.0), nnfs.NnfsValueError, "ReduceOnPlateau: factor"),
    (lambda: ReduceOnPlateau(patience=-1), nnfs.NnfsValueError, "ReduceOnPlateau: patience"),
    (lambda: ReduceOnPlateau(monitor="loss"), nnfs.NnfsValueError, "monitor must be one of"),
    (lambda: Piecewise(()), nnfs.NnfsValueError, "empty"),
    (lambda: Piecewise(((2, -0.1),)), nnfs.NnfsValueError, "positive"),
    (lambda: Piecewise(((2, 0.1, 3),)), nnfs.NnfsTypeError, "(epochs, eta) pair"),
])
def test_bad_schedules_are_refused_when_made(make, error, expected):
    with pytest.raises(error, match=expected.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_a_cosine_floor_above_the_rate_is_refused_before_training():
    with pytest.raises(nnfs.NnfsValueError, match=r"eta_min .* must be below"):
        rates(Cosine(eta_min=0.5), base=0.1)


def test_a_schedule_monitoring_validation_needs_validation_data():
    with pytest.raises(nnfs.NnfsValueError, match="monitors validation_cost, which needs "
                                                  "validation data"):
        rates(ReduceOnPlateau())


def test_pairs_fix_the_epochs():
    with pytest.raises(nnfs.NnfsValueError, match="epochs is 4 but the schedule has 3"):
        rates([(3, 0.1)], epochs=4)
