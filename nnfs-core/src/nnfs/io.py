"""Saving and loading networks, in nnfs's npz format or in safetensors.

**Which format.** ``save`` writes safetensors when the file's name ends in ``.safetensors``,
and nnfs's npz format otherwise (``format="npz"`` or ``format="safetensors"`` chooses
explicitly); ``load`` tells them apart by their first bytes, whatever the name.

**The npz format** is a numpy ``.npz`` archive (a zip of ``.npy`` arrays) holding:

=================  ==============================  =========================================
entry              type                            meaning
=================  ==============================  =========================================
``format``         string                          always ``"nnfs-model"``
``format_version`` int                             2 (files of version 1, which have no
                                                   ``dropout``, load too)
``in_dim``         int                             inputs of the network
``units``          int array, one per layer        outputs of each layer
``activations``    string array, one per layer     ``linear``, ``sigmoid``, ``tanh``, ``relu``,
                                                   ``softmax``
``dropout``        float array, one per layer      each layer's dropout rate while training
``dtype``          string                          dtype of the network that was saved
``parameters``     float array                     every layer's weights (column by column)
                                                   then its bias, layer after layer
``task``           string (optional)               ``classification`` or ``regression``: how
                                                   ``nnfs predict`` reads the outputs
``classes``        string array (optional)         the label of each output (of a one-output
                                                   classifier: the labels below and above 0.5)
=================  ==============================  =========================================

A checkpoint of ``fit`` (:mod:`nnfs.checkpoints`) is a model file of the npz format with the
training's entries beside these; ``load`` reads its model.

**The safetensors format** holds the same: one tensor per layer's weights and bias
(``layers.{i}.weight``, units × inputs as PyTorch's ``nn.Linear`` keeps them, and
``layers.{i}.bias``) and the rest (``dropout`` as a JSON list) as strings in the header's
``__metadata__`` (see
:mod:`nnfs._safetensors`). ``safetensors.numpy.load_file`` and Hugging Face's tools read it.

Saving checks what it writes with the checks loading makes (every parameter finite, the
architecture, the task and the class labels within the bounds below), so that ``save`` never
writes a file ``load`` would refuse; then it writes a temporary file next to the destination
and renames it over the destination once it is complete and on disk, so a crash leaves either
the old file or the new one, never half a file. Loading never runs code from the file: it
reads it with nnfs's own readers (``nnfs._npz``, ``nnfs._safetensors``), which read each
entry's header alone and check it (type, shape, and a size bounded by what the entries before
it declare) before they read its data, and it checks every value (finite, fitting the
network's dtype) before it builds anything. A damaged or crafted file is a
:class:`nnfs.ModelFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _checks as check, _safetensors as st
from ._args import dtype_name
from ._files import as_path, check_writable, input_file, open_input, write_whole
from ._npz import ZIP_MAGIC, Archive, Header, open_archive
from .activations import ACTIVATIONS
from .errors import ModelFileError, NnfsError, NnfsTypeError, NnfsValueError
from .factory import Factory
from .network import FullyConnected, InferenceNetwork, _parameter_count, inference_network

FORMAT = "nnfs-model"
FORMAT_VERSION = 2
#: The versions this nnfs reads.
READABLE_VERSIONS = (1, 2)
_ENTRIES = ("format", "format_version", "in_dim", "units", "activations", "dtype", "parameters")
#: The file formats ``save`` writes, by the name of the ``format`` argument.
FORMATS = ("npz", "safetensors")
#: What a model's outputs are, for ``nnfs predict``.
TASKS = ("classification", "regression")
#: The most layers a model file may declare: far more than anyone trains, and a bound that
#: keeps a crafted file from making nnfs read a million of them.
MAX_LAYERS = 10_000
#: The longest text entry (format, dtype, task, an activation's name) a model file may hold.
MAX_NAME_CHARACTERS = 64
#: The longest class label a model file may hold, and the most bytes all of them may take
#: (as a numpy array of text: 4 bytes a character, every label as long as the longest).
MAX_CLASS_CHARACTERS = 1024
MAX_CLASSES_BYTES = 16 << 20

__all__ = ["FORMAT", "FORMATS", "FORMAT_VERSION", "READABLE_VERSIONS", "TASKS", "ModelFile",
           "check_format", "check_labels", "check_writable", "inspect_model", "load",
           "model_entries", "read_model", "save", "write_whole"]


@dataclass(frozen=True)
class ModelFile:
    """What a model file declares, every entry checked but the parameters' values, which
    :func:`load` reads (their header, count and dtype are checked here). ``task`` and
    ``classes`` are None where the file does not say."""

    path: Path
    in_dim: int
    layers: tuple[FullyConnected, ...]
    dtype: str
    parameter_count: int
    task: str | None = None
    classes: tuple[str, ...] | None = None
    format: str = "npz"


# --- what a model declares, checked the same way for every format, by save and by load ----------

def check_labels(classes: object, task: object, outputs: int, where: str,
                 error: type[NnfsError] = NnfsValueError) -> tuple[str | None,
                                                                   tuple[str, ...] | None]:
    """``task`` and ``classes`` as a model file of ``outputs`` outputs may hold them, or
    ``error`` naming what is wrong: the task one of :data:`TASKS`; the classes text labels, one
    per output (two for a one-output classifier), all different, none empty or holding NUL,
    at most :data:`MAX_CLASS_CHARACTERS` long and :data:`MAX_CLASSES_BYTES` together."""
    if task is not None and task not in TASKS:
        raise error(f"{where}: the task must be one of {', '.join(TASKS)}, got {task!r}")
    if classes is None:
        return task, None
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, np.ndarray)):
        raise error(f"{where}: classes must be a list of text labels, one per output, got "
                    f"{type(classes).__name__}")
    names = list(classes)
    if task == "regression":
        raise error(f"{where}: a regression model has no classes, got {len(names)}")
    if len(names) != (2 if outputs == 1 else outputs):
        expected = "2 (below and above 0.5)" if outputs == 1 else str(outputs)
        raise error(f"{where}: {len(names)} classes for a network of {outputs} output"
                    f"{'s' if outputs > 1 else ''}; expected {expected}, one label each")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise error(f"{where}: class {i} must be text, got {type(name).__name__} {name!r}")
        if not name or "\0" in name or len(name) > MAX_CLASS_CHARACTERS:
            raise error(f"{where}: class {i} ({name[:40]!r}) must be 1 to "
                        f"{MAX_CLASS_CHARACTERS} characters with no NUL")
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise error(f"{where}: the class {twice[:40]!r} is named twice; each output has a "
                    "label of its own")
    if 4 * max(map(len, names)) * len(names) > MAX_CLASSES_BYTES:
        raise error(f"{where}: {len(names)} class labels of up to {max(map(len, names))} "
                    f"characters take more than the {MAX_CLASSES_BYTES} bytes a model file "
                    "holds")
    return task or "classification", tuple(names)


def _declared(path: Path, where: str, error: type[NnfsError], in_dim: int, units: list[int],
              activations: list[str], dtype: str, task: object = None,
              classes: object = None, format: str = "npz",
              dropout: list[float] | None = None) -> ModelFile:
    """The architecture (with each layer's dropout rate, 0 where not given), dtype, task and
    classes of a model, checked: every format's reader calls this with what its file
    declares, and ``save`` with the network it is given."""
    if not 1 <= len(units) <= MAX_LAYERS:
        raise error(f"{where}: a model has 1 to {MAX_LAYERS} layers, got {len(units)}")
    if in_dim < 1 or min(units) < 1:
        raise error(f"{where}: layer sizes must be positive, got in_dim {in_dim} and units "
                    f"{units}")
    unknown = [name for name in activations if name not in ACTIVATIONS]
    if unknown:
        raise error(f"{where}: unknown activation(s) {unknown}")
    try:
        dtype = dtype_name(dtype)
    except (TypeError, ValueError):  # numpy's own refusals of odd names among them
        raise error(f"{where}: unknown dtype {dtype!r}") from None
    task, classes = check_labels(classes, task, units[-1], where, error)
    rates = [0.0] * len(units) if dropout is None else dropout
    if len(rates) != len(units) or not all(0 <= rate < 1 for rate in rates):
        raise error(f"{where}: 'dropout' must be {len(units)} rates in [0, 1), one per layer, "
                    f"got {list(rates)[:10]}")
    layers = tuple(FullyConnected(n, ACTIVATIONS[name], float(rate))
                   for n, name, rate in zip(units, activations, rates, strict=True))
    return ModelFile(path, in_dim, layers, dtype, _parameter_count(in_dim, units), task,
                     classes, format)


def _check_finite(parameters: np.ndarray, where: str, error: type[NnfsError],
                  hint: str = "") -> None:
    bad = check.first_non_finite(parameters)
    if bad is not None:
        raise error(f"{where}: parameter {bad[0][0]} is {bad[1]}; a model holds finite "
                    f"numbers{hint}")


# --- writing ------------------------------------------------------------------------------------

def check_format(path: object, format: object = None) -> str:
    """The format ``save`` writes ``path`` in (see the module docstring), and whether it can
    here: :class:`nnfs.MissingDependency` when safetensors is asked for and its package is
    not installed. Commands call it before long work."""
    if format is None:
        name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ""
        chosen = "safetensors" if str(name).lower().endswith(".safetensors") else "npz"
    elif format in FORMATS:
        chosen = format
    else:
        raise NnfsValueError(f"save: format must be one of {', '.join(FORMATS)} (or None: by "
                             f"the file's suffix), got {format!r}")
    if chosen == "safetensors":
        st.require_writer()
    return chosen


def save(inference: InferenceNetwork, path: object, *, format: str | None = None,
         task: str | None = None, classes: Sequence[str] | None = None) -> Path:
    """Save the architecture and the parameters of ``inference`` to ``path``; returns the path.

    ``format``: ``"npz"`` or ``"safetensors"``; by default safetensors for a name ending in
    ``.safetensors`` (which needs ``pip install 'nnfs-core[safetensors]'``), npz otherwise.
    ``task`` (``"classification"`` or ``"regression"``) and ``classes`` (a text label per
    output) are kept in the file for ``nnfs predict``, which then prints the labels or the
    values (:func:`inspect_model` reads them back).

    Everything ``load`` would refuse is refused first, before anything is written: parameters
    that are not finite (a network whose training diverged), more than :data:`MAX_LAYERS`
    layers, classes that do not fit the outputs. The file is written whole or not at all;
    through a symbolic link, to its target; with the old file's mode, or the one the umask
    gives a new file. What is not a regular file (a directory, a device, a pipe) is refused,
    and so are a full disk, a read-only filesystem and a file-size limit, each with an nnfs
    error naming the file.
    """
    if not isinstance(inference, InferenceNetwork):
        raise NnfsTypeError("save: inference must be made by nnfs.inference_network, got "
                            f"{type(inference).__name__}")
    check.live(inference, "save: inference")
    path = as_path(path, "save: path")
    chosen = check_format(path, format)
    where = f"save: {str(path)!r}"
    units = [layer.out_dim for layer in inference.layers]
    model = _declared(path, where, NnfsValueError, inference.in_dim, units,
                      [str(layer.activation.kind) for layer in inference.layers],
                      inference.factory.dtype, task, classes, chosen,
                      [float(layer.dropout) for layer in inference.layers])
    entries: dict[str, Any] = model_entries(inference)
    parameters = entries["parameters"]
    _check_finite(parameters, f"save: the network to write to {str(path)!r}", NnfsValueError,
                  " (nnfs.load refuses any other): did its training diverge?")
    if chosen == "safetensors":
        data = st.encode(_metadata(model), model.in_dim, units, parameters)
        if st.header_length(data) > st.MAX_HEADER_BYTES:
            raise NnfsValueError(f"{where}: the model's safetensors header would take "
                                 f"{st.header_length(data)} bytes; nnfs reads headers of at "
                                 f"most {st.MAX_HEADER_BYTES} (fewer or shorter class labels)")
        write_whole(path, lambda file: file.write(data), "save")
        return path
    if model.task is not None:
        entries["task"] = np.array(model.task)
    if model.classes is not None:
        entries["classes"] = np.array(model.classes)
    write_whole(path, lambda file: np.savez(file, **entries), "save")
    return path


def model_entries(inference: InferenceNetwork) -> dict[str, np.ndarray]:
    """The entries of the npz model file of ``inference`` (reads its parameters from the
    device): what :func:`save` writes, and what a checkpoint holds beside the training's."""
    return {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "in_dim": np.array(inference.in_dim, dtype=np.int64),
        "units": np.array([layer.out_dim for layer in inference.layers], dtype=np.int64),
        "activations": np.array([layer.activation.kind for layer in inference.layers]),
        "dropout": np.array([layer.dropout for layer in inference.layers], dtype=np.float64),
        "dtype": np.array(inference.factory.dtype),
        "parameters": inference.factory.to_host(inference.parameters),
    }


def _metadata(model: ModelFile) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors model file: strings only, lists as JSON."""
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "in_dim": str(model.in_dim),
        "units": json.dumps([layer.units for layer in model.layers]),
        "activations": json.dumps([str(layer.activation.kind) for layer in model.layers]),
        "dropout": json.dumps([layer.dropout for layer in model.layers]),
        "dtype": model.dtype,
    }
    if model.task is not None:
        metadata["task"] = model.task
    if model.classes is not None:
        metadata["classes"] = json.dumps(list(model.classes), ensure_ascii=False)
    return metadata


# --- reading the npz format ---------------------------------------------------------------------

def _scalar(archive: Archive, name: str, kind: str, where: str) -> Any:
    """A single integer (``kind`` "iu") or string ("U") entry, read only once its header
    says it is one."""
    header = archive.header(name)
    wanted = "integer" if kind == "iu" else "string"
    most = 8 if kind == "iu" else 4 * MAX_NAME_CHARACTERS
    if header.shape != () or header.dtype.kind not in kind or header.dtype.itemsize > most:
        raise ModelFileError(f"{where}: the entry {name!r} must be a single {wanted}, got "
                             f"{header.text}")
    return archive.read(header, most, f"a single {wanted}").item()


def _list(archive: Archive, name: str, kind: str, count: int | None, where: str) -> np.ndarray:
    """A list entry: ``units`` (integers) or ``activations`` (names, ``count`` of them)."""
    header = archive.header(name)
    most = 8 if kind == "iu" else 4 * MAX_NAME_CHARACTERS
    if name == "units":
        fits = 1 <= header.count <= MAX_LAYERS
        wanted = f"a non-empty list of integers (at most {MAX_LAYERS} layers)"
    else:
        fits = header.count == count
        wanted = f"{count} names, one per layer"
    if len(header.shape) != 1 or header.dtype.kind not in kind or not fits \
            or header.dtype.itemsize > most:
        raise ModelFileError(f"{where}: {name!r} must be {wanted}, got {header.text}")
    return archive.read(header, most * MAX_LAYERS, wanted)


def _classes_entry(archive: Archive, outputs: int, where: str) -> list[str] | None:
    """The optional ``classes`` entry: at most two labels more than the outputs, of bounded
    length, read only once its header says so (:func:`check_labels` checks the rest)."""
    if "classes" not in archive:
        return None
    header = archive.header("classes")
    if len(header.shape) != 1 or header.dtype.kind != "U" or header.count > max(outputs, 2) \
            or header.dtype.itemsize > 4 * MAX_CLASS_CHARACTERS:
        raise ModelFileError(f"{where}: 'classes' must be a list of text labels, one per "
                             f"output ({outputs}), got {header.text}")
    return archive.read(header, header.nbytes, "its outputs' labels").tolist()


def _parameters_header(archive: Archive, expected: int, in_dim: int, units: list[int],
                       where: str) -> Header:
    header = archive.header("parameters")
    if len(header.shape) != 1 or header.dtype.kind != "f" or header.dtype.itemsize > 8 \
            or header.count != expected:
        raise ModelFileError(
            f"{where}: 'parameters' must be {expected} floats for in_dim {in_dim} and units "
            f"{units}, got {header.text}")
    return header


def _dropout(archive: Archive, count: int, where: str) -> list[float]:
    """A model file of version 2's ``dropout``: one rate in [0, 1) per layer."""
    if "dropout" not in archive:
        raise ModelFileError(f"{where} is a model file of version 2 without 'dropout'")
    header = archive.header("dropout")
    wanted = f"{count} rates in [0, 1), one per layer"
    if header.shape != (count,) or header.dtype.kind != "f" or header.dtype.itemsize > 8:
        raise ModelFileError(f"{where}: 'dropout' must be {wanted}, got {header.text}")
    return archive.read(header, 8 * count, wanted).tolist()


@contextmanager
def _open_model(path: object, what: str = "load") -> Iterator[tuple[ModelFile, Archive, Header]]:
    """The checked declarations of the npz model file at ``path``, the archive, and the header
    of its parameters, which are not read yet. ``what`` names the caller in messages (a
    checkpoint of ``fit`` is read through this too)."""
    path = as_path(path, f"{what}: path")
    where = f"{what}: {str(path)!r}"
    input_file(path, where, ModelFileError, "an nnfs model file")
    with open_archive(path, where, ModelFileError, "nnfs model") as archive:
        missing = [name for name in _ENTRIES if name not in archive]
        if missing:
            raise ModelFileError(f"{where} is not an nnfs model file: it lacks "
                                 f"{', '.join(map(repr, missing))}")
        if _scalar(archive, "format", "U", where) != FORMAT:
            raise ModelFileError(f"{where} is not an nnfs model file (format is not {FORMAT!r})")
        version = _scalar(archive, "format_version", "iu", where)
        version = _check_version(version, where)
        in_dim = _scalar(archive, "in_dim", "iu", where)
        units = _list(archive, "units", "iu", None, where)
        activations = _list(archive, "activations", "U", units.size, where)
        dtype = _scalar(archive, "dtype", "U", where)
        task = _scalar(archive, "task", "U", where) if "task" in archive else None
        widths = [int(n) for n in units.tolist()]
        classes = _classes_entry(archive, max(widths[-1], 1), where)
        rates = _dropout(archive, len(widths), where) if version >= 2 else None
        model = _declared(path, where, ModelFileError, int(in_dim), widths,
                          activations.tolist(), str(dtype), task, classes, "npz", rates)
        header = _parameters_header(archive, model.parameter_count, model.in_dim, widths, where)
        yield model, archive, header


def _read_parameters(archive: Archive, header: Header, where: str) -> np.ndarray:
    """The parameters an npz model file's header declares, checked to be finite."""
    parameters = archive.read(header, header.nbytes, "its architecture")
    _check_finite(parameters, where, ModelFileError)
    return parameters


@contextmanager
def _open_npz(path: Path, where: str) -> Iterator[tuple[ModelFile, Callable[[], np.ndarray]]]:
    with _open_model(path) as (model, archive, header):
        yield model, lambda: _read_parameters(archive, header, where)


def _check_version(version: object, where: str) -> int:
    """``version`` if this nnfs reads it."""
    if not isinstance(version, int) or version not in READABLE_VERSIONS:
        raise ModelFileError(f"{where} has model format version {version}; this nnfs reads "
                             f"versions {', '.join(map(str, READABLE_VERSIONS))} (upgrade "
                             "nnfs-core to read newer files)")
    return version


# --- reading the safetensors format -------------------------------------------------------------

def _text(metadata: dict[str, str], key: str, where: str, longest: int) -> str:
    value = metadata[key]
    if len(value) > longest:
        raise ModelFileError(f"{where}: its metadata {key!r} holds {len(value)} characters; "
                             f"expected at most {longest}")
    return value


def _whole(metadata: dict[str, str], key: str, where: str) -> int:
    value = _text(metadata, key, where, 19)
    if not (value.isascii() and value.isdigit()):
        raise ModelFileError(f"{where}: its metadata {key!r} must be a whole number, got "
                             f"{value!r}")
    return int(value)


def _json_list(metadata: dict[str, str], key: str, where: str, kind: type,
               most: int) -> list[Any]:
    """A metadata entry holding a JSON list of at most ``most`` items of ``kind``."""
    try:
        value = json.loads(metadata[key])
    except (ValueError, RecursionError):
        value = None
    kinds = (int, float) if kind is float else kind
    fits = isinstance(value, list) and 1 <= len(value) <= most and all(
        isinstance(item, kinds) and not isinstance(item, bool) for item in value)
    if not fits:
        wanted = {int: "whole numbers", str: "names", float: "numbers"}[kind]
        raise ModelFileError(f"{where}: its metadata {key!r} must be a JSON list of 1 to "
                             f"{most} {wanted}, got {metadata[key][:60]!r}")
    return value


@contextmanager
def _open_safetensors(path: Path, where: str) -> Iterator[tuple[ModelFile,
                                                                Callable[[], np.ndarray]]]:
    with open_input(path, where, ModelFileError) as file:
        stored = st.SafetensorsFile(file, where, ModelFileError)
        metadata = stored.metadata
        missing = [key for key in st.REQUIRED_METADATA if key not in metadata]
        if missing:
            raise ModelFileError(f"{where} is a safetensors file but not an nnfs model: its "
                                 f"metadata lacks {', '.join(map(repr, missing))}")
        if metadata["format"] != FORMAT:
            raise ModelFileError(f"{where} is not an nnfs model file (format is not {FORMAT!r})")
        text = _text(metadata, "format_version", where, MAX_NAME_CHARACTERS)
        version = int(text) if text.isascii() and text.isdigit() else text
        version = _check_version(version, where)
        in_dim = _whole(metadata, "in_dim", where)
        units = _json_list(metadata, "units", where, int, MAX_LAYERS)
        activations = _json_list(metadata, "activations", where, str, len(units))
        if len(activations) != len(units) or max(map(len, activations)) > MAX_NAME_CHARACTERS:
            raise ModelFileError(f"{where}: its metadata 'activations' must be {len(units)} "
                                 "names, one per layer")
        dtype = _text(metadata, "dtype", where, MAX_NAME_CHARACTERS)
        task = _text(metadata, "task", where, MAX_NAME_CHARACTERS) if "task" in metadata \
            else None
        classes = (_json_list(metadata, "classes", where, str, max(units[-1], 2))
                   if "classes" in metadata else None)
        rates = None
        if version >= 2:
            if "dropout" not in metadata:
                raise ModelFileError(f"{where} is a model file of version 2 without 'dropout'")
            rates = [float(rate) for rate in
                     _json_list(metadata, "dropout", where, float, len(units))]
        model = _declared(path, where, ModelFileError, in_dim, units, activations, dtype, task,
                          classes, "safetensors", rates)
        tensors = _checked_tensors(stored, model, where)
        yield model, lambda: _read_tensors(stored, model, tensors)


def _checked_tensors(stored: st.SafetensorsFile, model: ModelFile,
                     where: str) -> list[st.Tensor]:
    """The file's tensors in the order of the network's parameters, each checked to be the
    network's: its name, its dtype (the metadata's) and its shape."""
    names = st.tensor_names(len(model.layers))
    extra = sorted(set(stored.tensors) - set(names))
    missing = [name for name in names if name not in stored.tensors]
    if missing or extra:
        found = (f"lacks {', '.join(map(repr, missing[:3]))}" if missing
                 else f"holds {', '.join(repr(name[:60]) for name in extra[:3])} besides")
        raise ModelFileError(f"{where}: its tensors are not those of the network its metadata "
                             f"declares (layers.0.weight, layers.0.bias, ...): it {found}")
    code = st.DTYPE_CODES[model.dtype]
    tensors, width = [], model.in_dim
    for i, layer in enumerate(model.layers):
        for name, shape in ((f"layers.{i}.weight", (layer.units, width)),
                            (f"layers.{i}.bias", (layer.units,))):
            tensor = stored.tensors[name]
            if tensor.dtype != code:
                raise ModelFileError(f"{where}: the tensor {name!r} holds {tensor.dtype}; a "
                                     f"{model.dtype} nnfs model holds {code}")
            if tensor.shape != shape:
                raise ModelFileError(f"{where}: the tensor {name!r} has the shape "
                                     f"{list(tensor.shape)}; the network its metadata declares "
                                     f"needs {list(shape)}")
            tensors.append(tensor)
        width = layer.units
    return tensors


def _read_tensors(stored: st.SafetensorsFile, model: ModelFile,
                  tensors: list[st.Tensor]) -> np.ndarray:
    """The parameters as nnfs keeps them: each layer's weights column by column, then its
    bias."""
    dtype = np.dtype(model.dtype)
    parameters = np.empty(model.parameter_count, dtype)
    start = 0
    for tensor in tensors:
        values = stored.read(tensor, dtype)
        flat = values.T.ravel() if values.ndim == 2 else values  # units × inputs, by column
        parameters[start:start + flat.size] = flat
        start += flat.size
    return parameters


# --- reading either -----------------------------------------------------------------------------

@contextmanager
def _open_any(path: object) -> Iterator[tuple[ModelFile, Callable[[], np.ndarray]]]:
    """The checked declarations of the model file at ``path`` (either format), and a function
    that reads its parameters (not read yet) and checks that they are finite."""
    path = as_path(path, "load: path")
    where = f"load: {str(path)!r}"
    input_file(path, where, ModelFileError, "an nnfs model file")
    with open_input(path, where, ModelFileError) as file:
        try:
            head = file.read(9)
        except OSError as failure:
            raise ModelFileError(f"{where} cannot be read: {failure.strerror or failure}") \
                from None
    named = path.name.lower().endswith(".safetensors")
    if not head.startswith(ZIP_MAGIC) and (named or st.looks_like_safetensors(head)):
        opened = _open_safetensors(path, where)
    else:
        opened = _open_npz(path, where)
    with opened as (model, read):
        def checked() -> np.ndarray:
            parameters = read()
            _check_finite(parameters, where, ModelFileError)
            return parameters

        yield model, checked


def inspect_model(path: object) -> ModelFile:
    """Check the model file at ``path`` (either format) and say what it declares: in_dim,
    layers, dtype, parameter count, task and classes; without reading its parameters."""
    with _open_any(path) as (model, _):
        return model


def read_model(path: object) -> tuple[int, list[FullyConnected], np.ndarray]:
    """Read and check a model file: (in_dim, layers, flat parameters as float64)."""
    with _open_any(path) as (model, read):
        parameters = read()
    return model.in_dim, list(model.layers), parameters.astype(np.float64)


def _describe(in_dim: int, layers: list[FullyConnected]) -> str:
    return f"{in_dim} → " + " → ".join(f"{layer.units} {layer.activation.kind}" for layer in layers)


def load(path: object, target: Factory | InferenceNetwork) -> InferenceNetwork:
    """Load a saved network, from a file of either format (told apart by its first bytes).

    ``load(path, factory)`` builds a new network on ``factory`` (in its dtype); ``load(path,
    network)`` loads the parameters into an existing network, which must have the file's
    architecture. Nothing is allocated or changed unless the whole file is valid: the
    architecture, and whether the network fits the device, are checked before the parameters
    are read.
    """
    if not isinstance(target, (Factory, InferenceNetwork)):
        raise NnfsTypeError(
            "load: the second argument must be a factory (to build a new network) or an "
            f"inference network (to load into), got {type(target).__name__}"
        )
    check.live(target, "load: target")
    factory = target if isinstance(target, Factory) else target.factory
    with _open_any(path) as (model, read):
        where = f"load: {str(model.path)!r}"
        in_dim, layers = model.in_dim, list(model.layers)
        if isinstance(target, InferenceNetwork):
            ours = (target.in_dim, [(layer.out_dim, layer.activation.kind)
                                    for layer in target.layers])
            theirs = (in_dim, [(layer.units, layer.activation.kind) for layer in layers])
            if ours != theirs:
                raise ModelFileError(
                    f"{where} holds a network {_describe(in_dim, layers)}, but the network to "
                    f"load into is {_describe(target.in_dim, target.architecture)}")
        else:
            nbytes = model.parameter_count * factory.itemsize
            factory.check_fits(nbytes, nbytes, f"load: the network of {str(model.path)!r} "
                               f"({model.parameter_count} parameters)")
        parameters = read().astype(np.float64)
    dtype = factory.numpy_dtype
    too_large = np.abs(parameters) > np.finfo(dtype).max
    if too_large.any():
        index = int(np.argmax(too_large))
        raise ModelFileError(f"{where}: parameter {index} is {float(parameters[index])!r}, "
                             f"too large for {dtype} (the dtype of the network it would go into)")
    network = inference_network(target, in_dim, layers) if isinstance(target, Factory) else target
    try:
        factory.from_host(parameters, network.parameters)
    except BaseException:
        if network is not target:
            network.release()
        raise
    return network
