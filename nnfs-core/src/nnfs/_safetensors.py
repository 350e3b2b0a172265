"""Model files in the safetensors format, which Hugging Face's tools and PyTorch read.

A safetensors file is an 8-byte little-endian length N, a header of N bytes of JSON, then the
tensors' bytes, little-endian, one after the other. nnfs writes one tensor per layer's weights
and one per bias, in the layout PyTorch's ``nn.Linear`` uses, and the architecture in the
header's ``__metadata__`` (strings only, as the format wants):

=========================  ====================================================================
``layers.{i}.weight``      layer i's weights, units × inputs (``z = W·a + b``)
``layers.{i}.bias``        layer i's bias, units
``__metadata__``           ``format`` ("nnfs-model"), ``format_version`` ("1"), ``in_dim``,
                           ``units`` and ``activations`` (JSON lists), ``dtype``; and, when the
                           model has them, ``task`` and ``classes`` (a JSON list)
=========================  ====================================================================

**Writing** goes through the ``safetensors`` package (``pip install 'nnfs-core[safetensors]'``),
the format's reference implementation, so that every file nnfs writes is laid out as the
format's own writer lays it out (``safetensors.numpy.load_file`` reads it).

**Reading** is nnfs's own, and needs no package: the format is simple, and reading it here
lets nnfs check it as it checks its npz files, in its own terms and before it trusts anything.
The length is checked against the file and against :data:`MAX_HEADER_BYTES` before the header
is read; the header is parsed as JSON that may hold no duplicate keys; its metadata must
declare a network, and its tensors must be exactly that network's (names, dtype, shapes), with
offsets that cover the data exactly, without gaps or overlaps, to the end of the file; only
then, once the caller has checked that the network fits its device, are the tensors read,
each as far as its shape says. Nothing in the file is executed. Every failure is the caller's
error class (``ModelFileError``) naming the file and what is wrong.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from .errors import MissingDependency, NnfsError

#: The longest header nnfs reads: far more than a model of the most layers nnfs loads
#: (10,000) declares, and a bound that keeps a crafted length from making nnfs read gigabytes
#: of JSON.
MAX_HEADER_BYTES = 16 << 20
#: The safetensors dtype code of each dtype nnfs saves in.
DTYPE_CODES = {"float32": "F32", "float64": "F64"}
#: The keys of a tensor's entry in the header.
_TENSOR_KEYS = {"dtype", "shape", "data_offsets"}
#: The metadata keys of an nnfs model (``task`` and ``classes`` may be left out).
REQUIRED_METADATA = ("format", "format_version", "in_dim", "units", "activations", "dtype")
OPTIONAL_METADATA = ("task", "classes")


def tensor_names(layers: int) -> list[str]:
    """The tensors of a network of ``layers`` layers, in the order nnfs keeps its parameters."""
    return [name for i in range(layers) for name in (f"layers.{i}.weight", f"layers.{i}.bias")]


def looks_like_safetensors(head: bytes) -> bool:
    """Whether a file's first bytes are those of a safetensors file (a length, then ``{``)."""
    return len(head) >= 9 and head[8:9] == b"{"


# --- writing ------------------------------------------------------------------------------------

def _library():
    try:
        import safetensors.numpy
    except ImportError:
        raise MissingDependency("saving in the safetensors format needs the safetensors "
                                "package, which is not installed: pip install "
                                "'nnfs-core[safetensors]' (loading needs nothing more)") from None
    return safetensors.numpy


def require_writer() -> None:
    """Raise :class:`nnfs.MissingDependency` unless safetensors files can be written here."""
    _library()


def encode(metadata: dict[str, str], in_dim: int, units: list[int],
           parameters: np.ndarray) -> bytes:
    """The bytes of a safetensors file of the network whose flat ``parameters`` (each layer's
    weights column by column, then its bias) have the dtype they are stored in."""
    library = _library()
    tensors, start, width = {}, 0, in_dim
    for i, count in enumerate(units):
        size = count * width
        # the weights are kept column by column: as a C array, units × inputs is their transpose
        tensors[f"layers.{i}.weight"] = np.ascontiguousarray(
            parameters[start:start + size].reshape(width, count).T)
        tensors[f"layers.{i}.bias"] = np.ascontiguousarray(parameters[start + size:
                                                                      start + size + count])
        start += size + count
        width = count
    return library.save(tensors, metadata=metadata)


def header_length(data: bytes) -> int:
    """The header length a safetensors file's bytes declare."""
    return int.from_bytes(data[:8], "little")


# --- reading ------------------------------------------------------------------------------------

def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"the key {twice!r} appears twice")
    return dict(pairs)


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is no JSON number")


@dataclass(frozen=True)
class Tensor:
    """A tensor's entry in the header, checked for its form (not yet against a network)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


class SafetensorsFile:
    """An open safetensors file whose header has been read and checked for its form: a JSON
    object of string metadata and well-formed tensor entries whose offsets cover the data
    exactly (see the module docstring). ``where`` names the file in messages; ``error`` is
    the class of the errors raised."""

    def __init__(self, file: io.BufferedIOBase, where: str, error: type[NnfsError]):
        self.file, self.where, self.error = file, where, error
        try:
            size = os.fstat(file.fileno()).st_size
            head = file.read(8)
        except OSError as failure:
            raise error(f"{where} cannot be read: {failure.strerror or failure}") from None
        if len(head) < 8:
            raise error(f"{where} is damaged or truncated: a safetensors file starts with an "
                        f"8-byte header length, and it has {size} bytes")
        length = int.from_bytes(head, "little")
        if length > MAX_HEADER_BYTES:
            raise error(f"{where}: its header declares {length} bytes; nnfs reads safetensors "
                        f"headers of at most {MAX_HEADER_BYTES} bytes")
        if 8 + length > size:
            raise error(f"{where} is damaged or truncated: its header declares {length} bytes, "
                        f"but the file has {size - 8} after the length")
        raw = file.read(length)
        if len(raw) != length:
            raise error(f"{where} is damaged or truncated: its header is cut short")
        self.data_start = 8 + length
        self.data_size = size - self.data_start
        self.metadata, self.tensors = self._parse(raw)

    def _parse(self, raw: bytes) -> tuple[dict[str, str], dict[str, Tensor]]:
        where, error = self.where, self.error
        try:
            text = raw.decode("utf-8")
            header = json.loads(text, object_pairs_hook=_no_duplicates,
                                parse_constant=_no_constants)
        except RecursionError:
            raise error(f"{where}: its header is JSON nested too deeply to be a safetensors "
                        "header") from None
        except (UnicodeDecodeError, ValueError) as failure:
            raise error(f"{where} is damaged: its header is not the JSON of a safetensors "
                        f"file ({' '.join(str(failure).split())[:200]})") from None
        if not isinstance(header, dict):
            raise error(f"{where}: its header is a JSON {type(header).__name__}, not the object "
                        "of a safetensors file")
        metadata = header.pop("__metadata__", None)
        if metadata is None:
            raise error(f"{where} is a safetensors file with no metadata: not an nnfs model "
                        "(nnfs keeps the architecture in '__metadata__')")
        if not isinstance(metadata, dict) or not all(isinstance(value, str)
                                                     for value in metadata.values()):
            raise error(f"{where}: its '__metadata__' must map names to strings")
        tensors = {name: self._tensor(name, entry) for name, entry in header.items()}
        self._check_coverage(list(tensors.values()))
        return metadata, tensors

    def _tensor(self, name: str, entry: object) -> Tensor:
        where, error = self.where, self.error
        if not isinstance(entry, dict) or set(entry) != _TENSOR_KEYS:
            raise error(f"{where}: the tensor {name[:80]!r} must have exactly 'dtype', 'shape' "
                        "and 'data_offsets'")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or len(dtype) > 8:
            raise error(f"{where}: the tensor {name[:80]!r} has no dtype code")
        if not isinstance(shape, list) or len(shape) > 8 or not all(_natural(n) for n in shape):
            raise error(f"{where}: the shape of the tensor {name[:80]!r} must be a list of "
                        "sizes (whole numbers, 0 or more)")
        if not isinstance(offsets, list) or len(offsets) != 2 \
                or not all(_natural(n) for n in offsets) or offsets[0] > offsets[1]:
            raise error(f"{where}: the data_offsets of the tensor {name[:80]!r} must be "
                        "[begin, end], whole numbers with begin ≤ end")
        return Tensor(name, dtype, tuple(shape), offsets[0], offsets[1])

    def _check_coverage(self, tensors: list[Tensor]) -> None:
        """The tensors' data must follow one another from the start of the data to the end of
        the file: no gap, no overlap, nothing after them."""
        position = 0
        for tensor in sorted(tensors, key=lambda t: (t.begin, t.end)):
            if tensor.begin != position:
                what = "overlaps the one before it" if tensor.begin < position else \
                    f"leaves a gap of {tensor.begin - position} bytes before it"
                raise self.error(f"{self.where} is damaged: the data of the tensor "
                                 f"{tensor.name[:80]!r} {what}")
            position = tensor.end
        if position != self.data_size:
            raise self.error(
                f"{self.where} is damaged or truncated: its tensors hold {position} bytes of "
                f"data, but the file has {self.data_size} after its header")

    def read(self, tensor: Tensor, dtype: np.dtype) -> np.ndarray:
        """The tensor's values (``dtype``, its little-endian code checked by the caller), read
        from the file as far as its offsets say, in native byte order."""
        flat = np.empty(math.prod(tensor.shape), dtype=dtype.newbyteorder("<"))
        try:
            self.file.seek(self.data_start + tensor.begin)
            got = self.file.readinto(flat.view(np.uint8))
        except OSError as failure:
            raise self.error(f"{self.where} cannot be read: {failure.strerror or failure}") \
                from None
        if got != flat.nbytes:
            raise self.error(f"{self.where} is truncated: the data of the tensor "
                             f"{tensor.name!r} is cut short (did the file change while it was "
                             "read?)")
        return flat.reshape(tensor.shape).astype(dtype.newbyteorder("="))


def _natural(value: object) -> bool:
    """A JSON whole number of 0 or more (not a boolean, not a float)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
