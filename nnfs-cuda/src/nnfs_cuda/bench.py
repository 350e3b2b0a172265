"""The article's benchmark: time sgd on a large network and report the TFLOP/s achieved.

The article trains a network of 10000 inputs and layers of 5000 tanh, 1000 sigmoid and 10
sigmoid units on 10000 samples for 10 epochs: 2.25 s on a GTX 1080 Ti (2017). Nearly all the
work is the matrix products, so the TFLOP/s printed counts those (2·m·n·k per gemm) and leaves
out the element-wise work, which is tiny beside them.

``run(factory, size)`` works on any factory; ``python -m nnfs_cuda`` runs it on the GPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import nnfs


@dataclass(frozen=True)
class Size:
    """A benchmark network: inputs, (units, activation) per layer, samples, epochs."""

    inputs: int
    layers: tuple[tuple[int, str], ...]
    samples: int
    epochs: int

    def __str__(self) -> str:
        layers = ", ".join(f"{units} {kind}" for units, kind in self.layers)
        return (f"input {self.inputs}×{self.samples}, layers {layers}, "
                f"{self.epochs} epochs")


#: The article's benchmark at its full size (about 1.3 GB of device memory in float32).
ARTICLE = Size(10000, ((5000, "tanh"), (1000, "sigmoid"), (10, "sigmoid")), 10000, 10)
#: The article's time for ARTICLE on a GTX 1080 Ti, in seconds.
ARTICLE_SECONDS = 2.25
#: A size that runs in a moment anywhere, to try the command out.
SMALL = Size(1000, ((500, "tanh"), (100, "sigmoid"), (10, "sigmoid")), 1000, 10)


def gemm_flops(size: Size) -> int:
    """Floating-point operations of the matrix products of one epoch of ``size``.

    Per layer of ``units × inputs`` weights over n samples: the forward product W·a and the
    weight gradient δ·aᵀ, 2·units·inputs·n each, and, for every layer but the first, the
    gradient Wᵀ·δ passed down, another 2·units·inputs·n (the first layer never needs it).
    """
    total, width = 0, size.inputs
    for number, (units, _) in enumerate(size.layers):
        products = 2 if number == 0 else 3
        total += products * 2 * units * width * size.samples
        width = units
    return total


@dataclass(frozen=True)
class Result:
    size: Size
    one_epoch_seconds: float
    seconds: float
    cost: float

    @property
    def flops(self) -> int:
        return gemm_flops(self.size) * self.size.epochs

    @property
    def tflops(self) -> float:
        return self.flops / self.seconds / 1e12

    def report(self) -> str:
        lines = [
            f"benchmark: {self.size}",
            f"  1 epoch:  {self.one_epoch_seconds:.3f} s (queued, then waited for)",
            f"  {self.size.epochs} epochs: {self.seconds:.3f} s, {self.tflops:.2f} TFLOP/s in the "
            f"matrix products ({self.flops / 1e12:.2f} TFLOP), last cost {self.cost:.6g}",
        ]
        if self.size == ARTICLE:
            lines.append(f"  the article: {ARTICLE_SECONDS} s on a GTX 1080 Ti "
                         f"({self.flops / ARTICLE_SECONDS / 1e12:.2f} TFLOP/s)")
        return "\n".join(lines)


def run(factory: nnfs.Factory, size: Size = ARTICLE, seed: int = 0) -> Result:
    """Build ``size``'s network on ``factory``, warm it up with one epoch, then time one epoch
    and ``size.epochs`` epochs of sgd (each sgd call waits for its cost at the end)."""
    rng = np.random.default_rng(seed)
    x_host = rng.random((size.inputs, size.samples), dtype=np.float32)
    layers = [nnfs.fully_connected(units, kind) for units, kind in size.layers]
    out_dim = size.layers[-1][0]
    with factory.matrix(size.inputs, size.samples, x_host) as x, \
            factory.matrix(out_dim, size.samples) as y:
        del x_host
        factory.fill(y, 0.33)  # the article's target
        with nnfs.inference_network(factory, size.inputs, layers, seed=seed) as network, \
                nnfs.training_network(network, x) as training:
            nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.05)  # warm-up: kernels, cuBLAS
            start = time.perf_counter()
            nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.05)
            one = time.perf_counter() - start
            start = time.perf_counter()
            cost = nnfs.sgd(training, y, nnfs.quadratic_cost, size.epochs, 0.05)
            seconds = time.perf_counter() - start
    return Result(size, one, seconds, cost)
