"""Where one epoch of an `nnfs bench` preset goes, operation by operation, on the CPU backend.

    python benchmarks/epoch_profile.py mid [--dtype float64] [--epochs 300] [--option vml=False]
    python benchmarks/epoch_profile.py fit [--batch-size 64] [--option blas=numpy] [--steps]

Runs the preset's training epoch as ``sgd`` does (forward, cost, output δ, backward with the
updates) and times each prepared step; then the GEMM floor's products the same way, in the
same process. Prints the median epoch, the floor, and the difference split into products,
vector products (the bias gradients), elementwise passes and the cost; ``--steps`` lists every
step. Timing each step costs about 0.1 µs, so the split is close but not exact.

For the ``fit`` preset, an "epoch" is one step of one mini-batch, as fit runs it: the batch's
rows of a shuffled 60,000-sample data set written to the device (``write_rows``), its labels
as one-hot columns (rows of an identity matrix, the same way), then the training step.
"""

from __future__ import annotations

import argparse
import ast
import functools
import statistics
import time

import numpy as np

import nnfs
from nnfs import bench
from nnfs.bench import PRESETS


def step_name(step) -> str:
    function = step.func if isinstance(step, functools.partial) else step
    return getattr(function, "__name__", type(function).__name__)


def kind_of(step) -> str:
    name = step_name(step)
    for kind in ("gemm", "gemv"):
        if kind in name:
            return kind
    if name.startswith("write_rows"):
        return "moving the batch"
    return "cost" if name in ("<lambda>", "total") else "elementwise"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=list(PRESETS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--option", action="append", default=[],
                        help="a CPU backend option, NAME=VALUE (a Python literal)")
    parser.add_argument("--steps", action="store_true", help="list every step's median")
    parser.add_argument("--batch-size", type=int, default=None, help="the fit preset's batch")
    args = parser.parse_args()
    options = {}
    for option in args.option:
        name, _, value = option.partition("=")
        try:
            options[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):  # a bare word: the string itself (blas=numpy)
            options[name] = value

    preset = bench.preset(args.preset, args.batch_size)
    factory = nnfs.backend("cpu", args.dtype, **options)
    if preset.minibatch:
        profile_batch(factory, preset, args)
        return
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
        step_times, epochs, floors = time_steps(steps, training.products(), args.epochs)

    print_profile(f"{args.preset} {args.dtype} on {factory.describe()}", steps, step_times,
                  epochs, floors, args.steps)


def time_steps(steps: list, products: list, rounds: int) -> tuple[list, list, list]:
    """Each step's times, each round's total, and the floor's (the products alone) after each
    round, in nanoseconds, over ``rounds`` rounds."""
    clock = time.perf_counter_ns
    step_times: list[list[int]] = [[] for _ in steps]
    epochs, floors = [], []
    for _ in range(rounds):
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
    return step_times, epochs, floors


def print_profile(title: str, steps: list, step_times: list, epochs: list, floors: list,
                  every: bool) -> None:
    def median_us(values) -> float:
        return statistics.median(values) / 1e3

    epoch, floor = median_us(epochs), median_us(floors)
    shares: dict[str, float] = {}
    for step, times in zip(steps, step_times, strict=True):
        shares[kind_of(step)] = shares.get(kind_of(step), 0.0) + median_us(times)
    print(title)
    print(f"  epoch {epoch:.1f} µs, GEMM floor {floor:.1f} µs, ratio {epoch / floor:.3f}")
    print("  steps: " + ", ".join(f"{kind} {value:.1f} µs" for kind, value in shares.items()))
    if every:
        for step, times in zip(steps, step_times, strict=True):
            print(f"  {median_us(times):10.1f} µs  {step_name(step)}")


def profile_batch(factory, preset, args) -> None:
    """One mini-batch of fit, step by step: moving the batch, then the training step."""
    x, labels = bench.make_data(preset, factory.numpy_dtype)
    batch, out_dim = preset.batch, preset.layers[-1][0]
    backend = factory.backend
    identity = np.eye(out_dim, dtype=factory.numpy_dtype)
    staging_x = np.empty((batch, preset.in_dim), factory.numpy_dtype)
    staging_y = np.empty((batch, out_dim), factory.numpy_dtype)
    chosen = np.empty(batch, np.int64)
    order = np.random.default_rng(0).permutation(preset.samples)
    with factory.matrix(preset.in_dim, batch) as xd, factory.matrix(out_dim, batch) as yd, \
            bench.network(factory, preset) as network, \
            nnfs.training_network(network, xd) as training:
        step = training.step(yd, nnfs.cross_entropy_cost, -bench.FIT_ETA / batch)
        state = {"start": 0}

        def move() -> None:  # fit's _Batches.load, for a shuffled batch of labels
            start = state["start"]
            state["start"] = (start + batch) % (preset.samples - batch)
            index = order[start:start + batch]
            backend.write_rows(x, index, xd, staging_x)
            labels.take(index, out=chosen, mode="wrap")
            backend.write_rows(identity, chosen, yd, staging_y)

        move.__name__ = "write_rows (batch and labels)"
        steps = [move, *step.forward, step.cost, *step.gradient, *step.update]
        step_times, epochs, floors = time_steps(steps, training.products(), args.epochs)
    print_profile(f"fit, one batch of {batch}, {args.dtype} on {factory.describe()}", steps,
                  step_times, epochs, floors, args.steps)


if __name__ == "__main__":
    main()
