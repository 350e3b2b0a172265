"""nnfs train's defaults against scikit-learn's MLPClassifier on the same digits splits.

    python benchmarks/digits_vs_sklearn.py [--seeds 5] [--backend cpu]

Both get the same split (a stratified fifth held out, per seed) and the same standardised
features; scikit-learn runs with its defaults (100 relu units, Adam, up to 200 epochs). Prints
test accuracy and training seconds of each, per seed, and the medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

import nnfs
from nnfs import commands, data


def train_nnfs(factory, train, test, seed):
    layers = commands.parse_layers(commands.DEFAULT_LAYERS)
    eta = commands.default_schedule(commands.DEFAULT_EPOCHS)
    mean, scale = commands.standardizer(train.X)
    with nnfs.inference_network(factory, train.X.shape[1], layers, seed=seed) as network:
        started = time.perf_counter()
        nnfs.fit(network, (train.X - mean) / scale, train.y, eta=eta,
                 batch_size=commands.DEFAULT_BATCH, seed=seed, quiet=True)
        seconds = time.perf_counter() - started
        predicted = nnfs.predict(network, (test.X - mean) / scale).argmax(axis=1)
    return float(np.mean(predicted == test.y)), seconds


def train_sklearn(train, test, seed):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    mean, scale = commands.standardizer(train.X)
    model = MLPClassifier(random_state=seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit((train.X - mean) / scale, train.y)
    seconds = time.perf_counter() - started
    return float(model.score((test.X - mean) / scale, test.y)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args()
    factory = nnfs.backend(args.backend)
    digits = data.digits()
    rows = []
    print(f"{'seed':>4}  {'nnfs acc':>8}  {'nnfs s':>7}  {'sklearn acc':>11}  {'sklearn s':>9}")
    for seed in range(args.seeds):
        train, test = data.split(digits, 0.2, seed)
        ours = train_nnfs(factory, train, test, seed)
        theirs = train_sklearn(train, test, seed)
        rows.append((*ours, *theirs))
        print(f"{seed:>4}  {ours[0]:>8.4f}  {ours[1]:>7.2f}  {theirs[0]:>11.4f}  {theirs[1]:>9.2f}")
    medians = [statistics.median(column) for column in zip(*rows, strict=True)]
    print(f"median  nnfs {medians[0]:.4f} in {medians[1]:.2f} s on {factory.describe()}; "
          f"scikit-learn {medians[2]:.4f} in {medians[3]:.2f} s; "
          f"nnfs takes {medians[1] / medians[3]:.2f}× scikit-learn's time")


if __name__ == "__main__":
    main()
