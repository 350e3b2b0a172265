"""The article's example, with the figures issue #2 asks for, on every backend."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

import nnfs
from nnfs.examples import article_example


def test_article_example(factory):
    result = article_example(factory)
    assert result.untrained.shape == (1, 2)
    assert result.untrained[0, 0] == pytest.approx(0.4352, abs=5e-5)
    assert result.untrained[0, 1] == result.untrained[0, 0]  # both columns
    if factory.dtype == "float32":
        assert result.costs[0] == pytest.approx(0.0020987, rel=2e-5)
    else:
        assert result.costs[0] == pytest.approx(0.0020987, rel=5e-5)
    assert result.costs[1] < result.costs[0]
    assert all(later < earlier for earlier, later in pairwise(result.costs))
    np.testing.assert_allclose(result.trained, [[0.50, 0.50]], atol=5e-4)
    assert result.input_unchanged


def test_article_example_first_cost_float32_exactly(cpu):
    # the float32 figure the article prints, to the digits it prints
    assert f"{article_example(cpu, (1,)).costs[0]:.7f}" == "0.0020987"


def test_cost_is_the_last_forward_pass(cpu64):
    """sgd returns the cost of the last epoch's forward pass, before that epoch's update."""
    from nnfs.examples import B1, B2, W1, W2, X, Y
    from nnfs.testing import reference

    with cpu64.matrix(2, 2, X) as x, cpu64.matrix(1, 2, Y) as y, \
            nnfs.inference_network(cpu64, 2, [nnfs.fully_connected(4, nnfs.tanh),
                                             nnfs.fully_connected(1, nnfs.sigmoid)]) as net, \
            nnfs.training_network(net, x) as training:
        for data, target in zip((W1, B1, W2, B2), (net.layers[0].weights, net.layers[0].bias,
                                                    net.layers[1].weights, net.layers[1].bias),
                                strict=True):
            nnfs.transfer(data, target)
        cost = nnfs.sgd(training, y, nnfs.quadratic_cost, 3, 0.05)
    _, _, expected = reference.train([W1, W2], [B1, B2], ["tanh", "sigmoid"], X, Y, 3, 0.05)
    assert cost == pytest.approx(expected, rel=1e-12)
