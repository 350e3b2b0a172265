"""What an optimizer costs per epoch: fit on the ``mid`` network with each optimizer, against
plain SGD, interleaved in one process.

    python benchmarks/optimizer_speed.py [--backend cpu] [--dtype float32] [--rounds 7]
        [--epochs 4] [--samples 4096] [--batch-size 64] [--optimizers sgd,adam,...]

The network is ``nnfs bench``'s ``mid`` preset (784 → 256 sigmoid → 64 tanh → 10 sigmoid) on
random data, trained by ``nnfs.fit`` in mini-batches of 64. Each round runs one fit of
``--epochs`` epochs per optimizer, in turn; each epoch is timed from one ``on_epoch`` call to
the next (the first epoch of each fit, which includes the set-up, is left out). The report is
the median epoch of each optimizer and its ratio to plain SGD's median, measured in the same
rounds. The issue's target is an Adam epoch at most 1.1 times a plain-SGD epoch.

``--clock cpu`` times the process's CPU time instead of the wall clock: on a machine shared
with other jobs, what the epoch costs rather than how long it waited for a core (run it with
one thread, ``--threads 1`` and ``MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``, so that spinning
library threads are not counted as work).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import numpy as np

import nnfs
from nnfs import optimizers
from nnfs.bench import PRESETS


def optimizer_named(name: str):
    """The optimizers compared, by name; ``sgd`` is the plain SGD baseline (eta=)."""
    return {
        "sgd": None,
        "momentum": optimizers.SGD(0.05, momentum=0.9),
        "nesterov": optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
        "adam": optimizers.Adam(1e-3),
        "adamw": optimizers.AdamW(1e-3),
    }[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per fit (the first is "
                                                              "not timed)")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optimizers", default="sgd,adam",
                        help="comma-separated, among sgd, momentum, nesterov, adam, adamw")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"])
    parser.add_argument("--threads", type=int, default=None,
                        help="the cpu backend's threads (its option)")
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    names = args.optimizers.split(",")
    if "sgd" not in names:
        names.insert(0, "sgd")
    preset = PRESETS["mid"]
    options = {} if args.threads is None else {"threads": args.threads}
    factory = nnfs.backend(args.backend, args.dtype, **options)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (args.samples, preset.in_dim)).astype(factory.numpy_dtype)
    labels = rng.integers(0, preset.layers[-1][0], args.samples)
    layers = [nnfs.fully_connected(units, kind) for units, kind in preset.layers]
    times: dict[str, list[float]] = {name: [] for name in names}
    allocations: dict[str, int] = {}
    for _ in range(args.rounds):
        for name in names:
            stamps: list[float] = []
            counts: list[int] = []

            def on_epoch(epoch, history, stamps=stamps, counts=counts):
                factory.synchronize()
                stamps.append(clock())
                counts.append(factory.stats().allocations)

            optimizer = optimizer_named(name)
            with nnfs.inference_network(factory, preset.in_dim, layers, seed=0) as network:
                nnfs.fit(network, x, labels, epochs=args.epochs, batch_size=args.batch_size,
                         eta=0.05 if optimizer is None else None, optimizer=optimizer,
                         seed=1, quiet=True, on_epoch=on_epoch)
            times[name] += [b - a for a, b in itertools.pairwise(stamps)]
            allocations[name] = counts[-1] - counts[0]
    baseline = statistics.median(times["sgd"])
    print(f"mid network ({preset.in_dim} → " + " → ".join(f"{u} {k}" for u, k in preset.layers)
          + f"), {args.samples} samples in batches of {args.batch_size}, "
          f"{factory.describe()}")
    print(f"{args.rounds} rounds × {args.epochs - 1} timed epochs per optimizer, interleaved, "
          f"{args.clock} clock")
    for name in names:
        median = statistics.median(times[name])
        print(f"{name:>9}: median epoch {median * 1e3:8.2f} ms  ({median / baseline:5.3f} × "
              f"plain SGD)  allocations during epochs: {allocations[name]}")


if __name__ == "__main__":
    main()
