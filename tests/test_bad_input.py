"""The catalogue of bad input (issues #8 and #16): every argument of the public API that can be
wrong, every file a user or an attacker can hand to nnfs, every path it takes into the command
line, one test each.

Each case states the call, the nnfs error and the built-in it must also be, and three pieces
of its message: the argument it names, what was given and what was expected. The test runs the
call on a small world (a network, its training network, device matrices, host arrays and a
saved model) and checks, besides the error, that nothing changed before it was raised: the
weights, the device matrices, the host arrays, every file of the world's directory, and the
factory's allocation counter and bytes in use.

Cases that touch device memory run on every installed backend and dtype (``backend_params``);
the others (layer declarations, backend names, model files) once. The tables:

* ``CASES``: calls of the API, damaged and crafted model files among them (built by
  ``tests/bad_files.py``, which also holds the damaged data files);
* ``COMMANDS``: bad command lines, and every bad file on every option that reads one (``--data``,
  ``--test-data``, ``--labels``, ``--test-labels``, ``--model``) and every bad destination on
  every option that writes one (``--save``, ``--plot``, ``--output``), some run as another user,
  under a file-size limit or on a full or read-only filesystem: one line on stderr, no
  traceback, a non-zero exit status, no file changed;
* ``STREAM_COMMANDS`` × ``STREAMS``: every command on each of its paths with standard output
  closed or full, or standard error closed;
* ``SITUATIONS``: ``nnfs.save`` and ``nnfs.load`` on a full disk, a read-only filesystem, past
  the file-size limit, as a user the system refuses.

Bad plugins are catalogued next to this file, in ``tests/test_plugin_loading.py`` (the plugins
of ``tests/plugins/`` and ``tests/plugins/hostile/``) and ``tests/test_registry.py``; flawed
backends that the conformance kit must fail in ``tests/test_kit_catches_flaws.py`` (the
backends of ``tests/plugins/flawed/``); ranks that disagree or leave in ``tests/test_mpi.py``;
randomly damaged files in ``tests/test_io.py`` and ``tests/test_data.py``. The guide's "What
nnfs promises" page quotes the size of the tables here; ``test_the_guide_counts_the_cases``
keeps it honest, and ``python tests/test_bad_input.py`` prints it.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import pickle
import pwd
import re
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

if __name__ == "__main__":  # run as a script to print the catalogue's size: conftest is above
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nnfs
from bad_files import DATA_FILES, MODEL_FILES, BadFile, idx_bytes
from conftest import ROOT, backend_params, diverging, queued
from nnfs import fully_connected, quadratic_cost, sigmoid, tanh

#: A bad input must not hang: each case fails after this many seconds (pytest-timeout).
pytestmark = pytest.mark.timeout(120)

# --- the world each case runs in ----------------------------------------------------------------


class World:
    """A network 3 → 4 tanh → 2 sigmoid on one factory, with everything the API takes."""

    def __init__(self, factory: nnfs.Factory, directory: Path):
        self.factory = factory
        self.dir = directory
        rng = np.random.default_rng(0)
        self.X = rng.uniform(-1, 1, (12, 3))              # host samples, one per row
        self.labels = rng.integers(0, 2, 12)              # class labels for the 2 outputs
        self.outputs = rng.uniform(0.2, 0.8, (12, 2))     # or one row of outputs per sample
        self._host = {name: getattr(self, name).copy() for name in ("X", "labels", "outputs")}
        self.network = nnfs.inference_network(factory, 3, [fully_connected(4, tanh),
                                                           fully_connected(2, sigmoid)], seed=0)
        self.x = factory.matrix(3, 6, self.X[:6].T)
        self.y = factory.matrix(2, 6, self.outputs[:6].T)
        self.training = nnfs.training_network(self.network, self.x)
        self.model = directory / "model.npz"
        nnfs.save(self.network, self.model)
        self.owned: list = [self.training, self.x, self.y, self.network]
        self.other: object = None  # what a case's setup made for its call

    # what setups make ----------------------------------------------------------------------

    def keep(self, thing):
        self.owned.append(thing)
        return thing

    def other_dtype(self) -> nnfs.Factory:
        """The same backend in its other dtype, or a skip saying there is none."""
        info = next(i for i in nnfs.backends() if i.name == self.factory.name)
        others = [d for d in info.dtypes if d != self.factory.dtype]
        if not others:
            pytest.skip(f"the {self.factory.name} backend has no dtype but {self.factory.dtype}")
        return nnfs.backend(self.factory.name, others[0])

    def other_backend(self) -> nnfs.Factory:
        """Another installed, available backend (any dtype), or a skip saying there is none."""
        for info in nnfs.backends():
            if info.available and info.name != self.factory.name:
                return nnfs.backend(info.name, info.dtypes[0])
        pytest.skip(f"no backend but {self.factory.name} is available here")

    def archive(self, name: str, **changes) -> Path:
        """A model file like the world's, with some entries changed (None: left out)."""
        with np.load(self.model, allow_pickle=False) as archive:
            entries = {key: archive[key] for key in archive.files}
        entries.update(changes)
        path = self.dir / name
        np.savez(path, **{key: value for key, value in entries.items() if value is not None})
        return path

    # state ---------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        state = {"stats": (self.factory.stats().allocations, self.factory.stats().bytes_in_use),
                 "files": {p.name: p.read_bytes() for p in sorted(self.dir.iterdir())
                           if p.is_file()}}
        for name in ("network", "x", "y"):
            thing = getattr(self, name)
            if not thing.released:
                state[name] = nnfs.transfer(thing.parameters if name == "network" else thing)
        return state

    def assert_unchanged(self, before: dict) -> None:
        after = self.snapshot()
        assert after["files"].keys() == before["files"].keys(), "files were made or removed"
        for name, data in before["files"].items():
            assert after["files"][name] == data, f"the file {name} changed"
        for name in ("network", "x", "y"):
            if name in before:
                assert np.array_equal(after[name], before[name]), f"{name} changed"
        for name, copy in self._host.items():
            assert np.array_equal(getattr(self, name), copy), f"the host array {name} changed"
        assert after["stats"] == before["stats"], (
            f"(allocations, bytes in use) went from {before['stats']} to {after['stats']}")

    def release(self) -> None:
        for thing in reversed(self.owned):
            thing.release()


@dataclass(frozen=True)
class Case:
    """One bad input: ``call(world)`` must raise ``error``, which is also ``builtin``, with a
    message holding ``argument``, ``given`` and ``expected``. ``setup(world)`` runs first and
    is not part of what must leave the state alone (it may release or make things)."""

    name: str
    call: Callable[[World], object]
    error: type[nnfs.NnfsError]
    builtin: type[BaseException]
    argument: str
    given: str | Callable[[World], str]
    expected: str | Callable[[World], str]
    setup: Callable[[World], object] | None = None
    device: bool = True  # runs on every backend; False: once, on the CPU
    only: Callable[[World], str | None] | None = field(default=None)  # a reason to skip


def float32_only(world: World) -> str | None:
    if world.factory.dtype != "float32":
        return f"every float64 number fits a {world.factory.dtype} matrix"
    return None


QC = quadratic_cost
V = nnfs.NnfsValueError
T = nnfs.NnfsTypeError
S = nnfs.ShapeError
R = nnfs.ReleasedError
M = nnfs.ModelFileError


def sgd(w: World, *args, **kwargs):
    return nnfs.sgd(w.training, w.y, QC, *args, **kwargs)


def fit(w: World, **kwargs):
    arguments = {"X": w.X, "Y": w.labels, "epochs": 2, "batch_size": 4, "eta": 0.1,
                 "quiet": True, **kwargs}
    return nnfs.fit(w.network, arguments.pop("X"), arguments.pop("Y"), **arguments)


def with_nan(array: np.ndarray, index: tuple, value: float = math.nan) -> np.ndarray:
    copy = array.astype(np.float64)
    copy[index] = value
    return copy


def set_other(function):
    """A setup that keeps what ``function(world)`` makes as ``world.other``."""

    def setup(w: World) -> None:
        w.other = function(w)

    return setup


def released(function):
    """A setup that makes something with ``function(world)``, releases it, keeps it as other."""

    def setup(w: World) -> None:
        thing = function(w)
        thing.release()
        w.other = thing

    return setup


def release_attribute(name: str):
    def setup(w: World) -> None:
        getattr(w, name).release()

    return setup


class Exploit:
    """Unpickling this creates the file ``ran`` next to the model: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def pickled_model(w: World) -> None:
    w.other = w.dir / "pickled.npz"
    w.other.write_bytes(pickle.dumps(Exploit(w.dir / "ran")))


def objects_model(w: World) -> None:
    w.other = w.archive("objects.npz", parameters=np.array([Exploit(w.dir / "ran")], object))


def truncated_model(w: World) -> None:
    data = w.model.read_bytes()
    w.other = w.dir / "truncated.npz"
    w.other.write_bytes(data[: len(data) // 2])


def refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def save_where_writing_is_refused(w: World):
    """As the operating system refuses (simulated: root may write anywhere)."""
    with mock.patch("tempfile.mkstemp", refuse):
        return nnfs.save(w.network, w.model)


def poisoned_network(index: int, value: float):
    """A setup making ``world.other`` a copy of the world's network with one parameter set
    to ``value`` behind the checks of transfer, as an update that diverged leaves it."""

    def setup(w: World) -> None:
        copy = w.keep(nnfs.inference_network(w.factory, 3, [fully_connected(4, tanh),
                                                            fully_connected(2, sigmoid)]))
        parameters = nnfs.transfer(w.network.parameters).copy()
        parameters[index] = value
        w.factory.backend.write(parameters.astype(w.factory.numpy_dtype), copy.parameters)
        w.other = copy

    return setup


def needs_safetensors(world: World) -> str | None:
    try:
        import safetensors  # noqa: F401
    except ImportError:
        return "writing safetensors needs the safetensors package (nnfs-core[safetensors])"
    return None


def save_without_safetensors(w: World):
    with mock.patch.dict(sys.modules, {"safetensors": None, "safetensors.numpy": None}):
        return nnfs.save(w.network, w.dir / "new.safetensors")


def load_where_reading_is_refused(w: World):
    """As the operating system refuses (simulated here; SITUATIONS below has the real one)."""
    with mock.patch("nnfs._files.open", refuse, create=True):
        return nnfs.load(w.model, w.factory)


def backend_from_environment(w: World):
    with mock.patch.dict(os.environ, {"NNFS_BACKEND": "nosuch"}):
        return nnfs.backend()


def too_much(w: World) -> int:
    """Bytes the device cannot give: twice what it reports, or 1 TiB where it does not say
    (no host here has that much, so numpy's request is refused at once)."""
    available = w.factory.memory_limits().total_bytes
    return 2**40 if available is None else 2 * available


#: The batch of the training network that does not fit: z and a of its wide layer do not.
WIDE_BATCH = 2**16


def wide_layer_and_batch(w: World) -> None:
    """A network 3 → u and a batch of WIDE_BATCH inputs: both small, but z and a of the layer
    (u × WIDE_BATCH each) need twice what the device can give."""
    units = too_much(w) // (2 * WIDE_BATCH * w.factory.itemsize) + 1
    network = w.keep(nnfs.inference_network(w.factory, 3, [fully_connected(units, "linear")]))
    w.other = (network, w.keep(w.factory.matrix(3, WIDE_BATCH)))


def available_or_refused(w: World) -> str:
    """What an out-of-memory message compares with: the bytes available, or, where the
    backend does not know them, the device's refusal."""
    return "available" if w.factory.memory_limits().total_bytes is not None else "refused"


CASES: list[Case] = [
    # --- choosing a backend ---------------------------------------------------------------
    Case("backend/unknown-name", lambda w: nnfs.backend("nosuch"),
         nnfs.BackendNotFound, LookupError, "backend name", "'nosuch'", "installed: cpu",
         device=False),
    Case("backend/name-not-a-string", lambda w: nnfs.backend(42),
         T, TypeError, "backend name", "int 42", "a string such as 'cpu'", device=False),
    Case("backend/invalid-name", lambda w: nnfs.backend("c p u!"),
         V, ValueError, "backend name", "'c p u!'", "a letter followed by", device=False),
    Case("backend/unknown-dtype", lambda w: nnfs.backend("cpu", "float16"),
         V, ValueError, "dtype", "'float16'", "float32, float64", device=False),
    Case("backend/unsupported-dtype", lambda w: nnfs.backend("reference", "float64"),
         nnfs.UnsupportedOperation, NotImplementedError, "reference backend", "float64",
         "it supports float32", device=False,
         only=lambda w: None if "reference" in nnfs.registry.default().names()
         else "the reference backend is not installed"),
    Case("backend/unknown-option", lambda w: nnfs.backend("cpu", colour="red"),
         T, TypeError, "option", "'colour'", "it takes", device=False),
    Case("backend/environment-variable", backend_from_environment,
         nnfs.BackendNotFound, LookupError, "NNFS_BACKEND", "'nosuch'", "installed: cpu",
         device=False),

    # --- matrices and vectors -------------------------------------------------------------
    Case("matrix/rows-zero", lambda w: w.factory.matrix(0, 3),
         V, ValueError, "matrix: rows", "got 0", "positive"),
    Case("matrix/cols-negative", lambda w: w.factory.matrix(3, -2),
         V, ValueError, "matrix: cols", "got -2", "positive"),
    Case("matrix/rows-not-an-integer", lambda w: w.factory.matrix(2.5, 3),
         T, TypeError, "matrix: rows", "float 2.5", "an integer"),
    Case("matrix/rows-a-bool", lambda w: w.factory.matrix(True, 3),
         T, TypeError, "matrix: rows", "bool True", "an integer"),
    Case("matrix/data-of-another-shape", lambda w: w.factory.matrix(2, 3, [[1, 2], [3, 4]]),
         S, ValueError, "matrix: data", "got shape 2×2", "shape 2×3 or a flat sequence of 6"),
    Case("matrix/data-with-nan", lambda w: w.factory.matrix(2, 2, [[1, math.nan], [3, 4]]),
         V, ValueError, "matrix: data", "nan at index (0, 1)", "finite numbers"),
    Case("matrix/data-with-inf", lambda w: w.factory.matrix(1, 3, [0, 0, -math.inf]),
         V, ValueError, "matrix: data", "inf at index (0, 2)", "finite numbers"),
    Case("matrix/data-of-strings", lambda w: w.factory.matrix(1, 2, ["a", "b"]),
         T, TypeError, "matrix: data", "dtype <U1", "real numbers"),
    Case("matrix/data-ragged", lambda w: w.factory.matrix(2, 2, [[1, 2], [3]]),
         V, ValueError, "matrix: data", "inhomogeneous", "numeric array"),
    Case("matrix/data-too-large-for-float32", lambda w: w.factory.matrix(1, 2, [1e39, 0]),
         V, ValueError, "matrix: data", "1e+39", "too large for float32", only=float32_only),
    Case("matrix/more-than-the-device-has", lambda w: w.factory.matrix(2**21, 2**21),
         nnfs.OutOfDeviceMemory, MemoryError, "allocation",
         lambda w: f"{2**42 * w.factory.itemsize} bytes", available_or_refused),
    Case("matrix/on-a-released-factory", lambda w: w.other.matrix(2, 2),
         R, ValueError, "factory", "released", "cannot be used",
         setup=released(lambda w: nnfs.Factory(type(w.factory.backend)(w.factory.dtype)))),
    Case("vector/size-zero", lambda w: w.factory.vector(0),
         V, ValueError, "vector: n", "got 0", "positive"),
    Case("vector/data-of-another-length", lambda w: w.factory.vector(3, [1, 2]),
         S, ValueError, "vector: data", "got shape 2", "shape 3"),

    # --- transfer -------------------------------------------------------------------------
    Case("transfer/host-data-without-destination", lambda w: nnfs.transfer(w.X),
         T, TypeError, "transfer: with one argument, source", "got ndarray",
         "an nnfs Matrix or Vector"),
    Case("transfer/destination-not-on-a-device", lambda w: nnfs.transfer([1, 2], [0, 0]),
         T, TypeError, "transfer: destination", "got list", "an nnfs Matrix or Vector"),
    Case("transfer/host-data-of-another-shape",
         lambda w: nnfs.transfer(np.ones((2, 4)), w.network.layers[0].weights),
         S, ValueError, "transfer: source", "got shape 2×4", "shape 4×3"),
    Case("transfer/nan-into-weights",
         lambda w: nnfs.transfer(with_nan(np.ones((4, 3)), (2, 1)), w.network.layers[0].weights),
         V, ValueError, "transfer: source", "nan at index (2, 1)", "finite numbers"),
    Case("transfer/matrix-of-another-shape", lambda w: nnfs.transfer(w.x, w.y),
         S, ValueError, "transfer: source", "3×6 matrix", "destination is a 2×6 matrix"),
    Case("transfer/into-a-released-matrix", lambda w: nnfs.transfer([[1, 2]], w.other),
         R, ValueError, "transfer: destination", "released", "cannot be used",
         setup=released(lambda w: w.factory.matrix(1, 2))),
    Case("transfer/from-a-released-matrix", lambda w: nnfs.transfer(w.other),
         R, ValueError, "transfer: source", "released", "cannot be used",
         setup=released(lambda w: w.factory.matrix(1, 2))),

    # --- declaring layers -----------------------------------------------------------------
    Case("fully_connected/units-zero", lambda w: fully_connected(0, tanh),
         V, ValueError, "fully_connected: units", "got 0", "positive", device=False),
    Case("fully_connected/units-negative", lambda w: fully_connected(-3, tanh),
         V, ValueError, "fully_connected: units", "got -3", "positive", device=False),
    Case("fully_connected/units-not-an-integer", lambda w: fully_connected(4.0, tanh),
         T, TypeError, "fully_connected: units", "float 4.0", "an integer", device=False),
    Case("fully_connected/unknown-activation", lambda w: fully_connected(4, "swish"),
         V, ValueError, "fully_connected: activation", "'swish'", "one of linear, sigmoid",
         device=False),
    Case("fully_connected/activation-not-a-name", lambda w: fully_connected(4, 42),
         T, TypeError, "fully_connected: activation", "got int", "such as nnfs.tanh",
         device=False),

    # --- building an inference network ----------------------------------------------------
    Case("inference_network/empty-layer-list", lambda w: nnfs.inference_network(w.factory, 3, []),
         V, ValueError, "inference_network: layers", "is empty", "at least one layer"),
    Case("inference_network/layers-not-a-list",
         lambda w: nnfs.inference_network(w.factory, 3, fully_connected(2, tanh)),
         T, TypeError, "inference_network: layers", "got FullyConnected", "a list such as"),
    Case("inference_network/a-layer-not-declared",
         lambda w: nnfs.inference_network(w.factory, 3, [fully_connected(2, tanh), (2, tanh)]),
         T, TypeError, "inference_network: layers[1]", "got tuple", "made by fully_connected"),
    Case("inference_network/in_dim-zero",
         lambda w: nnfs.inference_network(w.factory, 0, [fully_connected(2, tanh)]),
         V, ValueError, "inference_network: in_dim", "got 0", "positive"),
    Case("inference_network/in_dim-not-an-integer",
         lambda w: nnfs.inference_network(w.factory, 3.0, [fully_connected(2, tanh)]),
         T, TypeError, "inference_network: in_dim", "float 3.0", "an integer"),
    Case("inference_network/factory-a-name",
         lambda w: nnfs.inference_network("cpu", 3, [fully_connected(2, tanh)]),
         T, TypeError, "inference_network: factory", "got str", "an nnfs factory"),
    Case("inference_network/released-factory",
         lambda w: nnfs.inference_network(w.other, 3, [fully_connected(2, tanh)]),
         R, ValueError, "inference_network: factory", "released", "cannot be used",
         setup=released(lambda w: nnfs.Factory(type(w.factory.backend)(w.factory.dtype)))),
    Case("inference_network/seed-negative",
         lambda w: nnfs.inference_network(w.factory, 3, [fully_connected(2, tanh)], seed=-1),
         V, ValueError, "inference_network: seed", "got -1", "non-negative"),
    Case("inference_network/seed-not-an-integer",
         lambda w: nnfs.inference_network(w.factory, 3, [fully_connected(2, tanh)], seed="x"),
         T, TypeError, "inference_network: seed", "'x'", "an int or None"),
    Case("inference_network/more-than-the-device-has",
         lambda w: nnfs.inference_network(w.factory, 2**20, [fully_connected(2**20, tanh)]),
         nnfs.OutOfDeviceMemory, MemoryError, f"network of {(2**20 + 1) * 2**20} parameters",
         lambda w: f"{(2**20 + 1) * 2**20 * w.factory.itemsize} bytes", available_or_refused),

    # --- running an inference network -----------------------------------------------------
    Case("inference/x-with-other-rows", lambda w: w.network(w.y),
         S, ValueError, "inference: x", "got 2×6", "must be 3×?"),
    Case("inference/x-a-host-array", lambda w: w.network(w.X.T),
         T, TypeError, "inference: x", "got ndarray", "an nnfs Matrix or Vector"),
    Case("inference/x-of-another-dtype", lambda w: w.network(w.other),
         nnfs.DTypeMismatch, TypeError, "inference: x", "is float", "transfer it",
         setup=set_other(lambda w: w.keep(w.other_dtype().matrix(3, 2)))),
    Case("inference/x-of-another-backend", lambda w: w.network(w.other),
         nnfs.BackendMismatch, ValueError, "inference: x", "belongs to", "use matrices of one",
         setup=set_other(lambda w: w.keep(w.other_backend().matrix(3, 2)))),
    Case("inference/x-released", lambda w: w.network(w.other),
         R, ValueError, "inference: x", "released", "cannot be used",
         setup=released(lambda w: w.factory.matrix(3, 2))),
    Case("inference/out-of-another-shape", lambda w: w.network(w.x, w.other),
         S, ValueError, "inference: out", "got 2×5", "must be 2×6",
         setup=set_other(lambda w: w.keep(w.factory.matrix(2, 5)))),
    Case("inference/released-network", lambda w: w.network(w.x),
         R, ValueError, "inference network", "released", "cannot be used",
         setup=release_attribute("network")),

    # --- building a training network ------------------------------------------------------
    Case("training_network/inference-not-a-network",
         lambda w: nnfs.training_network("net", w.x),
         T, TypeError, "training_network: inference", "got str", "made by nnfs.inference_network"),
    Case("training_network/x-with-other-rows", lambda w: nnfs.training_network(w.network, w.y),
         S, ValueError, "training_network: x", "got 2×6", "3 rows"),
    Case("training_network/x-of-another-dtype",
         lambda w: nnfs.training_network(w.network, w.other),
         nnfs.DTypeMismatch, TypeError, "training_network: x", "is float", "transfer it",
         setup=set_other(lambda w: w.keep(w.other_dtype().matrix(3, 2)))),
    Case("training_network/x-of-another-backend",
         lambda w: nnfs.training_network(w.network, w.other),
         nnfs.BackendMismatch, ValueError, "training_network: x", "belongs to",
         "use matrices of one", setup=set_other(lambda w: w.keep(w.other_backend().matrix(3, 2)))),
    Case("training_network/released-inference", lambda w: nnfs.training_network(w.network, w.x),
         R, ValueError, "training_network: inference", "released", "cannot be used",
         setup=release_attribute("network")),
    Case("training_network/released-x", lambda w: nnfs.training_network(w.network, w.x),
         R, ValueError, "training_network: x", "released", "cannot be used",
         setup=release_attribute("x")),
    Case("training_network/more-than-the-device-has",
         lambda w: nnfs.training_network(*w.other),
         nnfs.OutOfDeviceMemory, MemoryError, f"training network for batch {WIDE_BATCH}",
         "bytes", available_or_refused, setup=wide_layer_and_batch),

    # --- sgd ------------------------------------------------------------------------------
    Case("sgd/training-not-a-training-network",
         lambda w: nnfs.sgd(w.network, w.y, QC, 1, 0.1),
         T, TypeError, "sgd: training", "got InferenceNetwork", "made by nnfs.training_network"),
    Case("sgd/y-of-another-shape", lambda w: nnfs.sgd(w.training, w.x, QC, 1, 0.1),
         S, ValueError, "sgd: y", "got 3×6", "must be 2×6"),
    Case("sgd/y-of-another-dtype", lambda w: nnfs.sgd(w.training, w.other, QC, 1, 0.1),
         nnfs.DTypeMismatch, TypeError, "sgd: y", "is float", "transfer it",
         setup=set_other(lambda w: w.keep(w.other_dtype().matrix(2, 6)))),
    Case("sgd/y-of-another-backend", lambda w: nnfs.sgd(w.training, w.other, QC, 1, 0.1),
         nnfs.BackendMismatch, ValueError, "sgd: y", "belongs to", "use matrices of one",
         setup=set_other(lambda w: w.keep(w.other_backend().matrix(2, 6)))),
    Case("sgd/y-a-host-array", lambda w: nnfs.sgd(w.training, w.outputs[:6].T, QC, 1, 0.1),
         T, TypeError, "sgd: y", "got ndarray", "an nnfs Matrix"),
    Case("sgd/y-released", lambda w: sgd(w, 1, 0.1),
         R, ValueError, "sgd: y", "released", "cannot be used", setup=release_attribute("y")),
    Case("sgd/input-released", lambda w: sgd(w, 1, 0.1),
         R, ValueError, "sgd: the training network's input", "released", "cannot be used",
         setup=release_attribute("x")),
    Case("sgd/training-released", lambda w: sgd(w, 1, 0.1),
         R, ValueError, "sgd: training", "released", "cannot be used",
         setup=release_attribute("training")),
    Case("sgd/epochs-zero", lambda w: sgd(w, 0, 0.1),
         V, ValueError, "sgd: epochs", "got 0", "positive"),
    Case("sgd/epochs-negative", lambda w: sgd(w, -3, 0.1),
         V, ValueError, "sgd: epochs", "got -3", "positive"),
    Case("sgd/epochs-not-an-integer", lambda w: sgd(w, 2.5, 0.1),
         T, TypeError, "sgd: epochs", "float 2.5", "an integer"),
    Case("sgd/epochs-a-string", lambda w: sgd(w, "3", 0.1),
         T, TypeError, "sgd: epochs", "str '3'", "an integer"),
    Case("sgd/eta-nan", lambda w: sgd(w, 1, math.nan),
         V, ValueError, "sgd: eta", "got nan", "finite"),
    Case("sgd/eta-infinite", lambda w: sgd(w, 1, math.inf),
         V, ValueError, "sgd: eta", "got inf", "finite"),
    Case("sgd/eta-zero", lambda w: sgd(w, 1, 0.0),
         V, ValueError, "sgd: eta", "got 0.0", "positive"),
    Case("sgd/eta-negative", lambda w: sgd(w, 1, -0.5),
         V, ValueError, "sgd: eta", "got -0.5", "positive"),
    Case("sgd/eta-a-string", lambda w: sgd(w, 1, "0.1"),
         T, TypeError, "sgd: eta", "str '0.1'", "a real number"),
    Case("sgd/eta-missing", lambda w: sgd(w, 3),
         T, TypeError, "sgd: give epochs and eta", "epochs=3 and no eta", "schedule of"),
    Case("sgd/schedule-empty", lambda w: sgd(w, []),
         V, ValueError, "sgd: the schedule", "is empty", "at least one (epochs, eta) pair"),
    Case("sgd/schedule-item-not-a-pair", lambda w: sgd(w, [(1, 0.1, 3)]),
         T, TypeError, "sgd: schedule[0]", "(1, 0.1, 3)", "an (epochs, eta) pair"),
    Case("sgd/schedule-nan-eta-in-its-last-pair",
         lambda w: sgd(w, [(1, 0.1), (2, 0.1), (3, math.nan)]),
         V, ValueError, "sgd: schedule[2] eta", "got nan", "finite"),
    Case("sgd/unknown-cost", lambda w: nnfs.sgd(w.training, w.y, "hinge", 1, 0.1),
         V, ValueError, "sgd: cost", "'hinge'", "one of quadratic, cross_entropy"),
    Case("sgd/cost-a-function", lambda w: nnfs.sgd(w.training, w.y, lambda a, y: 0.0, 1, 0.1),
         T, TypeError, "sgd: cost", "got function", "such as nnfs.quadratic_cost"),
    Case("sgd/cross-entropy-on-a-linear-output",
         lambda w: nnfs.sgd(w.other, w.y, nnfs.cross_entropy_cost, 1, 0.1),
         V, ValueError, "cross_entropy_cost", "got nnfs.linear", "sigmoid or softmax",
         setup=set_other(lambda w: w.keep(nnfs.training_network(w.keep(nnfs.inference_network(
             w.factory, 3, [fully_connected(2, "linear")])), w.x)))),

    # --- fit ------------------------------------------------------------------------------
    Case("fit/inference-not-a-network", lambda w: nnfs.fit(w.training, w.X, w.labels, epochs=1),
         T, TypeError, "fit: inference", "got TrainingNetwork", "made by nnfs.inference_network"),
    Case("fit/released-network", lambda w: fit(w),
         R, ValueError, "fit: inference", "released", "cannot be used",
         setup=release_attribute("network")),
    Case("fit/X-with-other-features", lambda w: fit(w, X=np.ones((12, 5))),
         S, ValueError, "fit: X", "got shape (12, 5)", "3 columns"),
    Case("fit/X-with-nan", lambda w: fit(w, X=with_nan(w.X, (7, 2))),
         V, ValueError, "fit: X", "nan in row 7, column 2", "finite"),
    Case("fit/X-with-inf", lambda w: fit(w, X=with_nan(w.X, (11, 0), -math.inf)),
         V, ValueError, "fit: X", "inf in row 11, column 0", "finite"),
    Case("fit/X-empty", lambda w: fit(w, X=np.empty((0, 3)), Y=np.empty(0, int)),
         V, ValueError, "fit: X", "no samples", "at least one sample"),
    Case("fit/X-of-strings", lambda w: fit(w, X=w.X.astype(str)),
         T, TypeError, "fit: X", "dtype <U", "real numbers"),
    Case("fit/X-three-dimensional", lambda w: fit(w, X=w.X.reshape(12, 3, 1)),
         S, ValueError, "fit: X", "got shape (12, 3, 1)", "one sample per row"),
    Case("fit/Y-of-another-length", lambda w: fit(w, Y=w.labels[:11]),
         S, ValueError, "fit: X has 12 samples", "Y has 11", "one row each per sample"),
    Case("fit/label-beyond-the-outputs", lambda w: fit(w, Y=np.where(np.arange(12) == 5, 2,
                                                                      w.labels)),
         V, ValueError, "fit: Y", "label 2 in row 5", "labels must be 0 to 1"),
    Case("fit/label-negative", lambda w: fit(w, Y=np.where(np.arange(12) == 3, -1, w.labels)),
         V, ValueError, "fit: Y", "label -1 in row 3", "labels must be 0 to 1"),
    Case("fit/labels-with-fractions", lambda w: fit(w, Y=w.labels + 0.5),
         V, ValueError, "fit: Y", "fractions such as", "class labels (whole numbers)"),
    Case("fit/outputs-with-nan", lambda w: fit(w, Y=with_nan(w.outputs, (4, 1))),
         V, ValueError, "fit: Y", "nan in row 4, column 1", "finite"),
    Case("fit/outputs-of-another-width", lambda w: fit(w, Y=np.ones((12, 3))),
         S, ValueError, "fit: Y", "got shape (12, 3)", "one row of 2 outputs"),
    Case("fit/batch_size-zero", lambda w: fit(w, batch_size=0),
         V, ValueError, "fit: batch_size", "got 0", "positive"),
    Case("fit/batch_size-larger-than-the-data", lambda w: fit(w, batch_size=13),
         V, ValueError, "fit: batch_size", "is 13", "at most 12"),
    Case("fit/batch_size-not-an-integer", lambda w: fit(w, batch_size=2.5),
         T, TypeError, "fit: batch_size", "float 2.5", "an integer"),
    Case("fit/epochs-zero", lambda w: fit(w, epochs=0),
         V, ValueError, "fit: epochs", "got 0", "positive"),
    Case("fit/epochs-missing", lambda w: fit(w, epochs=None),
         T, TypeError, "fit: give epochs", "epochs=None", "a schedule of (epochs, eta) pairs"),
    Case("fit/eta-nan", lambda w: fit(w, eta=math.nan),
         V, ValueError, "fit: eta", "got nan", "finite"),
    Case("fit/eta-negative", lambda w: fit(w, eta=-1.0),
         V, ValueError, "fit: eta", "got -1.0", "positive"),
    Case("fit/schedule-and-other-epochs", lambda w: fit(w, epochs=4, eta=[(3, 0.5), (2, 0.1)]),
         V, ValueError, "fit: epochs", "is 4", "the schedule given as eta has 5 epochs"),
    Case("fit/unknown-cost", lambda w: fit(w, cost="hinge"),
         V, ValueError, "fit: cost", "'hinge'", "one of quadratic, cross_entropy"),
    Case("fit/validation-not-a-pair", lambda w: fit(w, validation=w.X),
         T, TypeError, "fit: validation", "got ndarray", "a pair (Xv, Yv)"),
    Case("fit/validation-of-other-lengths", lambda w: fit(w, validation=(w.X, w.labels[:5])),
         S, ValueError, "fit: validation X has 12 samples", "validation Y has 5",
         "one row each per sample"),
    Case("fit/validation-with-nan", lambda w: fit(w, validation=(with_nan(w.X, (2, 2)),
                                                                  w.labels)),
         V, ValueError, "fit: validation X", "nan in row 2, column 2", "finite"),
    Case("fit/seed-not-an-integer", lambda w: fit(w, seed="x"),
         T, TypeError, "fit: seed", "'x'", "an int or None"),
    Case("fit/seed-negative", lambda w: fit(w, seed=-1),
         V, ValueError, "fit: seed", "got -1", "non-negative"),
    Case("fit/on_epoch-not-callable", lambda w: fit(w, on_epoch="print"),
         T, TypeError, "fit: on_epoch", "got str", "a function"),

    # --- predict --------------------------------------------------------------------------
    Case("predict/inference-not-a-network", lambda w: nnfs.predict(w.training, w.X),
         T, TypeError, "predict: inference", "got TrainingNetwork",
         "made by nnfs.inference_network"),
    Case("predict/released-network", lambda w: nnfs.predict(w.network, w.X),
         R, ValueError, "predict: inference", "released", "cannot be used",
         setup=release_attribute("network")),
    Case("predict/X-with-other-features", lambda w: nnfs.predict(w.network, np.ones((4, 2))),
         S, ValueError, "predict: X", "got shape (4, 2)", "3 columns"),
    Case("predict/X-with-nan", lambda w: nnfs.predict(w.network, with_nan(w.X, (9, 1))),
         V, ValueError, "predict: X", "nan in row 9, column 1", "finite"),
    Case("predict/X-empty", lambda w: nnfs.predict(w.network, np.empty((0, 3))),
         V, ValueError, "predict: X", "no samples", "at least one sample"),
    Case("predict/batch_size-zero", lambda w: nnfs.predict(w.network, w.X, batch_size=0),
         V, ValueError, "predict: batch_size", "got 0", "positive"),

    # --- save -----------------------------------------------------------------------------
    Case("save/inference-not-a-network", lambda w: nnfs.save(w.training, w.dir / "new.npz"),
         T, TypeError, "save: inference", "got TrainingNetwork", "made by nnfs.inference_network"),
    Case("save/released-network", lambda w: nnfs.save(w.network, w.dir / "new.npz"),
         R, ValueError, "save: inference", "released", "cannot be used",
         setup=release_attribute("network")),
    Case("save/path-not-a-path", lambda w: nnfs.save(w.network, 42),
         T, TypeError, "save: path", "got int", "a file path"),
    Case("save/into-a-missing-directory",
         lambda w: nnfs.save(w.network, w.dir / "no" / "such" / "m.npz"),
         nnfs.NnfsFileNotFoundError, FileNotFoundError, "save", "no/such", "does not exist"),
    Case("save/onto-a-directory", lambda w: nnfs.save(w.network, w.dir),
         V, ValueError, "save", "is a directory", "a file name"),
    Case("save/into-a-directory-not-writable", save_where_writing_is_refused,
         nnfs.NnfsPermissionError, PermissionError, "save", "cannot write in",
         lambda w: str(w.dir), device=False),
    # what load would refuse, refused by save before it writes (issue #16)
    Case("save/nan-parameters", lambda w: nnfs.save(w.other, w.dir / "new.npz"),
         V, ValueError, "save: the network to write to", "parameter 3 is nan",
         "a model holds finite numbers", setup=poisoned_network(3, math.nan)),
    Case("save/infinite-parameters", lambda w: nnfs.save(w.other, w.dir / "new.npz"),
         V, ValueError, "save: the network to write to", "parameter 0 is inf",
         "a model holds finite numbers", setup=poisoned_network(0, -math.inf)),
    Case("save/nan-parameters-as-safetensors",
         lambda w: nnfs.save(w.other, w.dir / "new.safetensors"),
         V, ValueError, "save: the network to write to", "parameter 25 is nan",
         "did its training diverge", setup=poisoned_network(25, math.nan), device=False,
         only=needs_safetensors),
    Case("save/more-layers-than-load-reads", lambda w: nnfs.save(w.other, w.dir / "new.npz"),
         V, ValueError, "save", "got 10001", "a model has 1 to 10000 layers",
         setup=set_other(lambda w: w.keep(nnfs.inference_network(
             w.factory, 1, [fully_connected(1, "linear")] * 10_001))), device=False),
    Case("save/an-unknown-format",
         lambda w: nnfs.save(w.network, w.dir / "m.onnx", format="onnx"),
         V, ValueError, "save: format", "'onnx'", "one of npz, safetensors", device=False),
    Case("save/classes-of-another-count",
         lambda w: nnfs.save(w.network, w.dir / "new.npz", classes=["cat"]),
         V, ValueError, "save", "1 classes for a network of 2 outputs", "expected 2",
         device=False),
    Case("save/a-class-named-twice",
         lambda w: nnfs.save(w.network, w.dir / "new.npz", classes=["cat", "cat"]),
         V, ValueError, "save", "the class 'cat' is named twice", "a label of its own",
         device=False),
    Case("save/a-class-with-a-nul",
         lambda w: nnfs.save(w.network, w.dir / "new.npz", classes=["cat", "d\0g"]),
         V, ValueError, "save", "class 1", "no NUL", device=False),
    Case("save/an-unknown-task",
         lambda w: nnfs.save(w.network, w.dir / "new.npz", task="clustering"),
         V, ValueError, "save", "'clustering'", "one of classification, regression",
         device=False),
    Case("save/classes-of-a-regression",
         lambda w: nnfs.save(w.network, w.dir / "new.npz", task="regression",
                             classes=["a", "b"]),
         V, ValueError, "save", "got 2", "a regression model has no classes", device=False),
    Case("save/safetensors-without-its-package", save_without_safetensors,
         nnfs.MissingDependency, ImportError, "safetensors", "not installed",
         "pip install 'nnfs-core[safetensors]'", device=False),

    # --- load -----------------------------------------------------------------------------
    Case("load/missing-file", lambda w: nnfs.load(w.dir / "absent.npz", w.factory),
         nnfs.NnfsFileNotFoundError, FileNotFoundError, "load", "absent.npz", "does not exist"),
    Case("load/truncated-file", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "truncated.npz", "nnfs model file", setup=truncated_model),
    Case("load/a-text-file", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "starts with b'hello", "not an nnfs model file (an .npz archive",
         setup=set_other(lambda w: (w.dir / "text.npz").write_text("hello") and
                         w.dir / "text.npz"), device=False),
    Case("load/a-numpy-array-file", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "array.npy", "not an nnfs model archive",
         setup=set_other(lambda w: np.save(w.dir / "array.npy", np.zeros(3))
                         or w.dir / "array.npy")),
    Case("load/another-npz-archive", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "lacks 'format'", "not an nnfs model file",
         setup=set_other(lambda w: np.savez(w.dir / "data.npz", X=np.ones(3))
                         or w.dir / "data.npz"), device=False),
    Case("load/a-pickle-that-would-run-code", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "pickled Python objects", "never loads",
         setup=pickled_model, device=False),
    Case("load/an-entry-of-python-objects", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "Python objects", "never loads",
         setup=objects_model, device=False),
    Case("load/another-architecture", lambda w: nnfs.load(w.other, w.network),
         M, ValueError, "load", "3 → 5 tanh → 2 sigmoid", "to load into is 3 → 4 tanh",
         setup=set_other(lambda w: w.archive(
             "wider.npz", units=np.array([5, 2]), parameters=np.zeros(5 * 4 + 2 * 6)))),
    Case("load/another-format-version", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "format version 3", "reads versions 1, 2",
         setup=set_other(lambda w: w.archive("v3.npz", format_version=np.array(3))),
         device=False),
    Case("load/nan-parameters", lambda w: nnfs.load(w.other, w.network),
         M, ValueError, "load", "parameter 3 is nan", "finite",
         setup=set_other(lambda w: w.archive("nan.npz", parameters=with_nan(np.zeros(26), 3)))),
    Case("load/parameters-too-large-for-float32", lambda w: nnfs.load(w.other, w.network),
         M, ValueError, "load", "parameter 5 is 1e+300", "too large for float32",
         setup=set_other(lambda w: w.archive("big.npz", parameters=with_nan(np.zeros(26), 5,
                                                                            1e300))),
         only=float32_only),
    Case("load/parameters-of-another-count", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "got float64 of shape (25,)", "must be 26 floats",
         setup=set_other(lambda w: w.archive("short.npz", parameters=np.zeros(25))),
         device=False),
    Case("load/unknown-activation", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "'swish'", "unknown activation",
         setup=set_other(lambda w: w.archive("swish.npz", activations=np.array(["tanh", "swish"]))),
         device=False),
    Case("load/unreadable-file", load_where_reading_is_refused,
         nnfs.NnfsPermissionError, PermissionError, "load", "model.npz", "permission denied",
         device=False),
    Case("load/a-directory", lambda w: nnfs.load(w.dir, w.factory),
         M, ValueError, "load", "is a directory", "an nnfs model file", device=False),
    Case("load/path-not-a-path", lambda w: nnfs.load(42, w.factory),
         T, TypeError, "load: path", "got int", "a file path", device=False),
    Case("load/target-a-backend-name", lambda w: nnfs.load(w.model, "cpu"),
         T, TypeError, "load: the second argument", "got str",
         "a factory (to build a new network) or an inference network", device=False),
    Case("load/into-a-released-network", lambda w: nnfs.load(w.model, w.network),
         R, ValueError, "load: target", "released", "cannot be used",
         setup=release_attribute("network")),
]


# --- damaged and crafted model files (tests/bad_files.py builds them) ---------------------------

def write_bad_file(bad: BadFile):
    """A setup that writes the bad file into the world's directory, as ``world.other``."""

    def setup(w: World) -> None:
        w.other = w.dir / f"{bad.name}{bad.suffix}"
        w.other.write_bytes(bad.make())

    return setup


CASES += [
    Case(f"load/{bad.name}", lambda w: nnfs.load(w.other, w.factory), M, ValueError, "load",
         bad.given, bad.expected, setup=write_bad_file(bad), device=False)
    for bad in MODEL_FILES
]


def special_file(kind: str):
    """A setup that makes ``world.other`` a file of ``kind``: a named pipe (reading it would
    block forever), a symbolic link to /dev/zero (endless) or to itself."""

    def setup(w: World) -> None:
        w.other = w.dir / f"{kind}.npz"
        if kind == "fifo":
            os.mkfifo(w.other)
        elif kind == "device":
            w.other.symlink_to("/dev/zero")
        elif kind == "loop":
            w.other.symlink_to(w.other.name)

    return setup


def long_name(length: int):
    def setup(w: World) -> None:
        w.other = w.dir / ("m" * (length - 4) + ".npz")

    return setup


CASES += [
    Case("load/a-named-pipe", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "is a named pipe (FIFO)", "not a regular file",
         setup=special_file("fifo"), device=False),
    Case("load/a-device-that-never-ends", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "is a character device", "not a regular file",
         setup=special_file("device"), device=False),
    Case("load/a-loop-of-symbolic-links", lambda w: nnfs.load(w.other, w.factory),
         M, ValueError, "load", "loop.npz", "loop of symbolic links",
         setup=special_file("loop"), device=False),
    Case("load/a-path-with-a-nul", lambda w: nnfs.load(str(w.model) + "\0.npz", w.factory),
         V, ValueError, "load: path", "\\x00", "no file name can hold", device=False),
    Case("load/a-path-through-a-file", lambda w: nnfs.load(w.model / "inner.npz", w.factory),
         nnfs.NnfsFileNotFoundError, FileNotFoundError, "load", "inner.npz",
         "a part of its path is not a directory", device=False),
    Case("save/a-name-longer-than-the-filesystem-allows",
         lambda w: nnfs.save(w.network, w.other), V, ValueError, "save", "256 bytes long",
         "allows 255", setup=long_name(256), device=False),
    Case("save/a-path-with-a-nul", lambda w: nnfs.save(w.network, str(w.dir / "m\0.npz")),
         V, ValueError, "save: path", "\\x00", "no file name can hold", device=False),
    Case("save/onto-a-named-pipe", lambda w: nnfs.save(w.network, w.other),
         V, ValueError, "save", "is a named pipe (FIFO)", "not a regular file",
         setup=special_file("fifo"), device=False),
    Case("save/through-a-link-to-a-device", lambda w: nnfs.save(w.network, w.other),
         V, ValueError, "save", "is a character device", "anything but a regular file",
         setup=special_file("device"), device=False),
    Case("save/onto-a-loop-of-symbolic-links", lambda w: nnfs.save(w.network, w.other),
         V, ValueError, "save", "loop.npz", "loop of symbolic links",
         setup=special_file("loop"), device=False),
    Case("save/through-a-link-into-a-missing-directory",
         lambda w: nnfs.save(w.network, w.other), nnfs.NnfsFileNotFoundError,
         FileNotFoundError, "save", "gone/model.npz", "does not exist",
         setup=set_other(lambda w: (w.dir / "link.npz").symlink_to(w.dir / "gone" / "model.npz")
                         or w.dir / "link.npz"), device=False),
]


def _params(device: bool) -> list:
    params = []
    for case in CASES:
        if case.device != device:
            continue
        if device:
            for backend in backend_params():
                params.append(pytest.param(case, backend.values[0], id=f"{case.name}[{backend.id}]",
                                           marks=backend.marks))
        else:
            params.append(pytest.param(case, ("cpu", "float32"), id=case.name))
    return params


@pytest.fixture
def world(request, tmp_path):
    name, dtype = request.param
    built = World(nnfs.backend(name, dtype), tmp_path)
    yield built
    built.release()


def run_case(case: Case, world: World) -> None:
    reason = case.only(world) if case.only else None
    if reason:
        pytest.skip(reason)
    if case.setup is not None:
        case.setup(world)
    before = world.snapshot()
    with pytest.raises(nnfs.NnfsError) as raised:
        case.call(world)
    error = raised.value
    assert type(error) is case.error or isinstance(error, case.error), (
        f"raised {type(error).__name__}, expected {case.error.__name__}: {error}")
    assert isinstance(error, case.builtin), f"{type(error).__name__} is no {case.builtin.__name__}"
    assert issubclass(case.error, case.builtin)
    message = str(error)
    for part, text in (("the argument", case.argument), ("what was given", case.given),
                       ("what was expected", case.expected)):
        text = text(world) if callable(text) else text
        assert text.lower() in message.lower(), f"{part} ({text!r}) is not in: {message}"
    if isinstance(error, nnfs.ModelFileError) and not re.search("object|pickle", case.name):
        assert "Python objects" not in message, f"a wrong file reported as objects: {message}"
    world.assert_unchanged(before)
    assert not (world.dir / "ran").exists(), "code from a file ran"


@pytest.mark.parametrize("case, world", _params(device=True), indirect=["world"])
def test_bad_input_on_every_backend(case: Case, world: World) -> None:
    run_case(case, world)


@pytest.mark.parametrize("case, world", _params(device=False), indirect=["world"])
def test_bad_input(case: Case, world: World) -> None:
    run_case(case, world)


# --- divergence: not bad input, but the same promise of a clear error and a usable network ---


@pytest.mark.parametrize("factory", backend_params(), indirect=True)
def test_sgd_stops_at_divergence_with_the_epoch_the_eta_and_finite_weights(factory):
    # where it diverges, found one epoch at a time after the same first pair
    x, y, network, training = diverging(factory)
    nnfs.sgd(training, y, QC, 2, 1e-4)
    expected_epoch, before = 0, None
    while True:
        expected_epoch += 1
        expected, before = before, nnfs.transfer(network.parameters)
        try:
            nnfs.sgd(training, y, QC, 1, 1.0)
        except nnfs.TrainingDiverged:
            break
        assert expected_epoch < 200, "the replay does not diverge"
    assert expected_epoch > 1, "diverging at once would not show the weights of the epoch before"
    for thing in (training, network, x, y):
        thing.release()
    x, y, network, training = diverging(factory)
    with pytest.raises(nnfs.TrainingDiverged) as raised:
        nnfs.sgd(training, y, QC, [(2, 1e-4), (500, 1.0)])
    error = raised.value
    assert isinstance(error, FloatingPointError)
    assert (error.epoch, error.eta) == (2 + expected_epoch, 1.0)
    assert (f"epoch {2 + expected_epoch} of the schedule (epoch {expected_epoch} of 500 at "
            f"eta=1.0): the cost became inf; the weights are those of epoch "
            f"{1 + expected_epoch}, the last with a finite cost") in str(error)
    weights = nnfs.transfer(network.parameters)
    assert np.all(np.isfinite(weights))
    np.testing.assert_array_equal(weights, expected)
    # and the network goes on: inference is finite, training at a small eta works
    assert np.all(np.isfinite(nnfs.transfer(network(x))))
    nnfs.transfer(np.zeros(network.parameter_count), network.parameters)
    assert math.isfinite(nnfs.sgd(training, y, QC, 3, 1e-4))
    for thing in (training, network, x, y):
        thing.release()


def test_a_queued_backend_finds_the_same_epoch_and_weights_through_a_schedule():
    """A backend that queues its work reads the cost only at the end of each pair; on
    divergence it replays, and must end where a synchronous backend does."""
    from nnfs_cpu import CpuBackend

    results = []
    for factory in (nnfs.backend("cpu", "float64"), queued(CpuBackend, "float64")):
        x, y, network, training = diverging(factory)
        with pytest.raises(nnfs.TrainingDiverged) as raised:
            nnfs.sgd(training, y, QC, [(2, 1e-4), (3, 1e-3), (500, 1.0)])
        results.append((raised.value.epoch, str(raised.value),
                        nnfs.transfer(network.parameters)))
        for thing in (training, network, x, y):
            thing.release()
    (epoch, message, weights), (queued_epoch, queued_message, queued_weights) = results
    assert epoch > 6 and (queued_epoch, queued_message) == (epoch, message)
    np.testing.assert_array_equal(queued_weights, weights)


def fit_replayed_by_sgd(factory, X, Y, batch_size, eta):
    """What fit (in order, no shuffling) should leave when it diverges: the weights of the last
    batch whose cost was finite, found by running each batch as one sgd epoch."""
    with nnfs.inference_network(factory, 4, [fully_connected(8, "relu"),
                                             fully_connected(2, "linear")], seed=0) as network, \
            factory.matrix(4, batch_size) as x, factory.matrix(2, batch_size) as y, \
            nnfs.training_network(network, x) as training:
        before = None
        for epoch in range(1, 100):
            for start in range(0, len(X), batch_size):
                nnfs.transfer(X[start:start + batch_size].T, x)
                nnfs.transfer(Y[start:start + batch_size].T, y)
                previous, before = before, nnfs.transfer(network.parameters)
                try:
                    nnfs.sgd(training, y, QC, 1, eta)
                except nnfs.TrainingDiverged:
                    return epoch, start // batch_size + 1, previous
    raise AssertionError("no divergence to replay")


@pytest.mark.parametrize("batch_size", [8, 40], ids=["five-batches", "one-batch-per-epoch"])
@pytest.mark.parametrize("factory", backend_params(), indirect=True)
def test_fit_stops_at_divergence_with_the_weights_of_the_last_finite_batch(factory, batch_size):
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(40, 4)) * 10, rng.normal(size=(40, 2)) * 10
    eta = 0.05 if batch_size == 8 else 0.2
    epoch, number, expected = fit_replayed_by_sgd(factory, X, Y, batch_size, eta)
    assert expected is not None, "the first batch diverged: nothing to roll back to"
    with nnfs.inference_network(factory, 4, [fully_connected(8, "relu"),
                                             fully_connected(2, "linear")], seed=0) as network:
        with pytest.raises(nnfs.TrainingDiverged) as raised:
            nnfs.fit(network, X, Y, epochs=100, batch_size=batch_size, eta=eta, cost=QC,
                     shuffle=False, quiet=True)
        error = raised.value
        assert isinstance(error, FloatingPointError)
        assert (error.epoch, error.eta) == (epoch, eta)
        batches = 40 // batch_size
        assert (f"fit: training diverged in epoch {epoch} at learning rate eta={eta}: the cost "
                f"of batch {number} of {batches} is ") in str(error)
        last = (epoch, number - 1) if number > 1 else (epoch - 1, batches)
        assert f"those of batch {last[1]} of epoch {last[0]}, the last batch whose cost was " \
            "finite" in str(error)
        weights = nnfs.transfer(network.parameters)
        assert np.all(np.isfinite(weights))
        tolerance = 1e-4 if factory.dtype == "float32" else 1e-10
        np.testing.assert_allclose(weights, expected, rtol=tolerance)
        # the network is whole: it predicts, and trains again from where it stopped
        assert nnfs.predict(network, X).shape == (40, 2)
        start = (last[1] - 1) * batch_size
        rows = slice(start, start + batch_size)
        history = nnfs.fit(network, X[rows], Y[rows], epochs=1, batch_size=batch_size,
                           eta=1e-30, cost=QC, quiet=True)
        assert math.isfinite(history.cost[0])


# --- the command line -------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A bad command line: one line on stderr naming ``argument``, ``given`` and ``expected``,
    exit status ``status`` (1: nnfs refused, 2: argparse refused), no file changed. ``{dir}``
    in the arguments is the directory of the world's files.

    Some bad situations need more than arguments: ``files`` are written into the world first
    (under their own names); ``user`` runs the command as that user (for the refusals root
    never meets: unreadable files, directories it may not write in); ``file_size_limit``
    sets RLIMIT_FSIZE; ``mount`` puts a filesystem on ``{dir}/mnt`` ("tmpfs": 4 KiB;
    "read-only": the directory itself, read-only) in a mount namespace of the command alone;
    ``stdin`` is fed through a pipe (else standard input is /dev/null)."""

    name: str
    arguments: tuple[str, ...]
    argument: str
    given: str
    expected: str
    status: int = 1
    env: tuple[tuple[str, str], ...] = ()
    files: tuple[BadFile, ...] = ()
    user: str | None = None
    file_size_limit: int | None = None
    mount: str | None = None
    stdin: bytes | None = None


TRAIN = ("train", "--quiet", "--epochs", "1", "--data", "{dir}/train.csv", "--layers",
         "8:tanh,2:softmax")

COMMANDS = [
    Command("train/layers-without-activation", (*TRAIN, "--layers", "64-tanh"),
            "--layers", "'64-tanh'", "UNITS:ACTIVATION"),
    Command("train/unknown-activation", (*TRAIN, "--layers", "8:swish,2:softmax"),
            "activation", "'swish'", "one of linear"),
    Command("train/layer-of-zero-units", (*TRAIN, "--layers", "0:tanh,2:softmax"),
            "units", "got 0", "positive"),
    Command("train/too-few-outputs", (*TRAIN, "--layers", "8:tanh,1:sigmoid"),
            "the last layer", "has 1 units", "end --layers with 2:softmax"),
    Command("train/eta-not-a-number", (*TRAIN, "--eta", "fast"),
            "--eta", "'fast'", "a number such as 0.5"),
    Command("train/eta-negative", (*TRAIN, "--eta", "-1"), "eta", "got -1.0", "positive"),
    Command("train/eta-nan", (*TRAIN, "--eta", "nan"), "eta", "got nan", "finite"),
    Command("train/batch-size-zero", (*TRAIN, "--batch-size", "0"),
            "batch_size", "got 0", "positive"),
    Command("train/batch-size-larger-than-the-data", (*TRAIN, "--batch-size", "5000"),
            "batch_size", "is 5000", "give at most"),
    Command("train/epochs-zero", (*TRAIN, "--epochs", "0"), "--epochs", "got 0", "positive"),
    Command("train/epochs-against-the-schedule", (*TRAIN, "--eta", "3:0.1,2:0.05"),
            "--epochs", "--epochs 1", "which has 5 epochs"),
    Command("train/schedule-pair-of-no-epochs", (*TRAIN, "--epochs", "3", "--eta",
                                                 "3:0.1,0:0.05"),
            "schedule[1] epochs", "got 0", "positive"),
    Command("train/epochs-not-an-integer", (*TRAIN, "--epochs", "2.5"),
            "--epochs", "'2.5'", "invalid int value", status=2),
    Command("train/unknown-dtype", (*TRAIN, "--dtype", "float16"),
            "--dtype", "'float16'", "float64", status=2),
    Command("train/unknown-option", (*TRAIN, "--colour", "red"),
            "unrecognized arguments", "--colour red", "--help", status=2),
    Command("train/seed-negative", (*TRAIN, "--seed", "-1"), "--seed", "got -1", "non-negative"),
    Command("train/test-fraction-above-one", (*TRAIN, "--test-fraction", "1.5"),
            "test fraction", "got 1.5", "between 0 and 1"),
    Command("train/checkpoints-without-save", (*TRAIN, "--checkpoint-every", "2"),
            "--checkpoint-every", "2", "needs --save"),
    Command("train/checkpoints-negative",
            (*TRAIN, "--checkpoint-every", "-1", "--save", "{dir}/new.npz"),
            "--checkpoint-every", "got -1", "positive"),
    Command("train/save-into-a-missing-directory", (*TRAIN, "--save", "{dir}/no/model.npz"),
            "--save", "/no", "does not exist"),
    Command("train/missing-data-file", (*TRAIN, "--data", "{dir}/absent.csv"),
            "data file", "absent.csv", "does not exist"),
    Command("train/data-of-unknown-kind", (*TRAIN, "--data", "{dir}/notes.txt"),
            "data file", "notes.txt", "expected a .npz, .csv or MNIST IDX file"),
    Command("train/csv-with-a-word", (*TRAIN, "--data", "{dir}/word.csv"),
            "line 3: column 1 ('b')", "'oops'", "a finite number"),
    Command("train/csv-with-nan", (*TRAIN, "--data", "{dir}/nan.csv"),
            "line 2: column 0 ('a')", "'nan'", "a finite number"),
    Command("train/data-a-pickle", (*TRAIN, "--data", "{dir}/pickled.npz"),
            "pickled.npz", "pickled Python objects", "never loads"),
    Command("train/data-with-an-object-array", (*TRAIN, "--data", "{dir}/objects.npz"),
            "objects.npz", "holds Python objects", "never loads"),
    Command("train/unknown-label-column", (*TRAIN, "--label-column", "colour"),
            "label column", "'colour'", "the header has"),
    Command("train/unknown-backend", (*TRAIN, "--backend", "nosuch"),
            "backend name", "'nosuch'", "installed: "),
    Command("train/diverging", (*TRAIN, "--eta", "1e12", "--layers", "8:relu,2:linear",
                                "--cost", "quadratic", "--no-standardize", "--data",
                                "{dir}/large.csv"),
            "training diverged in epoch 1", "eta=1000000000000.0", "a smaller eta"),
    # a last update that diverges: exit 1, nothing saved (issue #16)
    Command("train/last-update-diverging",
            ("train", "--quiet", "--backend", "cpu", "--data", "{dir}/large.csv", "--layers",
             "8:relu,2:linear", "--cost", "quadratic", "--no-standardize", "--batch-size",
             "32", "--eta", "1:1e-9,1:1e35", "--save", "{dir}/new.npz"),
            "training diverged in epoch 2", "the update of its last batch left parameters",
            "nothing was saved"),
    Command("train/checkpoints-into-a-safetensors-file",
            (*TRAIN, "--save", "{dir}/new.safetensors", "--checkpoint-every", "1"),
            "--checkpoint-every", "only the npz format holds",
            "a name that does not end in .safetensors"),
    Command("train/a-feature-float32-cannot-read", (*TRAIN[:-4], "--data", "{dir}/when.csv"),
            "feature 0 ('when')", "float32 cannot tell its values apart", "--dtype float64"),
    # regression, text labels, delimiters (issue #19)
    Command("train/regression-with-a-softmax-output",
            (*TRAIN[:-4], "--data", "{dir}/prices.csv", "--layers", "8:tanh,2:softmax"),
            "end --layers with 1:linear", "got 2:softmax", "regression trains a linear output"),
    Command("train/regression-with-cross-entropy",
            (*TRAIN[:-4], "--data", "{dir}/prices.csv", "--cost", "cross_entropy"),
            "--cost cross_entropy", "a classifier's", "regression trains on the quadratic cost"),
    Command("train/regression-of-the-digits", ("train", "--quiet", "--task", "regression"),
            "--task regression", "the digits are classes", "needs --data"),
    Command("train/an-unknown-task", (*TRAIN, "--task", "clustering"),
            "--task", "'clustering'", "choose from", status=2),
    Command("train/text-labels-without-an-output-each",
            (*TRAIN[:-4], "--data", "{dir}/animals.csv", "--layers", "8:tanh,2:softmax"),
            "has 3 classes named by text", "the last layer has 2 units",
            "end --layers with 3:softmax"),
    Command("train/a-test-label-the-training-data-lacks",
            (*TRAIN[:-4], "--data", "{dir}/animals.csv", "--layers", "8:tanh,3:softmax",
             "--test-data", "{dir}/owls.csv"),
            "owls.csv", "the label 'owl'", "none of the classes of the training data"),
    Command("train/test-labels-of-numbers-for-text-ones",
            (*TRAIN[:-4], "--data", "{dir}/animals.csv", "--layers", "8:tanh,3:softmax",
             "--test-data", "{dir}/train.csv"),
            "train.csv", "its labels are class numbers", "but those of the training data"),
    Command("predict/probabilities-of-a-regression-model",
            ("predict", "--model", "{dir}/regression.npz", "--data", "{dir}/train.csv",
             "--probabilities"),
            "--probabilities", "is a regression model", "the values it writes"),
] + [
    Command(f"{command}--delimiter/{name}", (*arguments, "--delimiter", delimiter),
            "--delimiter", given, "must be one character")
    for name, delimiter, given in (("two-characters", ";;", "';;'"), ("a-digit", "1", "'1'"),
                                   ("a-quote", '"', "'\"'"), ("a-line-end", "\n", "'\\n'"),
                                   ("a-letter", "e", "'e'"), ("nothing", "", "''"))
    for command, arguments in (("train", TRAIN), ("predict", ("predict", "--model",
                                                              "{dir}/model.npz", "--data",
                                                              "{dir}/train.csv")))
] + [
    Command("predict/missing-model", ("predict", "--model", "{dir}/absent.npz", "--data",
                                      "{dir}/train.csv"),
            "load", "absent.npz", "does not exist"),
    Command("predict/model-not-nnfs", ("predict", "--model", "{dir}/notes.txt", "--data",
                                       "{dir}/train.csv"),
            "load", "notes.txt", "not an nnfs model file"),
    Command("predict/model-a-pickle", ("predict", "--model", "{dir}/pickled.npz", "--data",
                                       "{dir}/train.csv"),
            "load", "pickled Python objects", "never loads"),
    Command("predict/data-of-other-features", ("predict", "--model", "{dir}/model.npz",
                                               "--data", "{dir}/five.csv"),
            "five.csv", "has 5 features per sample", "takes 3"),
    Command("predict/output-into-a-missing-directory",
            ("predict", "--model", "{dir}/model.npz", "--data", "{dir}/train.csv", "--output",
             "{dir}/no/predictions.csv"),
            "--output", "/no", "does not exist"),
    Command("predict/without-a-model", ("predict", "--data", "{dir}/train.csv"),
            "--model", "the following arguments are required", "--help", status=2),
    Command("bench/repeats-zero", ("bench", "--repeats", "0"), "--repeats", "got 0", "positive"),
    Command("bench/unknown-preset", ("bench", "huge"),
            "preset", "'huge'", "choose from", status=2),
    Command("demo/unknown-backend", ("demo", "--backend", "nosuch"),
            "backend name", "'nosuch'", "installed: "),
    Command("demo/environment-names-an-unknown-backend", ("demo",),
            "NNFS_BACKEND", "'nosuch'", "installed: ", env=(("NNFS_BACKEND", "nosuch"),)),
]


# --- the same refusals on every path a file takes into the command line ------------------------

#: The good files of the world, next to which the bad ones go.
GOOD = {"csv": "{dir}/train.csv", "model": "{dir}/model.npz",
        "images": "{dir}/good-images-idx3-ubyte"}
PREDICT = ("predict", "--model", GOOD["model"])


def bad_name(bad: BadFile) -> str:
    """The file name a bad file gets in the world: IDX files as MNIST names them."""
    if bad.suffix.startswith("-"):
        return f"{bad.name}{bad.suffix}"
    return f"{bad.name}{bad.suffix}"


def data_slots(bad: BadFile) -> list[tuple[str, tuple[str, ...]]]:
    """Every option through which a command reads a data file, with the bad file in it."""
    path = "{dir}/" + bad_name(bad)
    return [("train--data", (*TRAIN[:-4], "--layers", "8:tanh,2:softmax", "--data", path)),
            ("train--test-data", (*TRAIN, "--test-data", path)),
            ("predict--data", (*PREDICT, "--data", path))]


#: Labels files of MNIST's IDX format that are wrong for the good 4 images beside them.
LABELS_FILES = [
    BadFile("labels-of-the-wrong-count", lambda: idx_bytes(np.zeros(5)),
            "hold shape (5,)", "expected 4 labels", "-labels-idx1-ubyte"),
    BadFile("labels-holding-images", lambda: idx_bytes(np.zeros((4, 2, 2))),
            "holds an array of shape (4, 2, 2)", "expected labels", "-labels-idx1-ubyte"),
    BadFile("labels-gz-damaged", lambda: gzip.compress(idx_bytes(np.zeros(4)))[:-9] + b"\xff" * 9,
            "IDX file", "damaged", "-labels-idx1-ubyte.gz"),
    BadFile("labels-beyond-the-header", lambda: idx_bytes(np.zeros(4)) + b"\x01",
            "promises 4 bytes of data for shape (4,)", "the file has 5", "-labels-idx1-ubyte"),
]


def labels_slots(bad: BadFile) -> list[tuple[str, tuple[str, ...]]]:
    path = "{dir}/" + bad_name(bad)
    layers = ("--layers", "8:tanh,2:softmax")
    return [("train--labels", ("train", "--quiet", "--epochs", "1", *layers, "--data",
                               GOOD["images"], "--labels", path)),
            ("train--test-labels", (*TRAIN, "--test-data", GOOD["images"], "--test-labels", path)),
            ("predict--labels", (*PREDICT, "--data", GOOD["images"], "--labels", path))]


def idx_labels_beside(bad: BadFile) -> tuple[BadFile, ...]:
    """An IDX images file needs its labels file beside it, named after it: 4 good labels."""
    if "-images-idx3-ubyte" not in bad.suffix:
        return ()
    suffix = bad.suffix.replace("images-idx3", "labels-idx1")
    raw = idx_bytes(np.zeros(4))
    good = raw if not suffix.endswith(".gz") else gzip.compress(raw)
    return (BadFile(bad.name, lambda good=good: good, "", "", suffix),)


COMMANDS += [
    Command(f"{slot}/{bad.name}", arguments, bad.name, bad.given, bad.expected,
            files=(bad, *idx_labels_beside(bad)))
    for bad in DATA_FILES for slot, arguments in data_slots(bad)
]
COMMANDS += [
    Command(f"{slot}/{bad.name}", arguments, bad.name, bad.given, bad.expected, files=(bad,))
    for bad in LABELS_FILES for slot, arguments in labels_slots(bad)
]
COMMANDS += [
    Command(f"predict--model/{bad.name}", ("predict", "--model", "{dir}/" + bad_name(bad),
                                           "--data", GOOD["csv"]),
            bad.name, bad.given, bad.expected, files=(bad,))
    for bad in MODEL_FILES
] + [
    Command(f"export--model/{bad.name}", ("export", "--model", "{dir}/" + bad_name(bad),
                                          "--onnx", "{dir}/m.onnx"),
            bad.name, bad.given, bad.expected, files=(bad,))
    for bad in MODEL_FILES
]

#: --layers that str.isdigit or int() would take, or that are no layers at all.
BAD_LAYERS = {"a-superscript-two": "²:relu,2:softmax", "arabic-indic-digits": "٣:relu,2:softmax",
              "units-in-e-notation": "1e3:relu,2:softmax", "no-units": ":relu,2:softmax",
              "no-activation": "8:,2:softmax", "three-parts": "8:tanh:x,2:softmax",
              "an-empty-layer": "8:tanh,,2:softmax", "nothing": ""}
COMMANDS += [
    Command(f"train--layers/{name}", (*TRAIN, "--layers", text), "--layers", repr(
        text.split(",")[0] if name != "an-empty-layer" else ""), "UNITS:ACTIVATION")
    for name, text in BAD_LAYERS.items()
]


def outputs(path: str) -> list[tuple[str, tuple[str, ...], str]]:
    """Every option through which a command writes a file, with ``path`` there."""
    return [("train--save", (*TRAIN, "--save", path), "--save"),
            ("train--plot", (*TRAIN, "--plot", path), "--plot"),
            ("predict--output", (*PREDICT, "--data", GOOD["csv"], "--output", path), "--output"),
            ("export--onnx", ("export", "--model", GOOD["model"], "--onnx", path), "--onnx")]


#: Where no file can be written, and what the refusal says.
BAD_DESTINATIONS = {
    "a-directory": ("{dir}", "is a directory", "expected a file name"),
    "a-link-to-a-device": ("{dir}/null.npz", "is a character device", "not a regular file"),
    "a-named-pipe": ("{dir}/pipe.npz", "is a named pipe (FIFO)", "not a regular file"),
    "a-loop-of-links": ("{dir}/loop.npz", "loop.npz", "loop of symbolic links"),
    "a-name-of-256-bytes": ("{dir}/" + "m" * 252 + ".npz", "256 bytes long", "allows 255"),
    "a-link-into-a-missing-directory": ("{dir}/dangling.npz", "gone", "does not exist"),
}
COMMANDS += [
    Command(f"{slot}/{name}", arguments, option, given, expected)
    for name, (path, given, expected) in BAD_DESTINATIONS.items()
    for slot, arguments, option in outputs(path)
]

#: A model of 12,002 parameters: more than a 4 KiB filesystem or a 2000-byte file can hold.
WIDE = ("--layers", "2000:tanh,2:softmax")
COMMANDS += [
    Command(f"{slot}/into-a-read-only-filesystem", arguments, option, "mnt",
            "filesystem is read-only", mount="read-only")
    for slot, arguments, option in outputs("{dir}/mnt/new.file")
] + [
    Command(f"{slot}/into-a-directory-the-user-may-not-write", arguments, option,
            "locked", "permission denied", user="nobody")
    for slot, arguments, option in outputs("{dir}/locked/new.file")
] + [
    Command("train--save/larger-than-the-free-space", (*TRAIN, *WIDE, "--save",
                                                       "{dir}/mnt/model.npz"),
            "--save", "would be about", "free", mount="tmpfs"),
    Command("train--save/larger-than-the-file-size-limit",
            (*TRAIN, *WIDE, "--save", "{dir}/new.npz"), "--save", "would be about",
            "may write files of at most 2000 bytes", file_size_limit=2000),
    Command("predict--output/filling-the-disk",
            (*PREDICT, "--data", "{dir}/many.csv", "--output", "{dir}/mnt/p.csv"),
            "--output", "the disk is full", "no space left", mount="tmpfs"),
    Command("predict--output/beyond-the-file-size-limit",
            (*PREDICT, "--data", "{dir}/many.csv", "--output", "{dir}/p.csv"),
            "--output", "file would be larger", "file-size limit", file_size_limit=2000),
    Command("train--data/a-file-the-user-may-not-read", (*TRAIN[:-4], "--data", "{dir}/secret.csv"),
            "secret.csv", "cannot be read", "permission denied", user="nobody"),
    Command("train--test-data/a-file-the-user-may-not-read",
            (*TRAIN, "--test-data", "{dir}/secret.csv"), "secret.csv", "cannot be read",
            "permission denied", user="nobody"),
    Command("predict--data/a-file-the-user-may-not-read",
            (*PREDICT, "--data", "{dir}/secret.csv"), "secret.csv", "cannot be read",
            "permission denied", user="nobody"),
    Command("predict--model/a-file-the-user-may-not-read",
            ("predict", "--model", "{dir}/secret.npz", "--data", GOOD["csv"]), "secret.npz",
            "cannot be read", "permission denied", user="nobody"),
    Command("train--data/in-a-directory-the-user-may-not-enter",
            (*TRAIN[:-4], "--data", "{dir}/private/train.csv"), "private/train.csv",
            "cannot be reached", "permission denied", user="nobody"),
    Command("predict--model/in-a-directory-the-user-may-not-enter",
            ("predict", "--model", "{dir}/private/model.npz", "--data", GOOD["csv"]),
            "private/model.npz", "cannot be reached", "permission denied", user="nobody"),
    Command("predict--model/standard-input-a-pipe",
            ("predict", "--model", "/dev/stdin", "--data", GOOD["csv"]), "/dev/stdin",
            "is a named pipe (FIFO)", "not a regular file", stdin=b"PK\x03\x04" + bytes(100)),
    Command("predict--model/standard-input-a-device",
            ("predict", "--model", "/dev/stdin", "--data", GOOD["csv"]), "/dev/stdin",
            "is a character device", "not a regular file"),
    Command("predict--data/a-named-pipe", (*PREDICT, "--data", "{dir}/pipe.csv"), "pipe.csv",
            "is a named pipe (FIFO)", "not a regular file"),
    Command("train--data/a-link-to-an-endless-device", (*TRAIN[:-4], "--data",
                                                        "{dir}/zero.csv"),
            "zero.csv", "is a character device", "not a regular file"),
    Command("train--data/a-directory", (*TRAIN[:-4], "--data", "{dir}/folder.csv"),
            "folder.csv", "is a directory", "not a data file"),
]


@pytest.fixture
def command_world(tmp_path_factory) -> Path:
    """The files the bad command lines name: data sets, a model, files that are no model, and
    the special ones (a pipe, links to a device, to nowhere and to themselves, a directory
    nobody may write in, one nobody may enter, files nobody may read). It lies in a
    directory every user may enter (pytest's own are root's alone), for the commands run as
    another user."""
    root = Path(tempfile.mkdtemp(prefix="nnfs-bad-commands-"))
    root.chmod(0o755)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    labels = (X[:, 0] > 0).astype(int)
    for name, scale in (("train.csv", 1.0), ("large.csv", 1e3)):
        rows = [",".join(f"{value * scale:.4f}" for value in row) + f",{label}"
                for row, label in zip(X, labels, strict=True)]
        (root / name).write_text("\n".join(["a,b,c,label", *rows]) + "\n")
    (root / "many.csv").write_text("\n".join(f"{i % 7},{i % 5},{i % 3}" for i in range(3000)))
    (root / "prices.csv").write_text("a,b,c,price\n" + "".join(
        f"{a:.4f},{b:.4f},{c:.4f},{1000 + 100 * a + 0.5:.2f}\n" for a, b, c in X))
    names = np.where(X[:, 0] > 0.5, "zebra", np.where(X[:, 1] > 0, "cat", "emu"))
    (root / "animals.csv").write_text("a,b,c,animal\n" + "".join(
        f"{a:.4f},{b:.4f},{c:.4f},{n}\n" for (a, b, c), n in zip(X, names, strict=True)))
    (root / "owls.csv").write_text("a,b,c,animal\n1,2,3,cat\n4,5,6,owl\n")
    (root / "when.csv").write_text("when,x,label\n" + "".join(
        f"{1e9 + a * 0.01:.17g},{b:.4f},{int(b > 0)}\n" for a, b, _ in X))
    (root / "word.csv").write_text("a,b,label\n1,2,0\n3,oops,1\n")
    (root / "nan.csv").write_text("a,b,label\nnan,2,0\n3,4,1\n")
    (root / "five.csv").write_text("1,2,3,4,5\n6,7,8,9,10\n")
    (root / "notes.txt").write_text("hello")
    (root / "pickled.npz").write_bytes(pickle.dumps(Exploit(root / "ran")))
    np.savez(root / "objects.npz", X=np.array([Exploit(root / "ran")], object),
             y=np.zeros(1))
    with nnfs.inference_network(nnfs.backend("cpu"), 3, [fully_connected(2, "softmax")]) as net:
        nnfs.save(net, root / "model.npz")
    with nnfs.inference_network(nnfs.backend("cpu"), 3, [fully_connected(1, "linear")]) as net:
        nnfs.save(net, root / "regression.npz", task="regression")
    (root / "good-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((4, 1, 3))))
    (root / "good-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4)))
    os.mkfifo(root / "pipe.npz")
    os.mkfifo(root / "pipe.csv")
    (root / "null.npz").symlink_to("/dev/null")
    (root / "zero.csv").symlink_to("/dev/zero")
    (root / "loop.npz").symlink_to("loop.npz")
    (root / "dangling.npz").symlink_to(root / "gone" / "model.npz")
    (root / "folder.csv").mkdir()
    for name in ("locked", "mnt"):
        (root / name).mkdir()
        (root / name).chmod(0o555)
    (root / "private").mkdir(mode=0o700)
    for source, name in (("train.csv", "private/train.csv"), ("model.npz", "private/model.npz"),
                         ("train.csv", "secret.csv"), ("model.npz", "secret.npz")):
        shutil.copy(root / source, root / name)
    (root / "secret.csv").chmod(0)
    (root / "secret.npz").chmod(0)
    yield root
    (root / "locked").chmod(0o755)
    shutil.rmtree(root)


def files(directory: Path) -> dict[str, bytes]:
    """Every regular file under ``directory`` and its bytes (special files as their kind)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(directory))] = os.readlink(path).encode()
        elif path.is_file():
            found[str(path.relative_to(directory))] = path.read_bytes()
        elif not path.is_dir():
            kind = oct(path.lstat().st_mode).encode()
            found[str(path.relative_to(directory))] = b"special " + kind
    return found


#: How each mount of Command.mount is made, in the command's own mount namespace: $1 is the
#: directory, and the rest the command.
MOUNTS = {
    "tmpfs": 'mount -t tmpfs -o size=4k nnfs-test "$1" && shift && exec "$@"',
    "read-only": 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"',
}


def _cannot_run(command: Command) -> str | None:
    """Why this machine cannot set up the command's situation, or None."""
    if command.user is not None:
        if os.geteuid() != 0:
            return None  # already a user: the refusals happen as they are
        if shutil.which("setpriv") is None:
            return "running as another user needs setpriv (util-linux), which is not here"
        entry = pwd.getpwnam(command.user)
        probe = subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                                "--clear-groups", sys.executable, "-c", ""],
                               capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:  # a Python under a folder only root may enter
            return f"{command.user} cannot run this Python: {probe.stderr.strip()}"
    if command.mount is not None:
        if os.geteuid() != 0:
            return f"a {command.mount} mount needs root (to mount in a namespace of its own)"
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                MOUNTS[command.mount], "sh", tempfile.gettempdir(), "true"],
                               capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            return f"this machine cannot mount {command.mount} here: {probe.stderr.strip()}"
    return None


def in_situation(argv: list[str], world: Path, *, user: str | None = None,
                 mount: str | None = None, file_size_limit: int | None = None,
                 stdin: bytes | None = None, env: dict | None = None,
                 **popen) -> subprocess.CompletedProcess:
    """Run ``argv`` as ``user``, with ``mount`` on ``world``/mnt in a mount namespace of its
    own, under RLIMIT_FSIZE ``file_size_limit``, with ``stdin`` through a pipe (else
    /dev/null), and NNFS_* variables only from ``env``."""
    if user is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        argv = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                "--clear-groups", *argv]
    if mount is not None:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", MOUNTS[mount],
                "sh", str(world / "mnt"), *argv]
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("NNFS_")}
    environment.update(env or {}, HOME=str(world), MPLCONFIGDIR=str(world / "mpl"))

    then = popen.pop("preexec_fn", None)

    def prepare() -> None:
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
        if then is not None:
            then()

    popen.setdefault("capture_output", "stdout" not in popen and "stderr" not in popen)
    return subprocess.run(argv, input=stdin, env=environment, timeout=120,
                          stdin=subprocess.DEVNULL if stdin is None else None,
                          preexec_fn=prepare, **popen)


def run_command(command: Command, world: Path) -> subprocess.CompletedProcess:
    """Run ``nnfs`` with the command's arguments, in its situation."""
    argv = [sys.executable, "-m", "nnfs",
            *[argument.format(dir=world) for argument in command.arguments]]
    return in_situation(argv, world, user=command.user, mount=command.mount,
                        file_size_limit=command.file_size_limit, stdin=command.stdin,
                        env=dict(command.env))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.name)
def test_bad_command_line(command: Command, command_world: Path) -> None:
    reason = _cannot_run(command)
    if reason:
        pytest.skip(reason)
    for bad in command.files:
        (command_world / bad_name(bad)).write_bytes(bad.make())
    before = files(command_world)
    result = run_command(command, command_world)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == command.status, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith(f"nnfs {command.arguments[0]}: error: "), lines[0]
    for part, text in (("the argument", command.argument), ("what was given", command.given),
                       ("what was expected", command.expected)):
        assert text.lower() in lines[0].lower(), f"{part} ({text!r}) is not in: {lines[0]}"
    assert not (command_world / "ran").exists(), "code from a file ran"
    assert files(command_world) == before, "the command changed, made or removed files"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is no device any more"


# --- standard output and standard error closed or full, for every command ---------------------

#: Command lines of every command on each of its paths: "ok" (results on stdout), "quiet"
#: (nothing on stdout: predict --output), "error" (nnfs refuses: exit 1), "usage" (argparse
#: refuses: exit 2).
STREAM_COMMANDS = [
    ("backends", ("backends",), "ok"),
    ("backends-json", ("backends", "--json"), "ok"),
    ("backends-usage", ("backends", "--colour"), "usage"),
    ("train", (*TRAIN, "--save", "{dir}/new.npz"), "ok"),
    ("train-error", (*TRAIN[:-4], "--data", "{dir}/absent.csv"), "error"),
    ("train-usage", (*TRAIN, "--epochs", "x"), "usage"),
    ("predict", (*PREDICT, "--data", GOOD["csv"]), "ok"),
    ("predict-output", (*PREDICT, "--data", GOOD["csv"], "--output", "{dir}/p.csv"), "quiet"),
    ("predict-error", (*PREDICT, "--data", "{dir}/absent.csv"), "error"),
    ("predict-usage", ("predict", "--data", GOOD["csv"]), "usage"),
    ("export", ("export", "--model", GOOD["model"], "--onnx", "{dir}/m.onnx"), "ok"),
    ("export-error", ("export", "--model", "{dir}/absent.npz", "--onnx", "{dir}/m.onnx"),
     "error"),
    ("export-usage", ("export", "--model", GOOD["model"]), "usage"),
    ("bench", ("bench", "tiny", "--epochs", "2", "--repeats", "1"), "ok"),
    ("bench-error", ("bench", "tiny", "--repeats", "0"), "error"),
    ("bench-usage", ("bench", "huge"), "usage"),
    ("demo", ("demo",), "ok"),
    ("demo-error", ("demo", "--backend", "nosuch"), "error"),
    ("demo-usage", ("demo", "--colour", "red"), "usage"),
    ("version", ("--version",), "ok"),
    ("help", ("--help",), "ok"),
]
#: What standard output or error is: closed (the descriptor is not open), or /dev/full.
STREAMS = ("stdout-closed", "stdout-full", "stderr-closed")


def _expected_status(kind: str, stream: str) -> int:
    if kind == "usage":
        return 2
    if kind == "error":
        return 1
    return 1 if stream.startswith("stdout") and kind == "ok" else 0


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("name, arguments, kind", STREAM_COMMANDS,
                         ids=[name for name, _, _ in STREAM_COMMANDS])
def test_standard_streams_closed_or_full(name, arguments, kind, stream, command_world):
    """Every command, on each of its paths, with stdout closed or full, or stderr closed: the
    right exit status; on stderr one line (no traceback), saying so when the results could
    not be written; stdout never holds an error; and the work done (a model saved) stands."""
    argv = [sys.executable, "-m", "nnfs", *[a.format(dir=command_world) for a in arguments]]
    descriptor = 1 if stream.startswith("stdout") else 2
    full = open("/dev/full", "w") if stream == "stdout-full" else None  # noqa: SIM115
    try:
        popen = {"stderr": subprocess.PIPE, "stdout": subprocess.PIPE}
        if full is not None:
            popen["stdout"] = full
        if stream.endswith("closed"):
            popen["preexec_fn"] = lambda: os.close(descriptor)
        result = in_situation(argv, command_world, **popen)
    finally:
        if full is not None:
            full.close()
    stdout = (result.stdout or b"").decode(errors="replace")
    stderr = (result.stderr or b"").decode(errors="replace")
    assert result.returncode == _expected_status(kind, stream), stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert "error" not in stdout.lower() or name.startswith("help"), stdout
    lines = stderr.splitlines()
    if stream == "stderr-closed":
        assert lines == []
        assert bool(stdout) == (kind == "ok"), stdout
    elif result.returncode != 0:
        reports = [line for line in lines if not line.startswith("accuracy:")]  # predict's
        assert len(reports) == 1, stderr
        if kind == "ok":
            words = ("standard output is closed" if stream == "stdout-closed"
                     and name not in ("version", "help") else "cannot write to standard output")
            assert words in reports[0], reports[0]
    else:
        assert all(line.startswith("accuracy:") for line in lines), stderr
    if name == "train" and stream != "stdout-closed":
        with nnfs.load(command_world / "new.npz", nnfs.backend("cpu")) as network:
            assert network.in_dim == 3  # the model was saved, whatever became of stdout
    if name == "predict-output":
        assert (command_world / "p.csv").read_text().startswith("label\n")


# --- the API's files in bad situations: a full disk, a read-only filesystem, limits, users ----

@dataclass(frozen=True)
class Situation:
    """``code`` (Python, ``{dir}`` the world's directory, ``net`` a network of 12,002
    parameters) must raise ``error``, also a ``builtin``, whose message holds ``given`` and
    ``expected``, when run in the situation (see :func:`in_situation`). ``after`` (Python)
    then prints what must hold afterwards, as ``after_result``."""

    name: str
    code: str
    error: str
    builtin: str
    given: str
    expected: str
    user: str | None = None
    mount: str | None = None
    file_size_limit: int | None = None
    before: str = ""
    after: str = "sorted(os.listdir({dir!r} + '/mnt'))"
    after_result: object = None


SAVE_BIG = "nnfs.save(net, {dir!r} + '/mnt/model.npz')"
SITUATIONS = [
    Situation("save/into-a-read-only-filesystem", SAVE_BIG, "NnfsOSError", "OSError", "mnt",
              "filesystem is read-only", mount="read-only", after_result=[]),
    Situation("save/onto-a-full-disk-over-an-old-model", SAVE_BIG, "NnfsOSError", "OSError",
              "the disk is full", "no space left on the device", mount="tmpfs",
              before="nnfs.save(small, {dir!r} + '/mnt/model.npz')",
              after="[sorted(os.listdir({dir!r} + '/mnt')), "
                    "nnfs.load({dir!r} + '/mnt/model.npz', cpu).parameter_count]",
              after_result=[["model.npz"], 6]),
    Situation("save/beyond-the-file-size-limit", "nnfs.save(net, {dir!r} + '/new.npz')",
              "NnfsOSError", "OSError", "new.npz", "file-size limit", file_size_limit=4000,
              after="[n for n in os.listdir({dir!r}) if 'new.npz' in n]", after_result=[]),
    Situation("save/into-a-directory-the-user-may-not-write",
              "nnfs.save(net, {dir!r} + '/locked/model.npz')", "NnfsPermissionError",
              "PermissionError", "locked", "permission denied", user="nobody",
              after="os.listdir({dir!r} + '/locked')", after_result=[]),
    Situation("load/a-file-the-user-may-not-read", "nnfs.load({dir!r} + '/secret.npz', cpu)",
              "NnfsPermissionError", "PermissionError", "secret.npz",
              "cannot be read (permission denied)", user="nobody", after="None"),
    Situation("load/in-a-directory-the-user-may-not-enter",
              "nnfs.load({dir!r} + '/private/model.npz', cpu)", "NnfsPermissionError",
              "PermissionError", "private/model.npz", "cannot be reached", user="nobody",
              after="None"),
]

_SITUATION_SCRIPT = """
import json, os, nnfs
cpu = nnfs.backend("cpu")
small = nnfs.inference_network(cpu, 2, [nnfs.fully_connected(2, "tanh")], seed=0)
net = nnfs.inference_network(cpu, 3, [nnfs.fully_connected(2000, "tanh"),
                                      nnfs.fully_connected(2, "softmax")], seed=0)
{before}
try:
    {code}
    raised = None
except Exception as error:
    raised = {{"type": type(error).__name__, "message": str(error),
              "bases": [kind.__name__ for kind in type(error).__mro__]}}
print(json.dumps({{"raised": raised, "after": {after}}}))
"""


@pytest.mark.parametrize("situation", SITUATIONS, ids=lambda situation: situation.name)
def test_files_in_bad_situations(situation: Situation, command_world: Path) -> None:
    reason = _cannot_run(Command(situation.name, (), "", "", "", user=situation.user,
                                 mount=situation.mount))
    if reason:
        pytest.skip(reason)
    where = str(command_world)
    script = _SITUATION_SCRIPT.format(before=situation.before.format(dir=where),
                                      code=situation.code.format(dir=where),
                                      after=situation.after.format(dir=where))
    before = files(command_world)
    result = in_situation([sys.executable, "-c", script], command_world, user=situation.user,
                          mount=situation.mount, file_size_limit=situation.file_size_limit)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout.decode().splitlines()[-1])
    raised = report["raised"]
    assert raised is not None, "nothing was raised"
    assert raised["type"] == situation.error and situation.builtin in raised["bases"], raised
    assert "NnfsError" in raised["bases"]
    for part, text in (("what was given", situation.given), ("what was expected",
                                                             situation.expected)):
        assert text.lower() in raised["message"].lower(), f"{part} ({text!r}): {raised}"
    assert report["after"] == situation.after_result
    assert files(command_world) == before


#: What the catalogue holds, by table: each entry is one distinct bad input or situation.
def catalogue_size() -> dict[str, int]:
    return {"calls": len(CASES), "device": sum(case.device for case in CASES),
            "commands": len(COMMANDS), "streams": len(STREAM_COMMANDS) * len(STREAMS),
            "situations": len(SITUATIONS)}


def test_the_guide_counts_the_cases():
    """The guide's "What nnfs promises" (docs/guide/promises.md) quotes the size of this
    catalogue."""
    readme = (ROOT / "docs" / "guide" / "promises.md").read_text(encoding="utf-8")
    quoted = {
        "cases": r"\*\*(\d+) cases\*\*",
        "calls": r"\*\*(\d+) calls of the API\*\*",
        "device": r"\*\*(\d+) of them run on every\s+backend and dtype\*\*",
        "commands": r"\*\*(\d+) command lines\*\*",
        "streams": r"\*\*(\d+) runs of\s+every\s+command\s+with\s+its\s+standard\s+output\s+or"
                   r"\s+error\s+closed\s+or\s+full\*\*",
        "situations": r"\*\*(\d+) file operations in\s+bad situations\*\*",
    }
    found = {}
    for key, pattern in quoted.items():
        match = re.search(pattern, readme)
        assert match, f"promises.md does not quote the number of {key} ({pattern})"
        found[key] = int(match.group(1))
    actual = catalogue_size()
    actual["cases"] = actual["calls"] + actual["commands"] + actual["streams"] \
        + actual["situations"]
    assert found == actual
    assert actual["cases"] >= 40


if __name__ == "__main__":  # python tests/test_bad_input.py: the size of the catalogue
    sizes = catalogue_size()
    print(", ".join(f"{key}: {value}" for key, value in sizes.items()),
          f"(in all {sizes['calls'] + sizes['commands'] + sizes['streams'] + sizes['situations']})")
