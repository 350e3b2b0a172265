"""Saving and loading networks.

The file format is a numpy ``.npz`` archive (a zip of ``.npy`` arrays) holding:

=================  ==============================  =========================================
entry              type                            meaning
=================  ==============================  =========================================
``format``         string                          always ``"nnfs-model"``
``format_version`` int                             1
``in_dim``         int                             inputs of the network
``units``          int array, one per layer        outputs of each layer
``activations``    string array, one per layer     ``linear``, ``sigmoid``, ``tanh``, ``relu``,
                                                   ``softmax``
``dtype``          string                          dtype of the network that was saved
``parameters``     float array                     every layer's weights (column by column)
                                                   then its bias, layer after layer
=================  ==============================  =========================================

Saving writes a temporary file next to the destination and renames it over the destination
once it is complete and on disk, so a crash leaves either the old file or the new one, never
half a file. Loading reads the archive with ``allow_pickle=False``: it never runs code from the
file, and it checks every entry (types, shapes, sizes, finite values) before it builds
anything.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import _checks as check
from .activations import ACTIVATIONS
from .errors import (
    ModelFileError,
    NnfsFileNotFoundError,
    NnfsPermissionError,
    NnfsTypeError,
    NnfsValueError,
)
from ._args import dtype_name
from .factory import Factory
from .network import FullyConnected, InferenceNetwork, _parameter_count, inference_network

FORMAT = "nnfs-model"
FORMAT_VERSION = 1
_ENTRIES = ("format", "format_version", "in_dim", "units", "activations", "dtype", "parameters")


def _path(path: object, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise NnfsTypeError(f"{what} must be a file path, got {type(path).__name__}")
    return Path(path)


def check_writable(path: Path, what: str) -> Path:
    """Raise unless a file can be written at ``path``: its directory exists and ``path`` is not
    a directory itself. Returns the directory. Commands call it before long work."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise NnfsFileNotFoundError(f"{what}: the directory {str(directory)!r} of {str(path)!r} "
                                    "does not exist")
    if path.is_dir():
        raise NnfsValueError(f"{what}: {str(path)!r} is a directory, expected a file name")
    return directory


def write_whole(path: Path, write, what: str) -> None:
    """Write a file whole or not at all: ``write(file)`` fills a temporary file in the same
    directory, which is flushed to disk and renamed over ``path``."""
    directory = check_writable(path, what)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except PermissionError:
        raise NnfsPermissionError(f"{what}: cannot write in {str(directory)!r}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _sync_directory(directory: Path) -> None:
    """Put the rename on disk too, so that a power cut after it keeps the new file. Best
    effort: some systems cannot open a directory."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def save(inference: InferenceNetwork, path: object) -> Path:
    """Save the architecture and the parameters of ``inference`` to ``path`` (see the module
    docstring for the format); returns the path."""
    if not isinstance(inference, InferenceNetwork):
        raise NnfsTypeError(
            f"save: inference must be made by nnfs.inference_network, got {type(inference).__name__}"
        )
    check.live(inference, "save: inference")
    path = _path(path, "save: path")
    entries = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "in_dim": np.array(inference.in_dim, dtype=np.int64),
        "units": np.array([layer.out_dim for layer in inference.layers], dtype=np.int64),
        "activations": np.array([layer.activation.kind for layer in inference.layers]),
        "dtype": np.array(inference.factory.dtype),
        "parameters": inference.factory.to_host(inference.parameters),
    }
    write_whole(path, lambda file: np.savez(file, **entries), "save")
    return path


def _scalar(archive, name: str, kind: str, where: str) -> object:
    value = archive[name]
    if value.shape != () or value.dtype.kind not in kind:
        raise ModelFileError(f"{where}: the entry {name!r} must be a single "
                             f"{'integer' if kind == 'iu' else 'string'}, got {value.dtype} "
                             f"of shape {value.shape}")
    return value.item()


def read_model(path: object) -> tuple[int, list[FullyConnected], np.ndarray]:
    """Read and check a model file: (in_dim, layers, flat parameters as float64)."""
    path = _path(path, "load: path")
    where = f"load: {str(path)!r}"
    if not path.exists():
        raise NnfsFileNotFoundError(f"{where} does not exist")
    if path.is_dir():
        raise ModelFileError(f"{where} is a directory, not an nnfs model file")
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed below, after the archive
    except PermissionError:
        raise NnfsPermissionError(f"{where} cannot be read (permission denied)") from None
    with file:
        _check_magic(file.read(8), where)
        file.seek(0)
        try:
            archive = np.load(file, allow_pickle=False)
        except ValueError as error:
            if "pickle" in str(error):
                raise ModelFileError(f"{where} holds pickled Python objects, which nnfs never "
                                     "loads (unpickling can run code): not an nnfs model") from None
            raise ModelFileError(f"{where} is not an nnfs model file: {error}") from None
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise ModelFileError(f"{where} is not an nnfs model file (an .npz archive): "
                                 f"{error}") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ModelFileError(f"{where} is a single numpy array, not an nnfs model archive")
        with archive:
            return _check_archive(archive, where)


#: How the files np.load reads begin: a zip archive (.npz), one array (.npy), a pickle.
_ZIP, _NPY, _PICKLE = b"PK\x03\x04", b"\x93NUMPY", b"\x80"


def _check_magic(head: bytes, where: str) -> None:
    """Refuse what is no .npz archive by its first bytes, before numpy reads it: numpy takes
    anything that is neither zip nor .npy for a pickle, and says so even for a text file."""
    if head.startswith(_ZIP):
        return
    if head.startswith(_NPY):
        raise ModelFileError(f"{where} is a single numpy array, not an nnfs model archive")
    if head.startswith(_PICKLE):
        raise ModelFileError(f"{where} holds pickled Python objects, which nnfs never loads "
                             "(unpickling can run code): not an nnfs model file")
    shown = "it is empty" if not head else f"it starts with {head!r}"
    raise ModelFileError(f"{where} is not an nnfs model file (an .npz archive, which starts "
                         f"with {_ZIP!r}): {shown}")


def _check_archive(archive, where: str) -> tuple[int, list[FullyConnected], np.ndarray]:
    missing = [name for name in _ENTRIES if name not in archive.files]
    if missing:
        raise ModelFileError(f"{where} is not an nnfs model file: it lacks "
                             f"{', '.join(map(repr, missing))}")
    try:
        if _scalar(archive, "format", "U", where) != FORMAT:
            raise ModelFileError(f"{where} is not an nnfs model file (format is not {FORMAT!r})")
        version = _scalar(archive, "format_version", "iu", where)
        if version != FORMAT_VERSION:
            raise ModelFileError(f"{where} has model format version {version}; this nnfs reads "
                                 f"version {FORMAT_VERSION} (upgrade nnfs-core to read newer files)")
        in_dim = _scalar(archive, "in_dim", "iu", where)
        units = archive["units"]
        activations = archive["activations"]
        dtype = _scalar(archive, "dtype", "U", where)
        if units.ndim != 1 or units.dtype.kind not in "iu" or units.size == 0:
            raise ModelFileError(f"{where}: 'units' must be a non-empty list of integers")
        if activations.ndim != 1 or activations.dtype.kind != "U" or activations.size != units.size:
            raise ModelFileError(f"{where}: 'activations' must be {units.size} names, one per layer")
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
        expected = _parameter_count(int(in_dim), units.tolist())
        _check_member_size(archive, "parameters", expected, where)
        parameters = archive["parameters"]
    except ValueError as error:  # an entry holding objects: numpy refuses to unpickle it
        raise ModelFileError(f"{where}: an entry holds Python objects, which nnfs never "
                             f"loads ({error})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"{where} is damaged or truncated: {error}") from None
    if parameters.ndim != 1 or parameters.dtype.kind != "f" or parameters.size != expected:
        raise ModelFileError(
            f"{where}: 'parameters' must be {expected} floats for in_dim {in_dim} and units "
            f"{units.tolist()}, got {parameters.dtype} of shape {parameters.shape}"
        )
    bad = check.first_non_finite(parameters)
    if bad is not None:
        raise ModelFileError(f"{where}: parameter {bad[0][0]} is {bad[1]}; a model holds finite "
                             "numbers")
    layers = [FullyConnected(int(n), ACTIVATIONS[name])
              for n, name in zip(units.tolist(), activations.tolist())]
    return int(in_dim), layers, parameters.astype(np.float64)


def _check_member_size(archive, name: str, count: int, where: str) -> None:
    """Refuse an entry far larger than ``count`` float64 before numpy reads it into memory."""
    info = archive.zip.getinfo(f"{name}.npy")
    if info.file_size > count * 8 + 4096:
        raise ModelFileError(f"{where}: 'parameters' holds {info.file_size} bytes, far more than "
                             f"the {count} parameters of its architecture need")


def _describe(in_dim: int, layers: list[FullyConnected]) -> str:
    return f"{in_dim} → " + " → ".join(f"{layer.units} {layer.activation.kind}" for layer in layers)


def load(path: object, target: Factory | InferenceNetwork) -> InferenceNetwork:
    """Load a saved network.

    ``load(path, factory)`` builds a new network on ``factory`` (in its dtype); ``load(path,
    network)`` loads the parameters into an existing network, which must have the file's
    architecture. Nothing is allocated or changed unless the whole file is valid.
    """
    if not isinstance(target, (Factory, InferenceNetwork)):
        raise NnfsTypeError(
            "load: the second argument must be a factory (to build a new network) or an "
            f"inference network (to load into), got {type(target).__name__}"
        )
    check.live(target, "load: target")
    in_dim, layers, parameters = read_model(path)
    dtype = target.numpy_dtype if isinstance(target, Factory) else target.factory.numpy_dtype
    too_large = np.abs(parameters) > np.finfo(dtype).max
    if too_large.any():
        index = int(np.argmax(too_large))
        raise ModelFileError(f"load: {str(path)!r}: parameter {index} is {float(parameters[index])!r}, "
                             f"too large for {dtype} (the dtype of the network it would go into)")
    if isinstance(target, Factory):
        network = inference_network(target, in_dim, layers)
    else:
        network = target
        ours = (network.in_dim, [(layer.out_dim, layer.activation.kind) for layer in network.layers])
        theirs = (in_dim, [(layer.units, layer.activation.kind) for layer in layers])
        if ours != theirs:
            raise ModelFileError(
                f"load: {str(path)!r} holds a network {_describe(in_dim, layers)}, but the network "
                f"to load into is {_describe(network.in_dim, network.architecture)}"
            )
    try:
        network.factory.from_host(parameters, network.parameters)
    except BaseException:
        if network is not target:
            network.release()
        raise
    return network
