"""Damaged and crafted files, for the catalogue of bad input (tests/test_bad_input.py) and
for the fuzz and memory tests of test_io.py and test_data.py.

Each builder returns the bytes of one file that a careless user or an attacker could hand to
``nnfs.load``, ``nnfs train --data`` or ``nnfs predict --model``: the zip and ``.npy`` tricks
that numpy's own reader lets through as raw exceptions or huge allocations, CSV files that
trip the csv module, and IDX files whose header lies. With each comes what the nnfs error must
say: the thing it names and what was expected.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The model every damaged model file starts from: 3 → 4 tanh → 2 sigmoid (26 parameters).
MODEL_UNITS = (4, 2)
MODEL_PARAMETERS = 3 * 4 + 4 + 4 * 2 + 2


def npy(array: np.ndarray) -> bytes:
    """``array`` in .npy format."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_header(descr: str, shape: tuple, fortran: bool = False, version: int = 1) -> bytes:
    """A .npy header alone, declaring any dtype and shape."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran, "shape": shape}
    if version == 1:
        np.lib.format.write_array_header_1_0(buffer, header)
    else:
        np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def zip_of(members: list[tuple[str, bytes]] | dict[str, bytes],
           method: int = zipfile.ZIP_STORED) -> bytes:
    """A zip archive of ``members`` (name, bytes), in order, duplicates allowed."""
    items = members.items() if isinstance(members, dict) else members
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose
        with zipfile.ZipFile(buffer, "w", method) as archive:
            for name, data in items:  # a fixed date: the same bytes on every call
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                info.compress_type = method
                archive.writestr(info, data)
    return buffer.getvalue()


def model_entries(dtype: str = "float32") -> dict[str, np.ndarray]:
    """The entries of a valid model file of the network above, parameters 0.01, 0.02, ..."""
    return {
        "format": np.array("nnfs-model"),
        "format_version": np.array(1, dtype=np.int64),
        "in_dim": np.array(3, dtype=np.int64),
        "units": np.array(MODEL_UNITS, dtype=np.int64),
        "activations": np.array(["tanh", "sigmoid"]),
        "dtype": np.array(dtype),
        "parameters": (np.arange(1, MODEL_PARAMETERS + 1) / 100).astype(dtype),
    }


def model_members(**changes: bytes | np.ndarray | None) -> dict[str, bytes]:
    """The members of a valid model archive, some replaced (arrays or raw bytes) or left out."""
    members = {f"{name}.npy": npy(value) for name, value in model_entries().items()}
    for name, value in changes.items():
        if value is None:
            members.pop(f"{name}.npy")
        else:
            members[f"{name}.npy"] = value if isinstance(value, bytes) else npy(value)
    return members


def good_model() -> bytes:
    return zip_of(model_members())


def _central_directory_byte(data: bytes, offset: int, value: int, member: int = 0) -> bytes:
    """``data`` with byte ``offset`` of the ``member``-th central directory record set."""
    raw = bytearray(data)
    position = -1
    for _ in range(member + 1):
        position = raw.find(b"PK\x01\x02", position + 1)
    raw[position + offset] = value
    return bytes(raw)


def _bomb_member(name: str, header: bytes, pattern: bytes, size: int) -> bytes:
    """A deflated zip member named ``name``: ``header`` then ``size`` bytes of ``pattern``,
    streamed (never all in memory): a small file that declares a huge entry."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open(name, "w", force_zip64=True) as member:
        member.write(header)
        chunk = pattern * ((1 << 20) // len(pattern))
        left = size
        while left > 0:
            member.write(chunk[:left])
            left -= len(chunk)
    return buffer.getvalue()


def model_bomb(declared_bytes: int) -> bytes:
    """A model archive of a few hundred kilobytes whose 'activations' entry declares
    ``declared_bytes`` of names (all "tanh"), deflated: numpy would read all of it."""
    count = declared_bytes // 16
    bomb = _bomb_member("activations.npy", npy_header("<U4", (count,)),
                        "tanh".encode("utf-32-le"), count * 16)
    others = zip_of({k: v for k, v in model_members().items() if k != "activations.npy"})
    return _merge_zips(others, bomb)


def _merge_zips(*archives: bytes) -> bytes:
    """One zip archive holding the members of ``archives`` (each copied as it is stored)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as merged:
        for data in archives:
            with zipfile.ZipFile(io.BytesIO(data)) as source:
                for info in source.infolist():
                    with source.open(info) as member, merged.open(info, "w",
                                                                  force_zip64=True) as out:
                        while block := member.read(1 << 20):
                            out.write(block)
    return buffer.getvalue()


@dataclass(frozen=True)
class BadFile:
    """A damaged or crafted file: its bytes, and what the error must say about it."""

    name: str
    make: Callable[[], bytes]
    given: str  # a piece of the message: what the file holds
    expected: str  # a piece of the message: what nnfs expected
    suffix: str = ".npz"


def _flip_in_member(data: bytes, member_name: str, back: int = 3) -> bytes:
    """``data`` with one byte of the stored member ``member_name``'s data changed."""
    raw = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(member_name)
    header = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + header[0] + header[1]
    raw[start + info.compress_size - back] ^= 0x40
    return bytes(raw)


def _damaged_deflate() -> bytes:
    data = bytearray(zip_of(model_members(), zipfile.ZIP_DEFLATED))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("parameters.npy")
    start = info.header_offset + 30 + len("parameters.npy")
    data[start + 2:start + 10] = b"\xff" * 8
    return bytes(data)


#: Model files that are damaged or crafted, each refused with a ModelFileError.
MODEL_FILES = [
    BadFile("member-without-npy-suffix",
            lambda: zip_of({("format" if k == "format.npy" else k): v
                            for k, v in model_members().items()}),
            "its member 'format' is not a .npy array", "holds only .npy members"),
    BadFile("member-not-in-npy-format", lambda: zip_of(model_members(units=b"hello world")),
            "the entry 'units' is not a readable .npy array", "damaged"),
    BadFile("encrypted-member", lambda: _central_directory_byte(good_model(), 8, 1),
            "'format.npy' is encrypted", "which nnfs does not read"),
    BadFile("unknown-compression-method", lambda: _central_directory_byte(good_model(), 10, 99),
            "compressed with zip method 99", "nnfs reads stored (0) and deflated (8)"),
    BadFile("bzip2-member", lambda: zip_of(model_members(), zipfile.ZIP_BZIP2),
            "compressed with zip method 12", "nnfs reads stored (0) and deflated (8)"),
    BadFile("header-of-a-trillion-floats",
            lambda: zip_of(model_members(parameters=npy_header("<f4", (10**12,))
                                         + bytes(4 * MODEL_PARAMETERS))),
            "declares float32 of shape (1000000000000,)", "but its member holds"),
    BadFile("damaged-deflate-data", _damaged_deflate, "'parameters'", "damaged"),
    BadFile("wrong-crc", lambda: _flip_in_member(good_model(), "parameters.npy"),
            "'parameters'", "Bad CRC-32"),
    BadFile("activations-that-declare-40-MB", lambda: model_bomb(40 << 20),
            "got <U4 of shape (2621440,)", "must be 2 names, one per layer"),
    BadFile("a-string-of-3-million-characters",
            lambda: zip_of(model_members(format=np.array("x" * 3_000_000)), zipfile.ZIP_DEFLATED),
            "got <U3000000 of shape ()", "must be a single string"),
    BadFile("a-million-layers",
            lambda: zip_of(model_members(units=np.ones(10**6, dtype=np.int64)),
                           zipfile.ZIP_DEFLATED),
            "got int64 of shape (1000000,)", "at most 10000 layers"),
    BadFile("two-members-of-one-name",
            lambda: zip_of([*model_members().items(), ("units.npy", npy(np.array([9, 2])))]),
            "two members named 'units.npy'", "names each array once"),
    BadFile("npy-format-version-3",
            lambda: zip_of(model_members(units=npy(np.array(MODEL_UNITS)).replace(
                b"\x93NUMPY\x01\x00", b"\x93NUMPY\x03\x00"))),
            "format version 3.0", "reads versions 1.0 and 2.0"),
    BadFile("structured-parameters",
            lambda: zip_of(model_members(parameters=np.zeros(MODEL_PARAMETERS,
                                                             [("a", "<f4")]))),
            "holds [('a', '<f4')]", "not an array of numbers or text"),
    BadFile("negative-shape",
            lambda: zip_of(model_members(parameters=npy_header("<f4", (-26,)))),
            "declares the shape (-26,)", "'parameters'"),
    BadFile("items-of-no-bytes",
            lambda: zip_of(model_members(activations=npy_header("<U0", (2,)))),
            "holds <U0", "items of no bytes"),
    BadFile("units-of-python-objects",
            lambda: zip_of(model_members(units=np.array([4, 2], dtype=object))),
            "'units' holds Python objects", "never loads"),
    BadFile("format-as-bytes", lambda: zip_of(model_members(format=np.array(b"nnfs-model"))),
            "got |S10 of shape ()", "must be a single string"),
    BadFile("in_dim-a-float", lambda: zip_of(model_members(in_dim=np.array(3.0))),
            "got float64 of shape ()", "must be a single integer"),
    BadFile("parameters-as-a-matrix",
            lambda: zip_of(model_members(parameters=np.zeros((2, 13), np.float32, order="F"))),
            "got float32 of shape (2, 13)", "must be 26 floats"),
    BadFile("parameters-of-complex-numbers",
            lambda: zip_of(model_members(parameters=np.zeros(26, np.complex64))),
            "got complex64 of shape (26,)", "must be 26 floats"),
    BadFile("an-empty-zip-archive", lambda: zip_of({}), "lacks 'format'", "not an nnfs model file"),
    BadFile("an-empty-file", lambda: b"", "it is empty", "not an nnfs model file"),
    BadFile("only-the-first-bytes", lambda: good_model()[:40],
            "is damaged or truncated", "not a readable nnfs model file"),
]


# --- data files -----------------------------------------------------------------------------------

def csv_rows(rows: int = 40, seed: int = 0) -> str:
    """A valid CSV of ``rows`` samples: header a,b,c,label; two classes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    lines = [f"{a:.4f},{b:.4f},{c:.4f},{int(a > 0)}" for a, b, c in X]
    return "\n".join(["a,b,c,label", *lines]) + "\n"


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _gzip_bomb(header: bytes, size: int) -> bytes:
    """gzip of ``header`` then ``size`` zero bytes, streamed."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as file:
        file.write(header)
        chunk = bytes(1 << 20)
        while size > 0:
            file.write(chunk[:size])
            size -= len(chunk)
    return buffer.getvalue()


def idx_gzip_bomb(declared_images: int, extra_bytes: int) -> bytes:
    """A gzip IDX images file declaring ``declared_images`` of 28×28 and holding
    ``extra_bytes`` more than that."""
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (declared_images, 28, 28))
    return _gzip_bomb(header, declared_images * 784 + extra_bytes)


def npz_data(**arrays) -> bytes:
    return zip_of({f"{k}.npy": npy(v) for k, v in arrays.items()})


def _damaged_gzip() -> bytes:
    """gzip of an IDX file whose header is intact and whose data is damaged."""
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16))
    data = bytearray(gzip.compress(idx_bytes(images)))
    data[-200:-190] = b"\xff" * 10
    return bytes(data)


#: Data files that are damaged or crafted (CSV, npz, IDX images), each refused with a
#: DataFileError. ``suffix`` gives the file its kind; IDX files are named *-images-idx3-ubyte.
DATA_FILES = [
    BadFile("csv-with-a-quote-that-never-closes",
            lambda: ("a,b,label\n1,2,0\n3,\"4,1\n" + "5,6,1\n" * 10).encode(),
            "line 3", "a quote opens a field that never closes", ".csv"),
    BadFile("csv-with-a-quote-in-a-field", lambda: b'a,b,label\n1,2,0\n3,"4"x,1\n',
            "line 3", "a quote in the middle of a field", ".csv"),
    BadFile("csv-with-a-quote-inside-a-number", lambda: b'a,b,label\n1,2,0\n3,4"5,1\n',
            "line 3: column 1 ('b') holds '4\"5'", "not a finite number", ".csv"),
    BadFile("csv-with-a-field-over-128-KiB",
            lambda: ("a,b,label\n1,2,0\n3," + "4" * 200_000 + ",1\n").encode(),
            "line 3", "a field longer than 131072 characters", ".csv"),
    BadFile("csv-a-stray-quote-into-a-long-file",
            lambda: ('a,b,label\n"1,2,0\n' + "3,4,1\n" * 30_000).encode(),
            "line", "stray quote", ".csv"),
    BadFile("csv-in-utf-16", lambda: csv_rows(4).encode("utf-16"),
            "is not a text (UTF-8) CSV file", "it is UTF-16", ".csv"),
    BadFile("csv-of-invalid-utf-8", lambda: b"a,b,label\n1,2,0\n3,\xff\xfe,1\n",
            "is not a text (UTF-8) CSV file", "not UTF-8", ".csv"),
    BadFile("csv-with-a-nul-byte", lambda: b"a,b,label\n1,2,0\n3,4\x00,1\n",
            "line 3: column 1 ('b') holds '4\\x00'", "not a finite number", ".csv"),
    BadFile("csv-with-a-label-of-1e20", lambda: b"a,b,c,label\n1,2,3,0\n3,4,5,1e20\n",
            "the label 1e+20", "is not a class number", ".csv"),
    BadFile("csv-with-a-label-of-3e9", lambda: b"a,b,c,label\n1,2,3,0\n3,4,5,3000000000\n",
            "the label 3000000000.0", "up to 2147483647", ".csv"),
    BadFile("csv-whose-first-sample-has-a-question-mark", lambda: b"1,?,0\n3,4,1\n5,6,0\n",
            "line 1: column 1 holds '?'", "a header's names must not be numbers", ".csv"),
    BadFile("csv-with-semicolons", lambda: b"a;b;label\n1;2;0\n3;4;1\n",
            "holds '1;2;0'", "separated by ';'", ".csv"),
    BadFile("csv-labels-of-numbers-and-text", lambda: b"a,b,c,label\n1,2,3,cat\n4,5,6,7\n",
            "line 3: the label column 3 ('label') holds '7' among text",
            "all class numbers, all text, or all targets", ".csv"),
    BadFile("csv-a-target-of-infinity", lambda: b"a,b,c,y\n1,2,3,0.5\n4,5,6,-inf\n",
            "line 3: column 3 ('y') holds '-inf'", "not a finite number", ".csv"),
    BadFile("npz-labels-of-long-text",
            lambda: npz_data(X=np.zeros((2, 3)), y=np.array(["a", "b" * 2000])),
            "got <U2000 of shape (2,)", "text of at most 1024 characters"),
    BadFile("npz-labels-of-bytes",
            lambda: npz_data(X=np.zeros((2, 3)), y=np.array([b"a", b"b"])),
            "got |S1 of shape (2,)", "one label per sample"),
    BadFile("npy-named-npz", lambda: npy(np.zeros((4, 3))),
            "is a single numpy array (.npy)", "not an .npz data archive"),
    BadFile("npz-truncated", lambda: npz_data(X=np.zeros((4, 3)), y=np.zeros(4))[:100],
            "is damaged or truncated", "not a readable .npz data file"),
    BadFile("npz-of-a-trillion-samples",
            lambda: zip_of({"X.npy": npy_header("<f8", (10**12, 3)) + bytes(96),
                            "y.npy": npy(np.zeros(4))}),
            "declares float64 of shape (1000000000000, 3)", "but its member holds"),
    BadFile("npz-whose-labels-do-not-match-the-samples",
            lambda: npz_data(X=np.zeros((4, 3)), y=np.zeros(5)), "4 samples but 5 labels",
            "labels"),
    BadFile("npz-label-of-2-to-the-63",
            lambda: npz_data(X=np.zeros((2, 3)), y=np.array([0, 2**63], dtype=np.uint64)),
            "the label 9223372036854775808", "is not a class number"),
    BadFile("npz-label-of-1e20",
            lambda: npz_data(X=np.zeros((2, 3)), y=np.array([0, 1e20])),
            "the label 1e+20 in row 1", "is not a class number"),
    BadFile("npz-with-a-member-not-npy",
            lambda: zip_of({"X.npy": npy(np.zeros((4, 3))), "y.npy": b"not an array"}),
            "the entry 'y' is not a readable .npy array", "damaged"),
    BadFile("npz-with-an-object-array",
            lambda: npz_data(X=np.array([[1.0, object(), 2.0]], dtype=object), y=np.zeros(1)),
            "holds Python objects", "never loads"),
    BadFile("idx-gz-with-damaged-deflate", _damaged_gzip, "IDX file", "damaged",
            "-images-idx3-ubyte.gz"),
    BadFile("idx-gz-truncated",
            lambda: gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 256, (4, 16,
                                                                                  16))))[:300],
            "IDX file", "damaged", "-images-idx3-ubyte.gz"),
    BadFile("idx-cut-short", lambda: idx_bytes(np.zeros((4, 2, 2)))[:-1],
            "promises 16 bytes of data for shape (4, 2, 2)", "the file has 15",
            "-images-idx3-ubyte"),
    BadFile("idx-of-no-images", lambda: idx_bytes(np.zeros((0, 28, 28))),
            "holds no images", "shape (0, 28, 28)", "-images-idx3-ubyte"),
    BadFile("idx-gz-holding-far-more-than-its-header-declares",
            lambda: idx_gzip_bomb(4, 20 << 20), "more data than the 3136 bytes",
            "its header promises", "-images-idx3-ubyte.gz"),
    BadFile("idx-gz-header-declaring-more-than-gzip-can-hold",
            lambda: gzip.compress(bytes([0, 0, 8, 3]) + b"".join(
                n.to_bytes(4, "big") for n in (4, 50_000, 50_000))),
            "promises 10000000000 bytes", "more than a gzip file", "-images-idx3-ubyte.gz"),
    BadFile("idx-of-floats", lambda: idx_bytes(np.zeros((2, 2, 2)), type_code=0x0D),
            "holds floats (IDX type 0x0D)", "unsigned bytes (0x08)", "-images-idx3-ubyte"),
    BadFile("idx-labels-where-images-belong", lambda: idx_bytes(np.zeros(4)),
            "holds an array of shape (4,)", "expected images", "-images-idx3-ubyte"),
]




# --- safetensors model files --------------------------------------------------------------------

def model_tensors(dtype: str = "float32") -> dict[str, np.ndarray]:
    """The tensors of the model of ``model_entries``, as a safetensors file holds them."""
    parameters = model_entries(dtype)["parameters"]
    tensors, start, width = {}, 0, 3
    for i, units in enumerate(MODEL_UNITS):
        tensors[f"layers.{i}.weight"] = parameters[start:start + units * width].reshape(
            width, units).T.copy()
        tensors[f"layers.{i}.bias"] = parameters[start + units * width:
                                                 start + units * width + units].copy()
        start += units * width + units
        width = units
    return tensors


def model_metadata(dtype: str = "float32", **changes: str | None) -> dict[str, str]:
    metadata = {"format": "nnfs-model", "format_version": "1", "in_dim": "3",
                "units": "[4, 2]", "activations": '["tanh", "sigmoid"]', "dtype": dtype}
    metadata.update(changes)
    return {key: value for key, value in metadata.items() if value is not None}


def safetensors_file(header: dict | str | bytes, data: bytes, length: int | None = None) -> bytes:
    """A safetensors file: the 8-byte length (``length``, or the header's own), the header
    (a dict as compact JSON, or text or bytes as given), then ``data``."""
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":"))
    raw = header.encode() if isinstance(header, str) else header
    return (len(raw) if length is None else length).to_bytes(8, "little") + raw + data


def safetensors_model(metadata: dict | None = None, tensors: dict | None = None,
                      entries: dict | None = None, dtype: str = "float32") -> tuple[dict, bytes]:
    """The header and data of a model in the safetensors format, as nnfs writes it: its
    metadata and tensors (each may be changed), and ``entries`` changing tensor entries."""
    metadata = model_metadata(dtype) if metadata is None else metadata
    tensors = model_tensors(dtype) if tensors is None else tensors
    header: dict = {"__metadata__": metadata}
    data, offset = b"", 0
    codes = {np.dtype("float32"): "F32", np.dtype("float64"): "F64",
             np.dtype("float16"): "F16"}
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    for name, entry in (entries or {}).items():
        header[name] = entry
    return header, data


def good_safetensors(dtype: str = "float32") -> bytes:
    return safetensors_file(*safetensors_model(dtype=dtype))


def _tensors(**changes: np.ndarray | None) -> dict[str, np.ndarray]:
    tensors = model_tensors()
    tensors.update(changes)
    return {name: value for name, value in tensors.items() if value is not None}


def _st(metadata=None, tensors=None, entries=None) -> bytes:
    return safetensors_file(*safetensors_model(metadata, tensors, entries))


def _st_offsets(name: str, offsets: list) -> bytes:
    header, data = safetensors_model()
    header[name] = dict(header[name], data_offsets=offsets)
    return safetensors_file(header, data)


def _st_text(header_text: str) -> bytes:
    """A file whose header is ``header_text`` and whose data is the good model's."""
    return safetensors_file(header_text, safetensors_model()[1])


def _st_nan() -> bytes:
    weights = model_tensors()["layers.0.weight"].copy()
    weights.flat[5] = np.nan  # row 1, column 2: parameter 2·4 + 1 = 9 in nnfs's column order
    return _st(tensors=_tensors(**{"layers.0.weight": weights}))


_ST = ".safetensors"
#: Model files in the safetensors format that are damaged or crafted, each refused with a
#: ModelFileError (part of MODEL_FILES, so on every path that reads a model).
SAFETENSORS_FILES = [
    BadFile("st-header-length-of-2-to-the-63",
            lambda: safetensors_file(*safetensors_model(), length=2**63),
            "declares 9223372036854775808 bytes", "at most 16777216", _ST),
    BadFile("st-header-longer-than-the-file",
            lambda: safetensors_file(*safetensors_model(), length=100_000),
            "its header declares 100000 bytes", "damaged or truncated", _ST),
    BadFile("st-shorter-than-its-length", lambda: b"\x10\x00\x00\x00",
            "it has 4 bytes", "starts with an 8-byte header length", _ST),
    BadFile("st-header-not-json", lambda: _st_text("{not json at all}"),
            "is damaged", "not the JSON of a safetensors file", _ST),
    BadFile("st-header-of-invalid-utf-8", lambda: _st_text("{}")[:8] + b"{\xff}",
            "is damaged", "not the JSON of a safetensors file", _ST),
    BadFile("st-header-a-json-list", lambda: _st_text("[1, 2, 3]"),
            "a JSON list", "not the object of a safetensors file", _ST),
    BadFile("st-header-nested-100000-deep",
            lambda: _st_text('{"a":' + "[" * 100_000 + "]" * 100_000 + "}"),
            "nested too deeply", "safetensors header", _ST),
    BadFile("st-a-key-twice",
            lambda: _st_text(json.dumps(safetensors_model()[0], separators=(",", ":"))[:-1]
                             + ',"__metadata__":{}}'),
            "the key '__metadata__' appears twice", "not the JSON of a safetensors file", _ST),
    BadFile("st-nan-in-the-json", lambda: _st_offsets("layers.0.bias", [0, "NaN"]).replace(
        b'"NaN"', b"NaN "), "NaN is no JSON number", "not the JSON", _ST),
    BadFile("st-a-number-of-5000-digits", lambda: _st_offsets("layers.0.bias", [0, 7]).replace(
        b"[0,7]", b"[0," + b"7" * 5000 + b"]"), "is damaged", "not the JSON", _ST),
    BadFile("st-no-metadata",
            lambda: safetensors_file({k: v for k, v in safetensors_model()[0].items()
                                      if k != "__metadata__"}, safetensors_model()[1]),
            "no metadata", "not an nnfs model", _ST),
    BadFile("st-metadata-of-numbers", lambda: _st(metadata={"in_dim": 3}),
            "'__metadata__'", "must map names to strings", _ST),
    BadFile("st-a-pytorch-file", lambda: _st(metadata={"format": "pt"}),
            "lacks 'format_version'", "not an nnfs model", _ST),
    BadFile("st-format-version-3", lambda: _st(metadata=model_metadata(format_version="3")),
            "format version 3", "reads versions 1, 2", _ST),
    BadFile("st-version-2-without-dropout",
            lambda: _st(metadata=model_metadata(format_version="2")),
            "version 2 without 'dropout'", "model file", _ST),
    BadFile("st-a-dropout-rate-of-1",
            lambda: _st(metadata=model_metadata(format_version="2", dropout="[1.0, 0.0]")),
            "'dropout' must be 2 rates in [0, 1)", "got [1.0, 0.0]", _ST),
    BadFile("st-dropout-as-text",
            lambda: _st(metadata=model_metadata(format_version="2", dropout='["a", "b"]')),
            "'dropout' must be a JSON list", "numbers", _ST),
    BadFile("st-in-dim-not-a-number", lambda: _st(metadata=model_metadata(in_dim="three")),
            "'in_dim' must be a whole number", "'three'", _ST),
    BadFile("st-units-not-a-list", lambda: _st(metadata=model_metadata(units="4,2")),
            "'units' must be a JSON list", "whole numbers", _ST),
    BadFile("st-units-of-booleans", lambda: _st(metadata=model_metadata(units="[true, 2]")),
            "'units' must be a JSON list", "whole numbers", _ST),
    BadFile("st-a-million-layers",
            lambda: _st(metadata=model_metadata(units=json.dumps([1] * 10**6))),
            "'units' must be a JSON list of 1 to 10000", "whole numbers", _ST),
    BadFile("st-activations-of-another-count",
            lambda: _st(metadata=model_metadata(activations='["tanh"]')),
            "'activations'", "must be 2 names, one per layer", _ST),
    BadFile("st-unknown-activation",
            lambda: _st(metadata=model_metadata(activations='["tanh", "swish"]')),
            "'swish'", "unknown activation", _ST),
    BadFile("st-unknown-dtype", lambda: _st(metadata=model_metadata(dtype="float16")),
            "'float16'", "unknown dtype", _ST),
    BadFile("st-classes-of-another-count",
            lambda: _st(metadata=model_metadata(classes='["cat"]')),
            "1 classes for a network of 2 outputs", "expected 2", _ST),
    BadFile("st-task-unknown", lambda: _st(metadata=model_metadata(task="clustering")),
            "'clustering'", "one of classification, regression", _ST),
    BadFile("st-a-tensor-missing", lambda: _st(tensors=_tensors(**{"layers.1.bias": None})),
            "lacks 'layers.1.bias'", "not those of the network its metadata declares", _ST),
    BadFile("st-a-tensor-besides",
            lambda: _st(tensors=_tensors(**{"optimizer.state": np.zeros(2, np.float32)})),
            "holds 'optimizer.state' besides", "not those of the network", _ST),
    BadFile("st-float16-tensors",
            lambda: _st(tensors={k: v.astype(np.float16) for k, v in model_tensors().items()}),
            "holds F16", "a float32 nnfs model holds F32", _ST),
    BadFile("st-weights-transposed",
            lambda: _st(tensors=_tensors(**{"layers.0.weight": np.zeros((3, 4), np.float32)})),
            "has the shape [3, 4]", "needs [4, 3]", _ST),
    BadFile("st-a-gap-between-tensors", lambda: _st_offsets("layers.1.bias", [100, 108]),
            "leaves a gap", "is damaged", _ST),
    BadFile("st-tensors-that-overlap", lambda: _st_offsets("layers.0.bias", [40, 56]),
            "overlaps the one before it", "is damaged", _ST),
    BadFile("st-bytes-after-the-tensors", lambda: good_safetensors() + bytes(8),
            "tensors hold 104 bytes of data, but the file has 112", "damaged or truncated",
            _ST),
    BadFile("st-cut-short", lambda: good_safetensors()[:-8],
            "tensors hold 104 bytes of data, but the file has 96", "damaged or truncated", _ST),
    BadFile("st-tensors-declaring-a-trillion-floats",
            lambda: _st_offsets("layers.1.bias", [96, 96 + 4 * 10**12]),
            "hold 4000000000096 bytes", "damaged or truncated", _ST),
    BadFile("st-a-tensor-entry-with-more-keys",
            lambda: _st(entries={"layers.0.bias": {"dtype": "F32", "shape": [4],
                                                   "data_offsets": [48, 64], "code": "x"}}),
            "'layers.0.bias'", "exactly 'dtype', 'shape' and 'data_offsets'", _ST),
    BadFile("st-offsets-as-floats", lambda: _st_offsets("layers.0.bias", [48.0, 64.0]),
            "data_offsets", "whole numbers with begin ≤ end", _ST),
    BadFile("st-offsets-backwards", lambda: _st_offsets("layers.0.bias", [64, 48]),
            "data_offsets", "begin ≤ end", _ST),
    BadFile("st-a-nan-parameter", _st_nan, "parameter 9 is nan", "finite numbers", _ST),
    BadFile("st-an-empty-file", lambda: b"", "it has 0 bytes", "8-byte header length", _ST),
]

#: Model files of the npz format whose optional entries are wrong.
MODEL_FILES += [
    BadFile("classes-of-another-count",
            lambda: zip_of({**model_members(), "classes.npy": npy(np.array(["a", "b", "c"]))}),
            "'classes' must be a list of text labels", "one per output (2)"),
    BadFile("classes-named-twice",
            lambda: zip_of({**model_members(), "classes.npy": npy(np.array(["a", "a"]))}),
            "the class 'a' is named twice", "a label of its own"),
    BadFile("classes-as-numbers",
            lambda: zip_of({**model_members(), "classes.npy": npy(np.array([0, 1]))}),
            "got int64 of shape (2,)", "'classes' must be a list of text labels"),
    BadFile("task-unknown",
            lambda: zip_of({**model_members(), "task.npy": npy(np.array("clustering"))}),
            "'clustering'", "one of classification, regression"),
    BadFile("classes-of-a-regression-model",
            lambda: zip_of({**model_members(), "task.npy": npy(np.array("regression")),
                            "classes.npy": npy(np.array(["a", "b"]))}),
            "a regression model has no classes", "got 2"),
]
MODEL_FILES += SAFETENSORS_FILES
