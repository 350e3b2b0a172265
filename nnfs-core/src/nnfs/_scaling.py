"""The scaling ``nnfs train`` trains through, and its folding into the model it saves.

``nnfs train`` trains on standardised features (or on the reader's own scaling of them: the
digits' pixels at 1/16, MNIST's at 1/255) and, for regression, towards standardised targets;
the model it saves takes the data as the user has it, because the scaling is folded into its
first layer (and the targets' into its last): ``W·((x − μ)/σ) + b = (W/σ)·x + (b − (W/σ)·μ)``.
The fold is computed in float64 and checked to fit the network's dtype before anything is
written; where it would overflow, the trained layers are kept unchanged behind a layer that
does the scaling (:func:`fold_scaling`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import nnfs

from .errors import NnfsValueError
from .network import fully_connected


def _largest(values: np.ndarray) -> np.ndarray:
    largest = np.abs(values).max(axis=0)
    return np.where(largest > 0, largest, 1.0)


def spread(values: np.ndarray) -> np.ndarray:
    """The standard deviation of each column, computed on the values divided by the largest
    of each, so that values near the largest floats do not overflow when squared."""
    largest = _largest(values)
    return (values / largest).std(axis=0) * largest


def standardizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of each feature (scale 1 for a constant feature), computed so that
    values near the largest floats do not overflow."""
    largest = _largest(X)
    mean = (X / largest).mean(axis=0) * largest
    scale = spread(X)
    return mean, np.where(scale > 1e-12, scale, 1.0)


@dataclass(frozen=True)
class Scaling:
    """How the data is scaled for training: the network trains on ``(x − mean) / scale`` and,
    for regression, towards ``(y − target_mean) / target_scale``. ``constant``: the features
    that were constant in the training data (their weights train on zeros only)."""

    mean: np.ndarray
    scale: np.ndarray
    constant: np.ndarray
    target_mean: float = 0.0
    target_scale: float = 1.0

    def inputs(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale

    def targets(self, y: np.ndarray) -> np.ndarray:
        return (y - self.target_mean) / self.target_scale


def scaling_for(train, standardize: bool) -> Scaling:
    """Standardised features (and regression targets), or the reader's own scaling of the
    features (the digits' 1/16, MNIST's 1/255) and the targets as they are."""
    features = train.X.shape[1]
    if not standardize:
        return Scaling(np.zeros(features), np.full(features, 1 / train.feature_scale),
                       np.zeros(features, bool))
    mean, scale = standardizer(train.X)
    constant = spread(train.X) <= 1e-12
    if train.task != "regression":
        return Scaling(mean, scale, constant)
    target_scale = float(spread(train.y))
    return Scaling(mean, scale, constant, float(standardizer(train.y)[0]),
                   target_scale if target_scale > 1e-12 else 1.0)


def check_representable(X: np.ndarray, dtype: str, names) -> None:
    """Refuse, before training, features that a network of ``dtype`` taking the data as it is
    cannot read: those whose spread is below the dtype's resolution at their size (1e9 ± 0.01
    is one float32 number), so that no model, folded or not, could tell their values apart."""
    spreads = spread(X)
    with np.errstate(divide="ignore", invalid="ignore"):
        resolution = float(np.finfo(dtype).eps) * np.abs(X).max(axis=0) / spreads
    lost = np.flatnonzero((spreads > 1e-12) & (resolution > 0.5))
    if lost.size:
        j = int(lost[0])
        name = f" ({names[j]!r})" if names else ""
        raise NnfsValueError(
            f"feature {j}{name} varies by {spreads[j]:.3g} around {X[:, j].mean():.6g}: "
            f"{dtype} cannot tell its values apart, so a model that takes the data as it is "
            f"could not read it; train with --dtype float64, or give the feature as an "
            "offset from a value near its mean")


def check_targets(y: np.ndarray, dtype: str) -> None:
    """Refuse, before training, regression targets a network of ``dtype`` cannot give."""
    largest = float(np.abs(y).max())
    limit = float(np.finfo(dtype).max)
    if largest > limit:
        raise NnfsValueError(f"the targets reach {largest:.3g}, and a {dtype} network's outputs "
                             f"hold at most {limit:.6g}; train with --dtype float64, or scale "
                             "the targets")


def _folded(weights: list[np.ndarray], biases: list[np.ndarray],
            scaling: Scaling) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first and last layers with the scaling folded in, in float64 (see fold_scaling)."""
    weights, biases = [w.copy() for w in weights], [b.copy() for b in biases]
    # W·((x − μ)/σ) + b = (W/σ)·x + (b − (W/σ)·μ); a constant feature's weights only ever
    # multiplied 0: they are dropped, so that nothing of its size is subtracted
    folded = np.where(scaling.constant, 0.0, weights[0] / scaling.scale)
    biases[0] = biases[0] - folded @ np.where(scaling.constant, 0.0, scaling.mean)
    weights[0] = folded
    # y = σ_y·(W·a + b) + μ_y
    weights[-1] = weights[-1] * scaling.target_scale
    biases[-1] = biases[-1] * scaling.target_scale + scaling.target_mean
    return weights, biases


def _fits(arrays: list[np.ndarray], dtype: np.dtype) -> bool:
    limit = np.finfo(dtype).max
    return all(np.isfinite(a).all() and (np.abs(a) <= limit).all() for a in arrays)


def _split(parameters: np.ndarray, network) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Flat parameters (each layer's weights column by column, then its bias) as each
    layer's weights (units × inputs) and bias, in float64."""
    weights, biases, start = [], [], 0
    for layer in network.layers:
        count = layer.out_dim * layer.in_dim
        weights.append(parameters[start:start + count].astype(np.float64)
                       .reshape(layer.in_dim, layer.out_dim).T)
        biases.append(parameters[start + count:start + count + layer.out_dim]
                      .astype(np.float64))
        start += count + layer.out_dim
    return weights, biases


def _join(weights: list[np.ndarray], biases: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([part for w, b in zip(weights, biases, strict=True)
                           for part in (w.T.reshape(-1), b)])


def folded_parameters(parameters: np.ndarray, network, scaling: Scaling) -> np.ndarray:
    """The flat ``parameters`` of ``network`` (host values, as its training holds them) with
    the scaling folded in, in their dtype; a clear error where the folded weights do not fit
    it (a checkpoint's model cannot change its architecture, as :func:`fold_scaling` can)."""
    folded = _join(*_folded(*_split(parameters, network), scaling))
    if not _fits([folded], parameters.dtype):
        raise NnfsValueError(
            f"folding the features' scaling into the first layer would overflow "
            f"{parameters.dtype}, so this checkpoint's model cannot take the data as it is; "
            "nothing was written over the last checkpoint. Train with --dtype float64, or "
            "with a smaller eta")
    return folded.astype(parameters.dtype)


def fold_scaling(network, scaling: Scaling):
    """A network that takes the data as the user has it: ``network`` itself with the scaling
    folded into its first layer (and, for regression, the targets' into its last), computed
    in float64; or, where the folded weights do not fit the network's dtype (weights grown
    huge over features of a tiny spread overflow float32), a new network made of the same
    layers, unchanged, between a layer that does the scaling and, for regression, one that
    scales the outputs back. Returns (the network, None) or (the new network, what was done);
    the caller owns a new network. The weights are checked finite before anything is written:
    whatever happens, no weight becomes inf or NaN."""
    dtype = network.factory.numpy_dtype
    weights, biases = _split(nnfs.transfer(network.parameters), network)
    folded = _join(*_folded(weights, biases, scaling))
    if _fits([folded], dtype):
        nnfs.transfer(folded, network.parameters)
        return network, None
    # the scaling as layers of its own: a diagonal first layer, and a one-to-one last one
    inputs = np.where(scaling.constant, 0.0, 1 / scaling.scale)
    first = (np.diag(inputs), -inputs * np.where(scaling.constant, 0.0, scaling.mean))
    layers = [fully_connected(network.in_dim, "linear"), *network.architecture]
    arrays = [first, *zip(weights, biases, strict=True)]
    regression = (scaling.target_mean, scaling.target_scale) != (0.0, 1.0)
    if regression:
        outputs = network.out_dim
        layers.append(fully_connected(outputs, "linear"))
        arrays.append((np.eye(outputs) * scaling.target_scale,
                       np.full(outputs, scaling.target_mean)))
    if not _fits([a for pair in arrays for a in pair], dtype):
        raise NnfsValueError(
            f"the trained network's weights, with the features' scaling, do not fit "
            f"{network.factory.dtype} even as layers of their own; nothing was saved. Train "
            "with --dtype float64, or with a smaller eta")
    scaled = nnfs.inference_network(network.factory, network.in_dim, layers)
    nnfs.transfer(_join([w for w, _ in arrays], [b for _, b in arrays]), scaled.parameters)
    note = (f"folding the features' scaling into the first layer would overflow "
            f"{network.factory.dtype}: the model takes them through a scaling layer of its own "
            f"({network.in_dim} → {network.in_dim} linear) instead"
            + (", and gives its outputs through another" if regression else ""))
    return scaled, note


def finite(network) -> bool:
    """Whether every parameter of ``network`` is finite (a host copy, checked)."""
    return bool(np.isfinite(nnfs.transfer(network.parameters)).all())
