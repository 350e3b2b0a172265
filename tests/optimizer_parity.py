"""The optimizer parity cases, run three ways: by ``nnfs.fit``, by a numpy re-implementation of
``torch.optim``'s update rules written here from PyTorch's documentation, and by PyTorch itself.

Every case trains one small network (6 → 8 tanh → 5 sigmoid → 3 softmax, cross-entropy) in
float64 from the same initial weights on the same batches in the same order (50 samples in
batches of 16, so every epoch ends with a short batch of 2), for 25 epochs: 100 steps. Weight
decay goes to the weights only, as nnfs applies it (PyTorch is given the biases in a parameter
group without decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import nnfs
from nnfs import optimizers, schedules

SIZES = (6, 8, 5, 3)
KINDS = ("tanh", "sigmoid", "softmax")
SAMPLES, BATCH, EPOCHS = 50, 16, 25
STEPS = EPOCHS * -(-SAMPLES // BATCH)


@dataclass(frozen=True)
class Case:
    name: str
    optimizer: optimizers.Optimizer
    schedule: object = None
    #: What the torch scheduler of ``schedule`` is called with, for the torch run.
    torch_schedule: dict = field(default_factory=dict)


CASES = [
    Case("sgd", optimizers.SGD(0.3)),
    Case("sgd-weight-decay", optimizers.SGD(0.3, weight_decay=0.01)),
    Case("momentum", optimizers.SGD(0.1, momentum=0.9)),
    Case("nesterov-weight-decay", optimizers.SGD(0.1, momentum=0.8, nesterov=True,
                                                 weight_decay=0.02)),
    Case("adam", optimizers.Adam(0.01)),
    Case("adam-l2", optimizers.Adam(0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    Case("adamw", optimizers.AdamW(0.01, weight_decay=0.1)),
    Case("adam-step-decay", optimizers.Adam(0.02), schedules.StepDecay(every=7, factor=0.5),
         {"StepLR": {"step_size": 7, "gamma": 0.5}}),
    Case("momentum-cosine", optimizers.SGD(0.2, momentum=0.9), schedules.Cosine(eta_min=0.01),
         {"CosineAnnealingLR": {"T_max": EPOCHS, "eta_min": 0.01}}),
    Case("adamw-plateau", optimizers.AdamW(0.02),
         schedules.ReduceOnPlateau(factor=0.5, patience=1, threshold=0.05, monitor="cost"),
         {"ReduceLROnPlateau": {"factor": 0.5, "patience": 1, "threshold": 0.05}}),
]


def data():
    rng = np.random.default_rng(31)
    x = rng.normal(size=(SAMPLES, SIZES[0]))
    labels = rng.integers(0, SIZES[-1], SAMPLES)
    return x, labels


def batches():
    """Each epoch's batches of sample indices, in order (fit's shuffle=False)."""
    return [np.arange(start, min(start + BATCH, SAMPLES)) for start in range(0, SAMPLES, BATCH)]


def initial_parameters() -> list[tuple[np.ndarray, np.ndarray]]:
    factory = nnfs.backend("cpu", "float64")
    layers = [nnfs.fully_connected(n, kind) for n, kind in zip(SIZES[1:], KINDS, strict=True)]
    with nnfs.inference_network(factory, SIZES[0], layers, seed=8) as network:
        return [(nnfs.transfer(layer.weights), nnfs.transfer(layer.bias))
                for layer in network.layers]


def run_nnfs(case: Case, factory=None) -> list[tuple[np.ndarray, np.ndarray]]:
    factory = factory or nnfs.backend("cpu", "float64")
    x, labels = data()
    layers = [nnfs.fully_connected(n, kind) for n, kind in zip(SIZES[1:], KINDS, strict=True)]
    with nnfs.inference_network(factory, SIZES[0], layers) as network:
        for layer, (w, b) in zip(network.layers, initial_parameters(), strict=True):
            nnfs.transfer(w, layer.weights)
            nnfs.transfer(b, layer.bias)
        nnfs.fit(network, x, labels, optimizer=case.optimizer, schedule=case.schedule,
                 epochs=EPOCHS, batch_size=BATCH, shuffle=False, quiet=True)
        return [(nnfs.transfer(layer.weights), nnfs.transfer(layer.bias))
                for layer in network.layers]


# --- numpy: the network by hand and torch.optim's rules as PyTorch documents them --------------

def _forward(params, x):
    outputs = [x]
    for (w, b), kind in zip(params, KINDS, strict=True):
        s = outputs[-1] @ w.T + b
        if kind == "tanh":
            a = np.tanh(s)
        elif kind == "sigmoid":
            a = 1 / (1 + np.exp(-s))
        else:
            e = np.exp(s - s.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        outputs.append(a)
    return outputs


def _loss_and_gradients(params, x, y):
    """The mean cross-entropy of a batch and its gradients, by backpropagation."""
    outputs = _forward(params, x)
    n = len(x)
    loss = -np.sum(y * np.log(outputs[-1])) / n
    delta = (outputs[-1] - y) / n
    grads = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        grads[i] = (delta.T @ outputs[i], delta.sum(axis=0))
        if i:
            a = outputs[i]
            g = delta @ params[i][0]
            delta = g * (1 - a * a) if KINDS[i - 1] == "tanh" else g * a * (1 - a)
    return loss, grads


class _NumpyOptimizer:
    """torch.optim.SGD / Adam / AdamW (per PyTorch's documented algorithms), on a list of
    (array, weight decay) parameters."""

    def __init__(self, optimizer, params):
        self.o, self.params, self.t = optimizer, params, 0
        self.lr = optimizer.eta
        self.state = [dict() for _ in params]

    def step(self, grads):
        self.t += 1
        o = self.o
        for (p, decay), g, state in zip(self.params, grads, self.state, strict=True):
            if isinstance(o, optimizers.SGD):
                if decay:
                    g = g + decay * p
                if o.momentum:
                    buf = state.get("buf")
                    buf = g.copy() if buf is None else o.momentum * buf + g
                    state["buf"] = buf
                    g = g + o.momentum * buf if o.nesterov else buf
                p -= self.lr * g
                continue
            beta1, beta2 = o.betas
            if isinstance(o, optimizers.AdamW):
                p *= 1 - self.lr * decay
            elif decay:
                g = g + decay * p
            m = state.setdefault("m", np.zeros_like(p))
            v = state.setdefault("v", np.zeros_like(p))
            m += (g - m) * (1 - beta1)
            v *= beta2
            v += (1 - beta2) * g * g
            step_size = self.lr / (1 - beta1 ** self.t)
            denominator = np.sqrt(v) / math.sqrt(1 - beta2 ** self.t) + o.eps
            p -= step_size * m / denominator


def _numpy_rate(case: Case, epoch: int, lr: float, base: float, plateau: dict, metric: float):
    """The learning rate of epoch ``epoch + 1`` after epoch ``epoch`` (torch's schedulers)."""
    (name, options), = case.torch_schedule.items()
    if name == "StepLR":
        return base * options["gamma"] ** ((epoch) // options["step_size"])
    if name == "CosineAnnealingLR":
        low, period = options["eta_min"], options["T_max"]
        return low + (base - low) * (1 + math.cos(math.pi * epoch / period)) / 2
    if metric < plateau["best"] * (1 - options["threshold"]):
        plateau["best"], plateau["bad"] = metric, 0
    else:
        plateau["bad"] += 1
    if plateau["bad"] > options["patience"]:
        lr, plateau["bad"] = lr * options["factor"], 0
    return lr


def run_numpy(case: Case) -> list[tuple[np.ndarray, np.ndarray]]:
    x, labels = data()
    y = np.eye(SIZES[-1])[labels]
    params = [(w.copy(), b.copy()) for w, b in initial_parameters()]
    decay = case.optimizer.weight_decay
    flat = [(array, decay if i == 0 else 0.0) for w_b in params for i, array in enumerate(w_b)]
    optimizer = _NumpyOptimizer(case.optimizer, flat)
    plateau = {"best": math.inf, "bad": 0}
    for epoch in range(EPOCHS):
        total = 0.0
        for index in batches():
            loss, grads = _loss_and_gradients(params, x[index], y[index])
            total += loss * len(index)
            optimizer.step([g for pair in grads for g in pair])
        if case.torch_schedule:
            optimizer.lr = _numpy_rate(case, epoch + 1, optimizer.lr, case.optimizer.eta,
                                       plateau, total / SAMPLES)
    return params


# --- PyTorch itself --------------------------------------------------------------------------

def run_torch(case: Case) -> list[tuple[np.ndarray, np.ndarray]]:
    import torch

    x, labels = data()
    xs = torch.tensor(x, dtype=torch.float64)
    ys = torch.tensor(labels)
    params = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True))
              for w, b in initial_parameters()]
    o = case.optimizer
    groups = [{"params": [w for w, _ in params], "weight_decay": o.weight_decay},
              {"params": [b for _, b in params], "weight_decay": 0.0}]
    if isinstance(o, optimizers.SGD):
        optimizer = torch.optim.SGD(groups, lr=o.eta, momentum=o.momentum, nesterov=o.nesterov)
    elif isinstance(o, optimizers.AdamW):
        optimizer = torch.optim.AdamW(groups, lr=o.eta, betas=o.betas, eps=o.eps)
    else:
        optimizer = torch.optim.Adam(groups, lr=o.eta, betas=o.betas, eps=o.eps)
    scheduler = None
    if case.torch_schedule:
        (name, options), = case.torch_schedule.items()
        scheduler = getattr(torch.optim.lr_scheduler, name)(optimizer, **options)
    activations = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}
    for _ in range(EPOCHS):
        total = 0.0
        for index in batches():
            a = xs[index]
            for (w, b), kind in zip(params, KINDS, strict=True):
                s = a @ w.T + b
                a = s if kind == "softmax" else activations[kind](s)
            loss = torch.nn.functional.cross_entropy(a, ys[index])  # mean over the batch
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        if scheduler is not None:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(total / SAMPLES)
            else:
                scheduler.step()
    return [(w.detach().numpy(), b.detach().numpy()) for w, b in params]


def relative_difference(ours, theirs) -> float:
    """The largest difference of any parameter, relative to the largest parameter of its
    array."""
    worst = 0.0
    for (w, b), (tw, tb) in zip(ours, theirs, strict=True):
        for a, t in ((w, tw), (b, tb)):
            worst = max(worst, float(np.max(np.abs(a - t)) / np.max(np.abs(t))))
    return worst
