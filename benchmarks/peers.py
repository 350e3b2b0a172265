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

import numpy as np

import nnfs
from nnfs import bench
from nnfs.bench import FIT_ETA, PRESETS, SGD_ETA, Preset

ETA = SGD_ETA


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
                flat = d[last].view(-1)
                self.cost = float(torch.dot(flat, flat)) / (2 * d[last].numel())
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
        for (units, kind), w, bias in zip(preset.layers, weights, biases, strict=True):
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


# --- the fit preset: mini-batches of a shuffled data set -----------------------------------


def batch_orders(n: int, seed: int):
    """fit's order of the samples, epoch after epoch: one generator of ``seed``, each epoch
    a new shuffle of the order before (as ``nnfs.fit`` does)."""
    rng = np.random.default_rng(seed)
    order = np.arange(n)
    while True:
        rng.shuffle(order)
        yield order


class NumpyFitPeer:
    """fit's workload by hand in numpy, samples in rows as users hold them: ``h = relu(x·W₁ᵀ +
    b₁)``, ``p = softmax(h·W₂ᵀ + b₂)``; every array preallocated, every operation ``out=``."""

    name = "numpy, by hand"

    def __init__(self, preset: Preset, weights, biases, x, labels, seed, dtype):
        self.x, self.labels = x.astype(dtype, copy=False), labels
        self.orders = batch_orders(len(x), seed)
        self.batch = preset.batch
        self.W = [np.ascontiguousarray(w.astype(dtype)) for w in weights]
        self.b = [b.astype(dtype) for b in biases]
        b, (hidden, _), (out, _) = preset.batch, *preset.layers
        self.xb = np.empty((b, preset.in_dim), dtype)
        self.h = np.empty((b, hidden), dtype)
        self.p = np.empty((b, out), dtype)
        self.dh = np.empty((b, hidden), dtype)
        self.mask = np.empty((b, hidden), bool)
        self.gW = [np.empty_like(w) for w in self.W]
        self.gb = [np.empty_like(v) for v in self.b]
        self.column = np.empty((b, 1), dtype)
        self.picked = np.empty(b, dtype)
        self.rows = np.arange(b)
        self.cost = math.nan

    def epochs(self, count: int) -> None:
        W, bias, gW, gb = self.W, self.b, self.gW, self.gb
        n = len(self.x)
        for _ in range(count):
            order = next(self.orders)
            total = 0.0
            for start in range(0, n, self.batch):
                index = order[start:start + self.batch]
                m = len(index)
                xb, h, p, dh = self.xb[:m], self.h[:m], self.p[:m], self.dh[:m]
                column, rows, mask = self.column[:m], self.rows[:m], self.mask[:m]
                np.take(self.x, index, axis=0, out=xb, mode="wrap")
                labels = self.labels[index]
                np.matmul(xb, W[0].T, out=h)  # h = relu(x·W₁ᵀ + b₁)
                np.add(h, bias[0], out=h)
                np.maximum(h, 0, out=h)
                np.matmul(h, W[1].T, out=p)  # p = softmax(h·W₂ᵀ + b₂)
                np.add(p, bias[1], out=p)
                np.max(p, axis=1, keepdims=True, out=column)
                np.subtract(p, column, out=p)
                np.exp(p, out=p)
                np.sum(p, axis=1, keepdims=True, out=column)
                np.divide(p, column, out=p)
                picked = self.picked[:m]
                np.copyto(picked, p[rows, labels])
                total -= float(np.log(np.maximum(picked, np.finfo(p.dtype).eps)).sum())
                p[rows, labels] -= 1.0  # ∂ℓ/∂z = p − y, then scaled by −η/m
                np.multiply(p, -FIT_ETA / m, out=p)
                np.matmul(p.T, h, out=gW[1])
                np.sum(p, axis=0, out=gb[1])
                np.matmul(p, W[1], out=dh)  # before W₂'s update
                np.greater(h, 0, out=mask)
                np.multiply(dh, mask, out=dh)
                np.matmul(dh.T, xb, out=gW[0])
                np.sum(dh, axis=0, out=gb[0])
                for i in (0, 1):
                    np.add(W[i], gW[i], out=W[i])
                    np.add(bias[i], gb[i], out=bias[i])
            self.cost = total / n


class TorchFitPeer:
    """fit's workload in PyTorch as most people write it: ``nn.Sequential``,
    ``nn.CrossEntropyLoss`` (the mean over the batch) and ``torch.optim.SGD``, each batch
    indexed out of the data tensor."""

    name = "PyTorch eager"

    def __init__(self, preset: Preset, weights, biases, x, labels, seed, dtype):
        import torch

        self.torch = torch
        t = getattr(torch, dtype)
        (hidden, _), (out, _) = preset.layers
        self.model = torch.nn.Sequential(torch.nn.Linear(preset.in_dim, hidden, dtype=t),
                                         torch.nn.ReLU(), torch.nn.Linear(hidden, out, dtype=t))
        with torch.no_grad():
            for linear, w, bias in zip((self.model[0], self.model[2]), weights, biases,
                                       strict=True):
                linear.weight.copy_(torch.tensor(w))
                linear.bias.copy_(torch.tensor(bias))
        self.x = torch.from_numpy(x.astype(dtype, copy=False))
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.loss = torch.nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=FIT_ETA)
        self.orders = batch_orders(len(x), seed)
        self.batch = preset.batch
        self.cost = math.nan

    def epochs(self, count: int) -> None:
        torch, n = self.torch, len(self.x)
        for _ in range(count):
            order = torch.from_numpy(next(self.orders))
            total = 0.0
            for start in range(0, n, self.batch):
                index = order[start:start + self.batch]
                self.optimizer.zero_grad()
                loss = self.loss(self.model(self.x[index]), self.labels[index])
                loss.backward()
                self.optimizer.step()
                total += float(loss) * len(index)
            self.cost = total / n


def initial_parameters(factory, preset: Preset, seed: int = 0, bias: float = 0.0):
    """The weights and biases of the preset's network drawn from ``seed``, as float64 host
    arrays (each bias shifted by ``bias``)."""
    with bench.network(factory, preset, seed) as initial:
        return ([nnfs.transfer(layer.weights).astype(np.float64) for layer in initial.layers],
                [nnfs.transfer(layer.bias).astype(np.float64) + bias for layer in initial.layers])


def load_peers(classes, *arguments) -> tuple[list, str]:
    """numpy's peer, and PyTorch's where it is installed; a note on PyTorch."""
    peers = [classes[0](*arguments)]
    try:
        import torch
    except ImportError:
        return peers, "PyTorch not installed: pip install torch==2.13.0 to compare with it"
    peers += [cls(*arguments) for cls in classes[1:]]
    return peers, f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"


def print_table(times: dict[str, list[float]], costs: dict[str, float], floor_name: str,
                rel_tol: float) -> None:
    """Each run's median and fastest time per epoch, against the floor's and nnfs's."""
    seconds = {name: statistics.median(values) for name, values in times.items()}
    fastest = {name: min(values) for name, values in times.items()}
    floor, ours = seconds["floor"], seconds["nnfs"]
    unit, scale = ("ms", 1e3) if floor > 1e-3 else ("µs", 1e6)
    print(f"{'':26} {unit + '/epoch':>11} {'× floor':>8} {'× nnfs':>7} {'fastest':>9} "
          f"{'× floor':>8} {'× nnfs':>7}  final cost")
    print(f"{floor_name:26} {floor * scale:>11.3f} {1:>8.2f} {floor / ours:>7.2f} "
          f"{fastest['floor'] * scale:>9.3f} {1:>8.2f} {fastest['floor'] / fastest['nnfs']:>7.2f}")
    reference = costs["nnfs"]
    for name, cost in costs.items():
        same = math.isclose(cost, reference, rel_tol=rel_tol, abs_tol=1e-7)
        print(f"{name:26} {seconds[name] * scale:>11.3f} {seconds[name] / floor:>8.2f} "
              f"{seconds[name] / ours:>7.2f} {fastest[name] * scale:>9.3f} "
              f"{fastest[name] / fastest['floor']:>8.2f} {fastest[name] / fastest['nnfs']:>7.2f}"
              f"  {cost:.6g}{'' if same else '  (DIFFERS)'}")
        if not same:
            raise SystemExit(f"{name} ended at cost {cost}, nnfs at {reference}")
    warning = bench.ratio_warning(ours / floor, "nnfs's epoch")
    if warning:
        print(warning)


def main_fit(args, factory, preset: Preset) -> None:
    weights, biases = initial_parameters(factory, preset)
    x, labels = bench.make_data(preset, factory.numpy_dtype)
    epochs = args.epochs or preset.epochs
    peers, torch_note = load_peers((NumpyFitPeer, TorchFitPeer), preset, weights, biases, x,
                                   labels, 0, args.dtype)
    print(f"fit ({preset.describe()}), {args.dtype}, {epochs} epoch{'s' * (epochs > 1)} × "
          f"{args.repeats} repeats; {torch_note}")
    print(f"nnfs: {factory.describe()}")
    with bench.network(factory, preset) as net:
        work = bench.FitWorkload(factory, preset, net, x, labels)
        try:
            runs = {"floor": work.floor, **{peer.name: peer.epochs for peer in peers}}
            times = work.take_turns(runs, args.repeats, epochs)
        finally:
            work.release()
    costs = {"nnfs": work.cost, **{peer.name: peer.cost for peer in peers}}
    print_table(times, costs, f"GEMM floor (nnfs {factory.name})", 1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="scaled", choices=list(PRESETS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--blas", choices=("auto", "mkl", "numpy"), default=None,
                        help="the cpu backend's BLAS (default: its own choice, MKL if installed)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="the fit preset's batch")
    args = parser.parse_args()
    preset = bench.preset(args.preset, args.batch_size)
    options = {} if args.blas is None else {"blas": args.blas}
    factory = nnfs.backend(args.backend, args.dtype, **options)
    if preset.minibatch:
        main_fit(args, factory, preset)
        return
    epochs = args.epochs or preset.epochs
    x, y = bench.make_data(preset, np.float64)
    weights, biases = initial_parameters(factory, preset, bias=0.01)
    peers, torch_note = load_peers((NumpyPeer, TorchManualPeer, TorchAutogradPeer), preset,
                                   weights, biases, x, y, args.dtype)
    print(f"{args.preset} ({preset.describe()}), {args.dtype}, {epochs} epochs × "
          f"{args.repeats} repeats; {torch_note}")
    print(f"nnfs: {factory.describe()}")
    with bench.network(factory, preset) as net:
        for layer, w, b in zip(net.layers, weights, biases, strict=True):
            nnfs.transfer(w, layer.weights)
            nnfs.transfer(b, layer.bias)
        work = bench.SgdWorkload(factory, preset, net, x, y)
        try:
            runs = {"nnfs": work.epochs, "floor": work.floor,
                    **{peer.name: peer.epochs for peer in peers}}
            times = bench.take_turns(runs, args.repeats, epochs, factory.synchronize)
        finally:
            work.release()
    costs = {"nnfs": work.cost, **{peer.name: peer.cost for peer in peers}}
    print_table(times, costs, f"GEMM floor (nnfs {factory.name})", 2e-3)


if __name__ == "__main__":
    main()
