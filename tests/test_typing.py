"""The types hold for users: every distribution ships its py.typed marker, and mypy --strict
accepts a program written against the public API and reports one that misuses it."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import textwrap
from importlib.resources import files
from pathlib import Path

import pytest

#: distribution: its import package
DISTRIBUTIONS = {"nnfs-core": "nnfs", "nnfs-cpu": "nnfs_cpu", "nnfs-opencl": "nnfs_opencl",
                 "nnfs-cuda": "nnfs_cuda", "nnfs-reference-backend": "nnfs_reference"}

#: A user's program: the article's API, training on data, files and optimizers, each result
#: given the type the API promises (a wrong promise is an error under --strict).
USER_PROGRAM = """
    from pathlib import Path

    import numpy as np

    import nnfs
    from nnfs import fully_connected, sigmoid, tanh


    def main(folder: Path) -> float:
        factory: nnfs.Factory = nnfs.backend("cpu", "float64")
        with factory.matrix(2, 2, [[0.3, 0.3], [0.9, 0.9]]) as x, \\
                factory.matrix(1, 2, [[0.5, 0.5]]) as y:
            inference: nnfs.InferenceNetwork = nnfs.inference_network(
                factory, 2, [fully_connected(4, tanh), fully_connected(1, sigmoid)], seed=1)
            with nnfs.training_network(inference, x) as training:
                last: float = nnfs.sgd(training, y, nnfs.quadratic_cost, 20, 0.05)
                costs: list[float] = nnfs.sgd(training, y, nnfs.quadratic_cost,
                                              [(10, 0.05), (5, 0.01)])
            with inference(x) as out:
                host: np.ndarray = nnfs.transfer(out)
            written: nnfs.Matrix = nnfs.transfer(host, x)
            norm: float = factory.nrm2(inference.parameters)

        X = np.random.default_rng(0).uniform(size=(40, 3))
        labels = (X[:, 0] > 0.5).astype(int)
        network = nnfs.inference_network(factory, 3, [fully_connected(8, "relu"),
                                                      fully_connected(2, "softmax")])
        history: nnfs.History = nnfs.fit(
            network, X, labels, epochs=3, batch_size=8, cost="cross_entropy",
            optimizer=nnfs.optimizers.Adam(1e-3), quiet=True,
            early_stopping=nnfs.EarlyStopping(patience=2), validation=(X, labels))
        predicted: np.ndarray = nnfs.predict(network, X)
        path: Path = nnfs.save(network, folder / "model.npz")
        with nnfs.load(path, factory) as loaded:
            again: np.ndarray = nnfs.predict(loaded, X)
        momentum: nnfs.optimizers.Optimizer = nnfs.optimizers.SGD(0.1, momentum=0.9)
        print(last, costs, written, norm, predicted, again, momentum)
        return history.cost[-1]
"""

#: The same API misused: each line marked ``# wrong`` must be reported.
WRONG_PROGRAM = """
    import nnfs
    from nnfs import fully_connected, tanh


    def main() -> None:
        factory = nnfs.backend("cpu")
        layer = fully_connected("four", tanh)  # wrong
        with factory.matrix(2, 2) as x, factory.matrix(1, 2) as y:
            network = nnfs.inference_network(factory, 2, [layer])
            training = nnfs.training_network(network, x)
            cost: str = nnfs.sgd(training, y, nnfs.quadratic_cost, 20, 0.05)  # wrong
            costs: float = nnfs.sgd(training, y, nnfs.quadratic_cost, [(10, 0.05)])  # wrong
            nnfs.transfer(x).no_such_method()  # wrong
        print(cost, costs)
"""


@pytest.fixture(scope="module")
def mypy() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed here (it comes with nnfs-core's test extra)")


def run_mypy(program: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` on ``program`` in ``folder``, as a user runs it: no settings of ours."""
    (folder / "user.py").write_text(textwrap.dedent(program))
    (folder / "mypy.ini").write_text("[mypy]\n")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", "mypy.ini",
         "--cache-dir", str(folder / ".mypy_cache"), "--no-color-output", "user.py"],
        cwd=folder, capture_output=True, text=True, timeout=600)


def test_a_program_on_the_public_api_is_clean_under_strict(mypy, tmp_path):
    """Also shows the marker is read: without py.typed, --strict reports the import of nnfs."""
    result = run_mypy(USER_PROGRAM, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in 1 source file" in result.stdout


def test_a_program_that_misuses_the_api_is_reported(mypy, tmp_path):
    result = run_mypy(WRONG_PROGRAM, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    wrong = [number for number, line in enumerate(textwrap.dedent(WRONG_PROGRAM).splitlines(), 1)
             if line.endswith("# wrong")]
    reported = {int(line.split(":")[1]) for line in result.stdout.splitlines()
                if line.startswith("user.py:") and ": error:" in line}
    assert reported == set(wrong), result.stdout


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
def test_every_distribution_ships_its_py_typed_marker(distribution):
    package = DISTRIBUTIONS[distribution]
    try:
        installed = importlib.metadata.files(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed here (bash .ci/run installs it)")
    assert (files(package) / "py.typed").is_file(), f"{package} has no py.typed marker"
    # installed from a wheel (not editable), the marker is one of the distribution's files
    if any(str(path).startswith(f"{package}/") for path in installed or ()):
        assert f"{package}/py.typed" in {str(path) for path in installed}, (
            f"the {distribution} wheel does not include {package}/py.typed")
