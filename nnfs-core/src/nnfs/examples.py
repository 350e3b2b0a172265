"""The article's example, shared by ``nnfs demo``, the tests and the conformance kit.

The article's network has 2 inputs, a hidden layer of 4 tanh units and one sigmoid output,
hand-set weights, and one batch of two identical samples trained towards 0.5. The article
subtracts its bias as a threshold; nnfs adds it, so the biases here are the article's
thresholds negated, and the untrained output and first cost match the article's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import sigmoid, tanh
from .costs import quadratic_cost
from .factory import Factory, transfer
from .network import fully_connected, inference_network
from .sgd import sgd
from .training import training_network

X = [[0.3, 0.3], [0.9, 0.9]]
Y = [[0.5, 0.5]]
W1 = [[0.3, 0.6], [0.1, 2.0], [0.9, 3.7], [0.0, 1.0]]
B1 = [-0.7, -0.2, -1.1, -2.0]
W2 = [[0.75, 0.15, 0.22, 0.33]]
B2 = [-0.3]
EPOCHS = (1, 20, 200, 2000)
ETA = 0.05
#: What the article prints for the untrained output and the cost of the first call.
UNTRAINED = 0.4352
FIRST_COST = 0.0020987


@dataclass(frozen=True)
class ArticleResult:
    untrained: np.ndarray
    epochs: tuple[int, ...]
    costs: list[float]
    trained: np.ndarray
    input_unchanged: bool


def article_example(factory: Factory, epochs: tuple[int, ...] = EPOCHS) -> ArticleResult:
    """Run the article's example on ``factory``: untrained output, sgd calls of ``epochs``
    epochs at eta 0.05 one after another, trained output, and whether the input survived."""
    with factory.matrix(2, 2, X) as x, factory.matrix(1, 2, Y) as y, \
            inference_network(factory, 2, [fully_connected(4, tanh),
                                           fully_connected(1, sigmoid)]) as inference, \
            training_network(inference, x) as training:
        first, second = inference.layers
        transfer(W1, first.weights)
        transfer(B1, first.bias)
        transfer(W2, second.weights)
        transfer(B2, second.bias)
        with inference(x) as out:
            untrained = transfer(out)
        costs = [sgd(training, y, quadratic_cost, n, ETA) for n in epochs]
        with inference(x) as out:
            trained = transfer(out)
        unchanged = bool(np.array_equal(transfer(x), np.asarray(X, dtype=factory.numpy_dtype)))
    return ArticleResult(untrained, tuple(epochs), costs, trained, unchanged)
