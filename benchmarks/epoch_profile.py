"""Where one epoch of an `nnfs bench` preset goes, operation by operation, on the CPU backend.

    python benchmarks/epoch_profile.py mid [--dtype float64] [--epochs 300] [--option vml=False]

Runs the preset's training epoch as ``sgd`` does (forward, cost, output δ, backward with the
updates) and times each prepared step; then the GEMM floor's products the same way, in the
same process. Prints the median epoch, the floor, and the difference split into products,
vector products (the bias gradients), elementwise passes and the cost; ``--steps`` lists every
step. Timing each step costs about 0.1 µs, so the split is close but not exact.
"""

from __future__ import annotations

import argparse
import ast
import functools
import statistics
import time

import numpy as np

import nnfs
from nnfs.bench import PRESETS


def step_name(step) -> str:
    function = step.func if isinstance(step, functools.partial) else step
    return getattr(function, "__name__", type(function).__name__)


def kind_of(step) -> str:
    name = step_name(step)
    for kind in ("gemm", "gemv"):
        if kind in name:
            return kind
    return "cost" if name == "<lambda>" else "elementwise"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=list(PRESETS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--option", action="append", default=[],
                        help="a CPU backend option, NAME=VALUE (a Python literal)")
    parser.add_argument("--steps", action="store_true", help="list every step's median")
    args = parser.parse_args()
    options = {}
    for option in args.option:
        name, _, value = option.partition("=")
        options[name] = ast.literal_eval(value)

    preset = PRESETS[args.preset]
    factory = nnfs.backend("cpu", args.dtype, **options)
    rng = np.random.default_rng(0)
    layers = [nnfs.fully_connected(units, kind) for units, kind in preset.layers]
    with factory.matrix(preset.in_dim, preset.batch,
                        rng.uniform(0, 1, (preset.in_dim, preset.batch))) as x, \
            factory.matrix(preset.layers[-1][0], preset.batch) as y, \
            nnfs.inference_network(factory, preset.in_dim, layers, seed=0) as network, \
            nnfs.training_network(network, x) as training:
        factory.fill(y, 0.33)
        nnfs.sgd(training, y, nnfs.quadratic_cost, 1, 0.05)
        cost = nnfs.quadratic_cost
        step = training.step(y, cost, -0.05 / preset.batch)
        steps = [*step.forward, step.cost, *step.gradient, *step.update]
        products = training.products()
        clock = time.perf_counter_ns
        step_times = [[] for _ in steps]
        epochs, floors = [], []
        for _ in range(args.epochs):
            begin = clock()
            for i, step in enumerate(steps):
                start = clock()
                step()
                step_times[i].append(clock() - start)
            epochs.append(clock() - begin)
            begin = clock()
            for product in products:
                product()
            floors.append(clock() - begin)

    def median_us(values) -> float:
        return statistics.median(values) / 1e3

    epoch, floor = median_us(epochs), median_us(floors)
    shares: dict[str, float] = {}
    for step, times in zip(steps, step_times, strict=True):
        shares[kind_of(step)] = shares.get(kind_of(step), 0.0) + median_us(times)
    print(f"{args.preset} {args.dtype} on {factory.describe()}")
    print(f"  epoch {epoch:.1f} µs, GEMM floor {floor:.1f} µs, ratio {epoch / floor:.3f}")
    print("  steps: " + ", ".join(f"{kind} {value:.1f} µs" for kind, value in shares.items()))
    if args.steps:
        for step, times in zip(steps, step_times, strict=True):
            print(f"  {median_us(times):10.1f} µs  {step_name(step)}")


if __name__ == "__main__":
    main()
