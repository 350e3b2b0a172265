"""The article's micro benchmark in nnfs and in hand-written peers, side by side, one process.

    python benchmarks/peers.py [scaled|mid|tiny|article] [--dtype float32] [--repeats 5]

Peers, all starting from the same weights, inputs and targets as nnfs:

* numpy — written by hand with preallocated arrays and ``out=`` everywhere;
* PyTorch, manual — the same algorithm with torch tensors, ``out=`` and in-place operations
  (``addmm`` adds the bias in the product, ``sub_(alpha=)`` is the update);
* PyTorch, autograd — ``nn.Linear`` layers, ``backward()`` and ``torch.optim.SGD``.

PyTorch is optional (``pip install torch==2.13.0`` takes a local CPU build on these machines).
Each one's time per epoch is the median of the repeats, and each must end at the same cost as
nnfs to float32 tolerance. nnfs's GEMM floor (its epoch's matrix products alone, on its own
buffers) is measured in the same run.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

import nnfs
from nnfs.bench import PRESETS, Preset

ETA = 0.05


def medians_per_epoch(runs: dict, repeats: int, epochs: int) -> dict[str, float]:
    """Time every run ``repeats`` times, taking turns (A B C A B C...), so that a machine that
    speeds up or slows down affects them all alike; the median per epoch of each."""
    for run in runs.values():
        run(1)  # warm up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(epochs)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) / epochs for name, values in times.items()}


class NumpyPeer:
    """By hand in numpy, as the article writes it: W is out × in, activations are
    features × samples, every array preallocated, every operation with ``out=``."""

    name = "numpy, by hand"

    def __init__(self, preset: Preset, weights, biases, x, y, dtype):
        self.kinds = [kind for _, kind in preset.layers]
        self.W = [w.astype(dtype) for w in weights]
        self.b = [b.astype(dtype)[:, None] for b in biases]
        self.x, self.y = x.astype(dtype), y.astype(dtype)
        n = x.shape[1]
        self.a = [np.empty((w.shape[0], n), dtype) for w in self.W]
        self.d = [np.empty((w.shape[0], n), dtype) for w in self.W]
        self.gW = [np.empty_like(w) for w in self.W]
        self.gb = [np.empty_like(b) for b in self.b]
        self.n = n
        self.cost = math.nan

    def epochs(self, count: int) -> None:
        W, b, a, d, gW, gb, kinds = self.W, self.b, self.a, self.d, self.gW, self.gb, self.kinds
        last = len(W) - 1
        step = ETA / self.n
        for _ in range(count):
            for i in range(len(W)):  # forward: a = f(W·a₋₁ + b)
                np.matmul(W[i], self.x if i == 0 else a[i - 1], out=a[i])
                a[i] += b[i]
                if kinds[i] == "tanh":
                    np.tanh(a[i], out=a[i])
                else:  # 1 / (1 + e^−z)
                    np.negative(a[i], out=a[i])
                    np.exp(a[i], out=a[i])
                    a[i] += 1.0
                    np.reciprocal(a[i], out=a[i])
            np.subtract(a[last], self.y, out=d[last])
            self.cost = float(np.vdot(d[last], d[last])) / (2 * d[last].size)
            for i in range(last, -1, -1):
                # δ = g ⊙ f'(z) through a; a is not needed any more, so it holds f'
                if kinds[i] == "tanh":  # 1 − a²
                    np.multiply(a[i], a[i], out=a[i])
                    np.subtract(1.0, a[i], out=a[i])
                else:  # a (1 − a)
                    np.multiply(d[i], a[i], out=d[i])
                    np.subtract(1.0, a[i], out=a[i])
                np.multiply(d[i], a[i], out=d[i])
                np.matmul(d[i], (self.x if i == 0 else a[i - 1]).T, out=gW[i])
                np.sum(d[i], axis=1, keepdims=True, out=gb[i])
                if i > 0:
                    np.matmul(W[i].T, d[i], out=d[i - 1])
                np.multiply(gW[i], step, out=gW[i])
                np.subtract(W[i], gW[i], out=W[i])
                np.multiply(gb[i], step, out=gb[i])
                np.subtract(b[i], gb[i], out=b[i])


class TorchManualPeer:
    """The same algorithm in PyTorch: preallocated tensors, ``out=`` and in-place operations."""

    name = "PyTorch, manual backward"

    def __init__(self, preset, weights, biases, x, y, dtype):
        import torch

        self.torch = torch
        t = getattr(torch, dtype)
        self.kinds = [kind for _, kind in preset.layers]
        self.W = [torch.tensor(w, dtype=t) for w in weights]
        self.b = [torch.tensor(b, dtype=t)[:, None].contiguous() for b in biases]
        self.x, self.y = torch.tensor(x, dtype=t), torch.tensor(y, dtype=t)
        n = x.shape[1]
        self.a = [torch.empty((w.shape[0], n), dtype=t) for w in self.W]
        self.d = [torch.empty((w.shape[0], n), dtype=t) for w in self.W]
        self.gW = [torch.empty_like(w) for w in self.W]
        self.gb = [torch.empty_like(b) for b in self.b]
        self.n = n
        self.cost = math.nan

    def epochs(self, count: int) -> None:
        torch = self.torch
        W, b, a, d, gW, gb, kinds = self.W, self.b, self.a, self.d, self.gW, self.gb, self.kinds
        last = len(W) - 1
        step = ETA / self.n
        with torch.no_grad():
            for _ in range(count):
                for i in range(len(W)):
                    torch.addmm(b[i], W[i], self.x if i == 0 else a[i - 1], out=a[i])
                    if kinds[i] == "tanh":
                        torch.tanh(a[i], out=a[i])
                    else:
                        torch.sigmoid(a[i], out=a[i])
                torch.sub(a[last], self.y, out=d[last])
                self.cost = float(torch.dot(d[last].view(-1), d[last].view(-1))) / (2 * d[last].numel())
                for i in range(last, -1, -1):
                    if kinds[i] == "tanh":
                        a[i].mul_(a[i]).neg_().add_(1.0)
                    else:
                        d[i].mul_(a[i])
                        a[i].neg_().add_(1.0)
                    d[i].mul_(a[i])
                    torch.mm(d[i], (self.x if i == 0 else a[i - 1]).t(), out=gW[i])
                    torch.sum(d[i], dim=1, keepdim=True, out=gb[i])
                    if i > 0:
                        torch.mm(W[i].t(), d[i], out=d[i - 1])
                    W[i].sub_(gW[i], alpha=step)
                    b[i].sub_(gb[i], alpha=step)


class TorchAutogradPeer:
    """PyTorch as most people write it: nn.Linear, autograd, torch.optim.SGD."""

    name = "PyTorch, autograd + SGD"

    def __init__(self, preset, weights, biases, x, y, dtype):
        import torch

        self.torch = torch
        t = getattr(torch, dtype)
        modules = []
        for (units, kind), w, bias in zip(preset.layers, weights, biases):
            linear = torch.nn.Linear(w.shape[1], units, dtype=t)
            with torch.no_grad():
                linear.weight.copy_(torch.tensor(w))
                linear.bias.copy_(torch.tensor(bias))
            modules += [linear, torch.nn.Tanh() if kind == "tanh" else torch.nn.Sigmoid()]
        self.model = torch.nn.Sequential(*modules)
        self.x = torch.tensor(x.T.copy(), dtype=t)  # samples × features
        self.y = torch.tensor(y.T.copy(), dtype=t)
        self.n = x.shape[1]
        # the article's step −(η/n)·Σ ∂(½‖a − y‖²)/∂p is SGD(lr=η) on the loss ½‖a − y‖² / n
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=ETA)
        self.cost = math.nan

    def epochs(self, count: int) -> None:
        for _ in range(count):
            self.optimizer.zero_grad(set_to_none=False)
            out = self.model(self.x)
            squared = ((out - self.y) ** 2).sum()
            (0.5 * squared / self.n).backward()
            self.optimizer.step()
            self.cost = float(squared.detach()) / (2 * out.numel())


class NnfsRun:
    name = "nnfs"

    def __init__(self, factory, preset, weights, biases, x, y):
        self.factory = factory
        layers = [nnfs.fully_connected(units, kind) for units, kind in preset.layers]
        self.x = factory.matrix(*x.shape, x)
        self.y = factory.matrix(*y.shape, y)
        self.network = nnfs.inference_network(factory, preset.in_dim, layers)
        for layer, w, bias in zip(self.network.layers, weights, biases):
            nnfs.transfer(w, layer.weights)
            nnfs.transfer(bias, layer.bias)
        self.training = nnfs.training_network(self.network, self.x)
        self.cost = math.nan
        self.gemms = self.training.products()

    def epochs(self, count: int) -> None:
        self.cost = nnfs.sgd(self.training, self.y, nnfs.quadratic_cost, count, ETA)
        self.factory.synchronize()

    def floor(self, count: int) -> None:
        for _ in range(count):
            for op in self.gemms:
                op()
        self.factory.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="scaled", choices=list(PRESETS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--blas", choices=("auto", "mkl", "numpy"), default=None,
                        help="the cpu backend's BLAS (default: its own choice, MKL if installed)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    epochs = args.epochs or preset.epochs
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (preset.in_dim, preset.batch))
    y = np.full((preset.layers[-1][0], preset.batch), 0.33)
    options = {} if args.blas is None else {"blas": args.blas}
    factory = nnfs.backend(args.backend, args.dtype, **options)
    with nnfs.inference_network(factory, preset.in_dim,
                                [nnfs.fully_connected(u, k) for u, k in preset.layers],
                                seed=0) as initial:
        weights = [nnfs.transfer(layer.weights).astype(np.float64) for layer in initial.layers]
        biases = [nnfs.transfer(layer.bias).astype(np.float64) + 0.01 for layer in initial.layers]
    runs = [NnfsRun(factory, preset, weights, biases, x, y),
            NumpyPeer(preset, weights, biases, x, y, args.dtype)]
    try:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))
        runs += [TorchManualPeer(preset, weights, biases, x, y, args.dtype),
                 TorchAutogradPeer(preset, weights, biases, x, y, args.dtype)]
        torch_note = f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        torch_note = "PyTorch not installed: pip install torch==2.13.0 to compare with it"
    print(f"{args.preset} ({preset.in_dim}×{preset.batch}, "
          + ", ".join(f"{u} {k}" for u, k in preset.layers)
          + f"), {args.dtype}, {epochs} epochs × {args.repeats} repeats; {torch_note}")
    print(f"nnfs: {factory.describe()}")
    timed = {"floor": runs[0].floor, **{run.name: run.epochs for run in runs}}
    seconds = medians_per_epoch(timed, args.repeats, epochs)
    floor, ours = seconds["floor"], seconds["nnfs"]
    unit, scale = ("ms", 1e3) if floor > 1e-3 else ("µs", 1e6)
    print(f"{'':26} {unit + '/epoch':>11} {'× floor':>8} {'× nnfs':>7}  final cost")
    print(f"{'GEMM floor (nnfs ' + factory.name + ')':26} {floor * scale:>11.3f} {1:>8.2f} "
          f"{floor / ours:>7.2f}")
    reference_cost = runs[0].cost
    for run in runs:
        same = math.isclose(run.cost, reference_cost, rel_tol=2e-3, abs_tol=1e-7)
        print(f"{run.name:26} {seconds[run.name] * scale:>11.3f} {seconds[run.name] / floor:>8.2f} "
              f"{seconds[run.name] / ours:>7.2f}  {run.cost:.6g}{'' if same else '  (DIFFERS)'}")
        if not same:
            raise SystemExit(f"{run.name} ended at cost {run.cost}, nnfs at {reference_cost}")


if __name__ == "__main__":
    main()
