"""Saving and loading networks.

The file format is a numpy ``.npz`` archive (a zip of ``.npy`` arrays) holding:

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
=================  ==============================  =========================================

A checkpoint of ``fit`` (:mod:`nnfs.checkpoints`) is a model file of version 2 with the
training's entries beside these; ``load`` reads its model.

Saving writes a temporary file next to the destination and renames it over the destination
once it is complete and on disk, so a crash leaves either the old file or the new one, never
half a file. Loading never runs code from the file: it reads the archive with nnfs's own
reader (``nnfs._npz``), which reads each entry's ``.npy`` header alone and checks it (type,
shape, and a size bounded by what the entries before it declare) before it reads the entry's
data, and it checks every value (finite, fitting the network's dtype) before it builds
anything. A damaged or crafted file is a :class:`nnfs.ModelFileError` naming the file and what
is wrong.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _checks as check
from ._files import as_path, check_writable, input_file, write_whole
from ._npz import Archive, Header, open_archive
from .activations import ACTIVATIONS
from ._args import dtype_name
from .errors import ModelFileError, NnfsTypeError, NnfsValueError
from .factory import Factory
from .network import FullyConnected, InferenceNetwork, _parameter_count, inference_network

FORMAT = "nnfs-model"
FORMAT_VERSION = 2
#: The versions this nnfs reads.
READABLE_VERSIONS = (1, 2)
_ENTRIES = ("format", "format_version", "in_dim", "units", "activations", "dtype", "parameters")
#: The most layers a model file may declare: far more than anyone trains, and a bound that
#: keeps a crafted file from making nnfs read a million of them.
MAX_LAYERS = 10_000
#: The longest text entry (format, dtype, an activation's name) a model file may hold.
MAX_NAME_CHARACTERS = 64

__all__ = ["FORMAT", "FORMAT_VERSION", "READABLE_VERSIONS", "ModelFile", "check_writable",
           "inspect_model", "load", "model_entries",
           "read_model", "save", "write_whole"]


def save(inference: InferenceNetwork, path: object) -> Path:
    """Save the architecture and the parameters of ``inference`` to ``path`` (see the module
    docstring for the format); returns the path.

    The file is written whole or not at all; through a symbolic link, to its target; with the
    old file's mode, or the one the umask gives a new file. What is not a regular file (a
    directory, a device, a pipe) is refused, and so are a full disk, a read-only filesystem
    and a file-size limit, each with an nnfs error naming the file.
    """
    if not isinstance(inference, InferenceNetwork):
        raise NnfsTypeError(
            f"save: inference must be made by nnfs.inference_network, got {type(inference).__name__}"
        )
    check.live(inference, "save: inference")
    path = as_path(path, "save: path")
    entries = model_entries(inference)
    write_whole(path, lambda file: np.savez(file, **entries), "save")
    return path


def model_entries(inference: InferenceNetwork) -> dict[str, np.ndarray]:
    """The entries of the model file of ``inference`` (reads its parameters from the
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


# --- reading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelFile:
    """What a model file declares, every entry checked but the parameters' values, which
    :func:`load` reads (their header, count and dtype are checked here)."""

    path: Path
    in_dim: int
    layers: tuple[FullyConnected, ...]
    dtype: str
    parameter_count: int


def _scalar(archive: Archive, name: str, kind: str, where: str) -> object:
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


def _parameters_header(archive: Archive, expected: int, in_dim: int, units: list[int],
                       where: str) -> Header:
    header = archive.header("parameters")
    if len(header.shape) != 1 or header.dtype.kind != "f" or header.dtype.itemsize > 8 \
            or header.count != expected:
        raise ModelFileError(
            f"{where}: 'parameters' must be {expected} floats for in_dim {in_dim} and units "
            f"{units}, got {header.text}")
    return header


def _dropout(archive: Archive, count: int, where: str) -> np.ndarray:
    """A model file of version 2's ``dropout``: one rate in [0, 1) per layer."""
    if "dropout" not in archive:
        raise ModelFileError(f"{where} is a model file of version 2 without 'dropout'")
    header = archive.header("dropout")
    wanted = f"{count} rates in [0, 1), one per layer"
    if header.shape != (count,) or header.dtype.kind != "f" or header.dtype.itemsize > 8:
        raise ModelFileError(f"{where}: 'dropout' must be {wanted}, got {header.text}")
    rates = archive.read(header, 8 * count, wanted)
    if not np.all((rates >= 0) & (rates < 1)):
        raise ModelFileError(f"{where}: 'dropout' must be {wanted}, got {rates.tolist()}")
    return rates


@contextmanager
def _open_model(path: object, what: str = "load"):
    """The checked declarations of the model file at ``path``, the archive, and the header of
    its parameters, which are not read yet. ``what`` names the caller in messages."""
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
        if version not in READABLE_VERSIONS:
            raise ModelFileError(f"{where} has model format version {version}; this nnfs reads "
                                 f"versions {', '.join(map(str, READABLE_VERSIONS))} (upgrade "
                                 "nnfs-core to read newer files)")
        in_dim = _scalar(archive, "in_dim", "iu", where)
        units = _list(archive, "units", "iu", None, where)
        activations = _list(archive, "activations", "U", units.size, where)
        dtype = _scalar(archive, "dtype", "U", where)
        if in_dim < 1 or (units < 1).any():
            raise ModelFileError(f"{where}: layer sizes must be positive, got in_dim {in_dim} "
                                 f"and units {units.tolist()}")
        unknown = [name for name in activations.tolist() if name not in ACTIVATIONS]
        if unknown:
            raise ModelFileError(f"{where}: unknown activation(s) {unknown}")
        try:
            dtype_name(dtype)
        except NnfsValueError:
            raise ModelFileError(f"{where}: unknown dtype {dtype!r}") from None
        widths = [int(n) for n in units.tolist()]
        expected = _parameter_count(int(in_dim), widths)
        header = _parameters_header(archive, expected, int(in_dim), widths, where)
        rates = (_dropout(archive, len(widths), where) if version >= 2
                 else np.zeros(len(widths)))
        layers = tuple(FullyConnected(n, ACTIVATIONS[name], float(rate))
                       for n, name, rate in zip(widths, activations.tolist(), rates.tolist(),
                                                strict=True))
        yield ModelFile(path, int(in_dim), layers, str(dtype), expected), archive, header


def _read_parameters(archive: Archive, header: Header, where: str) -> np.ndarray:
    parameters = archive.read(header, header.nbytes, "its architecture")
    bad = check.first_non_finite(parameters)
    if bad is not None:
        raise ModelFileError(f"{where}: parameter {bad[0][0]} is {bad[1]}; a model holds finite "
                             "numbers")
    return parameters


def inspect_model(path: object) -> ModelFile:
    """Check the model file at ``path`` and say what it declares (in_dim, layers, dtype,
    parameter count), without reading its parameters."""
    with _open_model(path) as (model, _, _):
        return model


def read_model(path: object) -> tuple[int, list[FullyConnected], np.ndarray]:
    """Read and check a model file: (in_dim, layers, flat parameters as float64)."""
    with _open_model(path) as (model, archive, header):
        parameters = _read_parameters(archive, header, f"load: {str(model.path)!r}")
    return model.in_dim, list(model.layers), parameters.astype(np.float64)


def _describe(in_dim: int, layers: list[FullyConnected]) -> str:
    return f"{in_dim} → " + " → ".join(f"{layer.units} {layer.activation.kind}" for layer in layers)


def load(path: object, target: Factory | InferenceNetwork) -> InferenceNetwork:
    """Load a saved network.

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
    with _open_model(path) as (model, archive, header):
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
        parameters = _read_parameters(archive, header, where)
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
