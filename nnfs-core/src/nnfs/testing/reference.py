"""The oracle of the conformance kit: every factory operation and one training epoch written
plainly in numpy, in float64, on host arrays laid out as on the host (rows × cols)."""

from __future__ import annotations

import numpy as np


def op(matrix: np.ndarray, transpose: bool) -> np.ndarray:
    return matrix.T if transpose else matrix


def gemm(alpha, a, b, beta, c, trans_a=False, trans_b=False):
    return alpha * (op(a, trans_a) @ op(b, trans_b)) + (beta * c if beta != 0 else 0.0)


def gemv(alpha, a, x, beta, y, trans=False):
    return alpha * (op(a, trans) @ x) + (beta * y if beta != 0 else 0.0)


def rank1_update(alpha, x, y, a):
    return a + alpha * np.outer(x, y)


def sigmoid(s):
    return 0.5 * np.tanh(0.5 * s) + 0.5


def activation(kind, z, bias=None):
    s = z if bias is None else z + bias[:, None]
    if kind == "linear":
        return s
    if kind == "sigmoid":
        return sigmoid(s)
    if kind == "tanh":
        return np.tanh(s)
    if kind == "relu":
        return np.maximum(s, 0.0)
    if kind == "softmax":
        e = np.exp(s - s.max(axis=0, keepdims=True))
        return e / e.sum(axis=0, keepdims=True)
    raise ValueError(kind)


def activation_backward(kind, a, delta):
    if kind == "linear":
        return delta
    if kind == "sigmoid":
        return delta * a * (1 - a)
    if kind == "tanh":
        return delta * (1 - a * a)
    if kind == "relu":
        return delta * (a > 0)
    if kind == "softmax":
        return a * (delta - (a * delta).sum(axis=0, keepdims=True))
    raise ValueError(kind)


def cost_sum(kind, y, a, eps):
    if kind == "quadratic":
        return float(((a - y) ** 2).sum())
    clipped = np.clip(a, eps, 1 - eps)
    if kind == "binary_cross_entropy":
        return float(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).sum())
    if kind == "categorical_cross_entropy":
        return float(-(y * np.log(clipped)).sum())
    raise ValueError(kind)


def train(weights, biases, kinds, x, y, epochs, eta, cost="quadratic", eps=0.0):
    """Full-batch gradient descent, the article's update; returns (weights, biases, last cost).

    ``cost`` is "quadratic" or "cross_entropy"; the returned cost is the reported value of the
    last epoch's forward pass (see ``nnfs.costs``). ``eps`` clips the outputs inside the
    cross-entropy's logarithms as a backend does (``numpy.finfo(dtype).eps``), so that a
    saturated output gives the backend's value rather than infinity.
    """
    weights = [np.array(w, dtype=np.float64) for w in weights]
    biases = [np.array(b, dtype=np.float64) for b in biases]
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = x.shape[1]
    value = None
    for _ in range(epochs):
        outputs = [x]
        for w, b, kind in zip(weights, biases, kinds, strict=True):
            outputs.append(activation(kind, w @ outputs[-1], b))
        a = outputs[-1]
        if cost == "quadratic":
            value = ((a - y) ** 2).sum() / (2 * a.size)
            delta = activation_backward(kinds[-1], a, a - y)
        else:
            kind = "binary_cross_entropy" if kinds[-1] == "sigmoid" else "categorical_cross_entropy"
            value = cost_sum(kind, y, a, eps) / n
            delta = a - y
        for i in range(len(weights) - 1, -1, -1):
            grad_w = delta @ outputs[i].T
            grad_b = delta.sum(axis=1)
            if i > 0:
                below = activation_backward(kinds[i - 1], outputs[i], weights[i].T @ delta)
            weights[i] -= eta / n * grad_w
            biases[i] -= eta / n * grad_b
            if i > 0:
                delta = below
    assert value is not None  # epochs ≥ 1
    return weights, biases, float(value)


def optimizer_step(kind, p, g, state, d, hyper):
    """One step of the optimizer ``kind`` (see ``nnfs.kinds.OptimizerKind``) on float64 host
    arrays: returns the new parameters and state. ``d`` is the decay mask or None."""
    from nnfs.kinds import Hyper

    eta, decay, mu = hyper[Hyper.ETA], hyper[Hyper.WEIGHT_DECAY], hyper[Hyper.MOMENTUM]
    beta1, beta2, eps = hyper[Hyper.BETA1], hyper[Hyper.BETA2], hyper[Hyper.EPS]
    alpha, root = hyper[Hyper.STEP_SIZE], hyper[Hyper.ROOT_CORRECTION]
    d = np.zeros_like(p) if d is None else d
    if kind == "adamw":
        p = p - eta * decay * d * p
    else:
        g = g + decay * d * p
    if kind == "sgd":
        return p - eta * g, ()
    if kind in ("momentum", "nesterov"):
        (u,) = state
        u = mu * u + g
        return p - eta * (g + mu * u if kind == "nesterov" else u), (u,)
    m, v = state
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return p - alpha * m / (np.sqrt(v) / root + eps), (m, v)


def adam_numbers(eta, betas, eps, decay, t):
    """The host array of Adam's step ``t`` (from 1), as core writes it."""
    from nnfs.kinds import HYPER_SIZE, Hyper

    hyper = np.zeros(HYPER_SIZE)
    hyper[Hyper.ETA], hyper[Hyper.WEIGHT_DECAY] = eta, decay
    hyper[Hyper.BETA1], hyper[Hyper.BETA2], hyper[Hyper.EPS] = betas[0], betas[1], eps
    hyper[Hyper.STEP_SIZE] = eta / (1 - betas[0] ** t)
    hyper[Hyper.ROOT_CORRECTION] = np.sqrt(1 - betas[1] ** t)
    return hyper
