"""Checkpoints: everything ``fit`` needs to continue a run exactly, as host arrays.

``fit(..., checkpoint="run.npz")`` writes one after every epoch (``Checkpoints(path, every=N)``
for every N), whole or not at all; ``fit(..., resume="run.npz")`` continues from it, and a run
interrupted and resumed ends with the weights of the uninterrupted run, bit for bit on the cpu
backend. A checkpoint is a model file of format version 2 (see :mod:`nnfs.io`; ``nnfs.load``
reads its model) with these entries beside the model's:

==========================  ========================  ==========================================
entry                       type                      meaning
==========================  ========================  ==========================================
``checkpoint_epoch``        int                       epochs done
``checkpoint_steps``        int                       batches done (dropout's step counter)
``checkpoint_order``        int array, one a sample   the visiting order after the last shuffle
``checkpoint_shuffle``      6 uint64                  the shuffling generator's state (PCG64:
                                                      state and increment in two halves each,
                                                      has_uint32, uinteger)
``checkpoint_seeds``        2 ints                    fit's seed (−1 for None), dropout's key
``checkpoint_run``          4 ints                    batch size, samples, the data's checksum,
                                                      whether it shuffles
``optimizer``               string                    its kind: sgd, momentum, nesterov, adam,
                                                      adamw
``optimizer_settings``      floats                    eta, momentum, nesterov, weight decay,
                                                      beta1, beta2, eps (0 where unused)
``optimizer_step``          int                       updates done (Adam's t)
``optimizer_state``         floats, state × params    velocity, or first and second moments
``schedule``                string                    the schedule, as its repr
``schedule_state``          floats                    what it carries (reduce-on-plateau's
                                                      rate, best, bad epochs, cooldown)
``early_stopping``          string                    its repr, or empty
``early_stopping_state``    4 floats                  best, best epoch (0: none), wait, kept
``best_parameters``         floats                    the best epoch's weights (restore_best)
``history_*``               floats                    cost, validation_cost,
                                                      validation_accuracy, eta per epoch
==========================  ========================  ==========================================

Loading never unpickles or runs anything, and every entry is checked (type, shape, size,
values) before anything is changed; resuming refuses, before any work, a checkpoint of another
architecture, dtype, optimizer, schedule, early stopping, batch size or data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _args
from .errors import ModelFileError, NnfsTypeError, NnfsValueError

if TYPE_CHECKING:
    from collections.abc import Callable

    from .fit import FitArguments, History, _Progress
    from .optimizers import Optimizer
    from .training import TrainingNetwork

#: The names of the optimizer's settings, in the order of ``optimizer_settings``.
OPTIMIZER_SETTINGS = ("eta", "momentum", "nesterov", "weight_decay", "beta1", "beta2", "eps")
#: The figures of a History a checkpoint holds, each as ``history_<name>``.
HISTORY = ("cost", "validation_cost", "validation_accuracy", "eta")
#: The entries a checkpoint adds to a model file.
ENTRIES = ("checkpoint_epoch", "checkpoint_steps", "checkpoint_order", "checkpoint_shuffle",
           "checkpoint_seeds", "checkpoint_run", "optimizer", "optimizer_settings",
           "optimizer_step", "optimizer_state", "schedule", "schedule_state", "early_stopping",
           "early_stopping_state", "best_parameters",
           *(f"history_{name}" for name in HISTORY))
#: The longest text entry of a checkpoint (a schedule's or early stopping's repr).
MAX_TEXT = 1024


@dataclass(frozen=True)
class Checkpoints:
    """Where and how often ``fit`` writes its checkpoints: ``path`` after every ``every``
    epochs (and after the last one). ``model`` (optional) maps the training weights, a host
    array, to those stored as the model's ``parameters`` (``nnfs train`` folds its
    standardization in there); the training weights are then kept as ``training_parameters``,
    which resuming reads."""

    path: str | os.PathLike[str]  # a Path once made
    every: int = 1
    model: Callable[[np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, (str, os.PathLike)):
            raise NnfsTypeError(f"fit: checkpoint must be a file path or "
                                f"nnfs.checkpoints.Checkpoints(path, every), got "
                                f"{type(self.path).__name__} {self.path!r}")
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "every", _args.count(self.every, "Checkpoints: every"))
        if self.model is not None and not callable(self.model):
            raise NnfsTypeError("Checkpoints: model must be a function of the host parameters")


def checkpoints(value: str | os.PathLike[str] | Checkpoints | None) -> Checkpoints | None:
    """fit's ``checkpoint`` argument, checked."""
    if value is None or isinstance(value, Checkpoints):
        return value
    return Checkpoints(value)


def data_checksum(x: np.ndarray) -> int:
    """The checksum of a few evenly spaced rows of the training data (as data-parallel fit
    compares them across ranks)."""
    from .hostdata import fingerprint

    return fingerprint(x)


def _settings(optimizer: Optimizer) -> np.ndarray:
    found = optimizer.settings()
    if "beta1" not in found:
        found = {**found, "beta1": 0.0, "beta2": 0.0, "eps": 0.0}
    found.setdefault("momentum", 0.0)
    found.setdefault("nesterov", False)
    return np.array([float(found[name]) for name in OPTIMIZER_SETTINGS])


def _shuffle_state(rng: np.random.Generator) -> np.ndarray:
    state = rng.bit_generator.state
    if state.get("bit_generator") != "PCG64":  # numpy's default_rng; nothing else is made
        raise NnfsValueError(f"checkpoint: the shuffling generator is {state.get('bit_generator')}")
    inner, low = state["state"], (1 << 64) - 1
    return np.array([inner["state"] >> 64, inner["state"] & low, inner["inc"] >> 64,
                     inner["inc"] & low, state["has_uint32"], state["uinteger"]], np.uint64)


def _shuffle_generator(values: np.ndarray) -> np.random.Generator:
    words = [int(v) for v in values]
    rng = np.random.default_rng(0)
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (words[0] << 64) | words[1], "inc": (words[2] << 64) | words[3]},
        "has_uint32": words[4], "uinteger": words[5]}
    return rng


def capture(arguments: FitArguments, training: TrainingNetwork, progress: _Progress,
            history: History) -> dict[str, np.ndarray]:
    """The checkpoint entries of a fit between epochs (reads the device)."""
    factory = training.factory
    optimizer = progress.optimizer
    count = arguments.network.parameter_count
    state = (np.stack([factory.to_host(v) for v in optimizer.vectors]) if optimizer is not None
             and optimizer.vectors else np.zeros((0, count), factory.numpy_dtype))
    stopping = progress.stopping
    if stopping is None:
        stopping_state = np.zeros(4)
        best = np.zeros(0, factory.numpy_dtype)
    else:
        stopping_state = np.array([stopping.best, stopping.best_epoch or 0, stopping.wait,
                                   float(stopping.kept)])
        best = (factory.to_host(stopping.weights) if stopping.weights is not None
                and stopping.kept else np.zeros(0, factory.numpy_dtype))
    schedule_state = progress.schedule.state()
    entries = {
        "checkpoint_epoch": np.array(progress.epoch, np.int64),
        "checkpoint_steps": np.array(progress.steps, np.int64),
        "checkpoint_order": progress.order.astype(np.int64),
        "checkpoint_shuffle": _shuffle_state(progress.rng),
        "checkpoint_seeds": np.array([-1 if arguments.seed is None else arguments.seed,
                                      training.dropout_seed], np.int64),
        "checkpoint_run": np.array([arguments.batch_size, len(arguments.x),
                                    data_checksum(arguments.x), int(arguments.shuffle)],
                                   np.int64),
        "optimizer": np.array(str(arguments.optimizer.kind)),
        "optimizer_settings": _settings(arguments.optimizer),
        "optimizer_step": np.array(0 if optimizer is None else optimizer.step, np.int64),
        "optimizer_state": state,
        "schedule": np.array(repr(arguments.schedule)),
        "schedule_state": np.array([float(v) for v in schedule_state.values()]),
        "early_stopping": np.array("" if arguments.early_stopping is None
                                   else repr(arguments.early_stopping)),
        "early_stopping_state": stopping_state,
        "best_parameters": best,
    }
    for name in HISTORY:
        entries[f"history_{name}"] = np.array(getattr(history, name), np.float64)
    return entries


# --- resuming: the entries checked against the fit that resumes ---------------------------------

@dataclass(frozen=True)
class Resume:
    """A checkpoint read and checked against the fit that continues it."""

    path: Path
    parameters: np.ndarray
    entries: dict[str, np.ndarray]

    @property
    def epoch(self) -> int:
        return int(self.entries["checkpoint_epoch"])


def _fail(where: str, text: str) -> ModelFileError:
    return ModelFileError(f"{where}: {text}")


def check_entries(entries: dict[str, np.ndarray], count: int, dtype: np.dtype,
                  where: str) -> None:
    """Every training entry's type, shape and values (the model's are checked by nnfs.io)."""
    missing = [name for name in ENTRIES if name not in entries]
    if missing:
        raise _fail(where, f"is a model file, not a checkpoint of fit: it lacks "
                           f"{', '.join(map(repr, missing))} (write one with "
                           "fit(..., checkpoint=path))")

    def scalar(name: str, kind: str) -> Any:
        value = entries[name]
        if value.shape != () or value.dtype.kind not in kind:
            raise _fail(where, f"the entry {name!r} must be a single "
                               f"{'integer' if kind == 'iu' else 'string'}, got {value.dtype} "
                               f"of shape {value.shape}")
        return value.item()

    def floats(name: str, shape: tuple[int, ...] | None = None,
               finite: bool = True) -> np.ndarray:
        value = entries[name]
        if value.dtype.kind != "f" or (shape is not None and value.shape != shape):
            want = "floats" if shape is None else f"floats of shape {shape}"
            raise _fail(where, f"the entry {name!r} must be {want}, got {value.dtype} of shape "
                               f"{value.shape}")
        if finite and not np.all(np.isfinite(value)):
            raise _fail(where, f"the entry {name!r} holds a value that is not finite")
        return value

    for name in ("checkpoint_epoch", "checkpoint_steps", "optimizer_step"):
        if scalar(name, "iu") < 0:
            raise _fail(where, f"the entry {name!r} must be 0 or more")
    for name in ("optimizer", "schedule", "early_stopping"):
        if len(scalar(name, "U")) > MAX_TEXT:
            raise _fail(where, f"the entry {name!r} is longer than {MAX_TEXT} characters")
    run = entries["checkpoint_run"]
    if run.shape != (4,) or run.dtype.kind not in "iu":
        raise _fail(where, "the entry 'checkpoint_run' must be 4 integers")
    samples = int(run[1])
    order = entries["checkpoint_order"]
    if order.dtype.kind not in "iu" or order.shape != (samples,) \
            or not np.array_equal(np.sort(order), np.arange(samples)):
        raise _fail(where, f"the entry 'checkpoint_order' must be an order of the "
                           f"{samples} samples")
    for name, size in (("checkpoint_shuffle", 6), ("checkpoint_seeds", 2)):
        if entries[name].shape != (size,) or entries[name].dtype.kind not in "iu":
            raise _fail(where, f"the entry {name!r} must be {size} integers")
    floats("optimizer_settings", (len(OPTIMIZER_SETTINGS),))
    state = floats("optimizer_state")
    if state.ndim != 2 or state.shape[1] != count or state.shape[0] > 2:
        raise _fail(where, f"the entry 'optimizer_state' must be at most 2 vectors of {count} "
                           f"parameters, got shape {state.shape}")
    floats("schedule_state", finite=False)  # a plateau's best starts at infinity
    if entries["schedule_state"].ndim != 1 or np.any(np.isnan(entries["schedule_state"])):
        raise _fail(where, "the entry 'schedule_state' must be a list of numbers")
    floats("early_stopping_state", (4,), finite=False)
    best = floats("best_parameters")
    if best.shape not in ((0,), (count,)):
        raise _fail(where, f"the entry 'best_parameters' must be empty or {count} parameters")
    epoch = int(entries["checkpoint_epoch"])
    for name in HISTORY:
        value = floats(f"history_{name}", finite=False)
        if value.ndim != 1 or value.size not in ((epoch,) if name in ("cost", "eta")
                                                 else (0, epoch)):
            raise _fail(where, f"the entry 'history_{name}' must hold one figure per epoch done "
                               f"({epoch})")
    too_large = [name for name in ("optimizer_state", "best_parameters")
                 if np.any(np.abs(entries[name]) > np.finfo(dtype).max)]
    if too_large:
        raise _fail(where, f"the entry {too_large[0]!r} holds a value too large for {dtype}")


def check_resume(resume: Resume, arguments: FitArguments) -> None:
    """Refuse, before any work, a checkpoint that is not of this fit: another architecture,
    dtype, optimizer, schedule, early stopping, batch size, data or seed."""
    entries, where = resume.entries, f"fit: resume: {str(resume.path)!r}"

    def differs(what: str, theirs: object, ours: object) -> None:
        if theirs != ours:
            raise NnfsValueError(f"{where} is a checkpoint of a run with {what} {theirs}, but "
                                 f"this fit has {what} {ours}; resume with the same {what}")

    settings = {name: float(value) for name, value in
                zip(OPTIMIZER_SETTINGS, entries["optimizer_settings"], strict=True)}
    ours = dict(zip(OPTIMIZER_SETTINGS, _settings(arguments.optimizer).tolist(), strict=True))
    differs("the optimizer", f"{entries['optimizer'].item()} {settings}",
            f"{arguments.optimizer.kind} {ours}")
    differs("the schedule", entries["schedule"].item(), repr(arguments.schedule))
    differs("early stopping", entries["early_stopping"].item() or None,
            None if arguments.early_stopping is None else repr(arguments.early_stopping))
    run = [int(v) for v in entries["checkpoint_run"]]
    differs("batch_size", run[0], arguments.batch_size)
    differs("a number of samples of", run[1], len(arguments.x))
    differs("shuffle", bool(run[3]), arguments.shuffle)
    if run[2] != data_checksum(arguments.x):
        raise NnfsValueError(f"{where} is a checkpoint of a run on other data (its samples' "
                             "checksum differs): resume with the data it was trained on")
    seed = int(entries["checkpoint_seeds"][0])
    if arguments.seed is not None and seed != arguments.seed:
        differs("seed", None if seed < 0 else seed, arguments.seed)
    validation = entries["history_validation_cost"].size > 0 or resume.epoch == 0
    if resume.epoch and validation != (arguments.validation is not None):
        raise NnfsValueError(f"{where} is a checkpoint of a run "
                             f"{'with' if validation else 'without'} validation data; resume "
                             f"{'with' if validation else 'without'} it too")
    expected = arguments.optimizer.kind.state_size if not arguments.fused else 0
    if entries["optimizer_state"].shape[0] != expected:
        kept = entries["optimizer_state"].shape[0]
        raise NnfsValueError(f"{where}: its optimizer state has {kept} vectors, the "
                             f"{arguments.optimizer.kind} optimizer keeps {expected}")


def restore(resume: Resume, arguments: FitArguments, training: TrainingNetwork,
            progress: _Progress, history: History) -> None:
    """Put the checkpoint's weights and state on the device and in ``progress`` and
    ``history`` (after :func:`check_resume`)."""
    factory = training.factory
    entries = resume.entries
    factory.from_host(resume.parameters, arguments.network.parameters)
    progress.epoch = resume.epoch
    progress.steps = int(entries["checkpoint_steps"])
    np.copyto(progress.order, entries["checkpoint_order"])
    progress.rng = _shuffle_generator(entries["checkpoint_shuffle"])
    if progress.optimizer is not None:
        for vector, values in zip(progress.optimizer.vectors, entries["optimizer_state"],
                                  strict=True):
            factory.from_host(values, vector)
        progress.optimizer.step = int(entries["optimizer_step"])
    names = list(progress.schedule.state())
    if names:
        progress.schedule.load(dict(zip(names, entries["schedule_state"].tolist(), strict=True)))
    if progress.stopping is not None:
        best, best_epoch, wait, kept = entries["early_stopping_state"].tolist()
        progress.stopping.best = best
        progress.stopping.best_epoch = int(best_epoch) or None
        progress.stopping.wait = int(wait)
        progress.stopping.kept = bool(kept) and entries["best_parameters"].size > 0
        if progress.stopping.kept and progress.stopping.weights is not None:
            factory.from_host(entries["best_parameters"], progress.stopping.weights)
        history.best_epoch = progress.stopping.best_epoch
    for name in HISTORY:
        getattr(history, name).extend(float(v) for v in entries[f"history_{name}"])


# --- the file ------------------------------------------------------------------------------------

def write(target: Checkpoints, arguments: FitArguments, training: TrainingNetwork,
          progress: _Progress, history: History) -> Path:
    """Write the checkpoint of a fit between epochs to ``target.path``, whole or not at all."""
    from .io import model_entries, write_whole

    network = arguments.network
    entries: dict[str, Any] = model_entries(network)
    if target.model is not None:  # the model's own weights, and the training's beside them
        entries["training_parameters"] = entries["parameters"]
        entries["parameters"] = np.asarray(target.model(entries["parameters"].copy()),
                                           entries["parameters"].dtype)
    entries.update(capture(arguments, training, progress, history))
    write_whole(target.path, lambda file: np.savez(file, **entries), "fit: checkpoint")
    return Path(target.path)


def read(path: str | os.PathLike[str], arguments: FitArguments) -> Resume:
    """Read and check the checkpoint at ``path`` for ``arguments``' fit (architecture and
    dtype against its network, then every training entry, then the run's settings), before
    anything is changed."""
    where = f"fit: resume: {str(path)!r}"
    network = arguments.network
    model, entries = _read_archive(path, where, len(arguments.x))
    missing = [name for name in ENTRIES if name not in entries]
    if missing:
        raise _fail(where, f"is a model file, not a checkpoint of fit: it lacks "
                           f"{', '.join(map(repr, missing[:3]))}{'...' if len(missing) > 3 else ''}"
                           " (write one with fit(..., checkpoint=path))")
    ours = (network.in_dim, [(layer.out_dim, str(layer.activation.kind), layer.dropout)
                             for layer in network.layers])
    theirs = (model.in_dim, [(layer.units, str(layer.activation.kind), layer.dropout)
                             for layer in model.layers])
    if ours != theirs:
        raise ModelFileError(f"{where} is a checkpoint of the network {_describe(*theirs)}, but "
                             f"this fit trains {_describe(*ours)}")
    if model.dtype != network.factory.dtype:
        raise ModelFileError(f"{where} is a checkpoint of a {model.dtype} run; this fit trains "
                             f"in {network.factory.dtype}: resume in {model.dtype}")
    count, dtype = network.parameter_count, network.factory.numpy_dtype
    check_entries(entries, count, dtype, where)
    parameters = entries.get("training_parameters", model.parameters)
    if parameters.dtype.kind != "f" or parameters.shape != (count,) \
            or not np.all(np.isfinite(parameters)):
        raise _fail(where, f"the entry 'training_parameters' must be {count} finite floats")
    resume = Resume(Path(path), parameters.astype(dtype), entries)
    check_resume(resume, arguments)
    return resume


@dataclass(frozen=True)
class _Model:
    in_dim: int
    layers: tuple[Any, ...]
    dtype: str
    parameters: np.ndarray


#: The most epochs a checkpoint's history may hold.
MAX_EPOCHS = 10_000_000


def _most_bytes(name: str, count: int, samples: int) -> int:
    """The largest ``.npy`` member entry ``name`` of a checkpoint of a network of ``count``
    parameters trained on ``samples`` samples can be (its header included)."""
    if name in ("parameters", "training_parameters", "best_parameters"):
        elements = count
    elif name == "optimizer_state":
        elements = 2 * count
    elif name == "checkpoint_order":
        elements = samples
    elif name.startswith("history_"):
        elements = MAX_EPOCHS
    elif name in ("units", "activations", "dropout"):
        elements = 64 * 10_000
    else:
        elements = 4 * MAX_TEXT
    return 8 * elements + 4096


def _read_archive(path: str | os.PathLike[str], where: str,
                  samples: int) -> tuple[_Model, dict[str, np.ndarray]]:
    """The model and the training entries of the checkpoint at ``path``, read by nnfs's own
    reader (:mod:`nnfs._npz`: nothing is unpickled, each entry's header is checked and its
    size bounded by what a checkpoint of this fit can need before its data is read)."""
    from .io import _open_model, _read_parameters

    known = {"format", "format_version", "in_dim", "units", "activations", "dropout", "dtype",
             "parameters", "task", "classes", "training_parameters", *ENTRIES}
    with _open_model(path, "fit: resume") as (model, archive, header):
        unknown = sorted(set(archive.names) - known)
        if unknown:
            raise _fail(where, f"holds entries no nnfs checkpoint has: {unknown}")
        parameters = _read_parameters(archive, header, where)
        entries = {}
        for name in (*ENTRIES, "training_parameters"):
            if name in archive:
                entry = archive.header(name)
                value = archive.read(entry, _most_bytes(name, model.parameter_count, samples),
                                     "a checkpoint of this fit")
                entries[name] = value.reshape(entry.shape)  # a single number stays one
    return _Model(model.in_dim, model.layers, model.dtype, parameters), entries


def _describe(in_dim: int, layers: list[tuple[int, str, float]]) -> str:
    return f"{in_dim} → " + " → ".join(
        f"{units} {kind}" + (f" dropout {rate}" if rate else "") for units, kind, rate in layers)


def describe_progress(entries: dict[str, np.ndarray]) -> str:
    """``epoch 3 (120 steps)`` of a checkpoint."""
    return f"epoch {int(entries['checkpoint_epoch'])} ({int(entries['checkpoint_steps'])} steps)"


__all__ = ["ENTRIES", "Checkpoints", "Resume", "capture", "check_entries", "check_resume",
           "checkpoints", "restore"]

