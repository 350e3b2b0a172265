"""Data sets for ``nnfs train`` and ``nnfs predict``: one sample per row, integer class labels.

* scikit-learn's bundled handwritten digits (8×8 images, 10 classes; no download);
* ``.npz`` archives holding ``X`` (samples × features) and ``y`` (labels), read without pickle;
* ``.csv`` files with one sample per line, an optional header, and a label column;
* MNIST's IDX files (``train-images-idx3-ubyte`` and its labels file, optionally ``.gz``).

Every reader names the file, and the line, row or entry, of whatever it cannot use.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ._files import as_path, input_file, open_input
from ._npz import open_archive
from .errors import (
    DataFileError,
    NnfsError,
    NnfsFileNotFoundError,
    NnfsPermissionError,
    NnfsValueError,
)


@dataclass
class DataSet:
    """Samples (one per row, float64) and their integer labels (None when unlabelled)."""

    X: np.ndarray
    y: np.ndarray | None
    name: str

    @property
    def classes(self) -> int:
        return int(self.y.max()) + 1 if self.y is not None and len(self.y) else 0

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, rows: np.ndarray, name: str) -> DataSet:
        return DataSet(self.X[rows], None if self.y is None else self.y[rows], name)


def digits() -> DataSet:
    """scikit-learn's handwritten digits, pixels scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NnfsError("the digits data set comes with scikit-learn, which is not installed: "
                        "pip install 'nnfs-core[train]'") from None
    X, y = load_digits(return_X_y=True)
    return DataSet(X / 16.0, y.astype(np.int64), "digits (scikit-learn)")


def split(data: DataSet, test_fraction: float, seed: int | None) -> tuple[DataSet, DataSet]:
    """A stratified split: ``test_fraction`` of each class, chosen at random, is held out."""
    if not 0.0 < test_fraction < 1.0:
        raise NnfsValueError(f"the test fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(data.y):
        members = np.flatnonzero(data.y == label)
        rng.shuffle(members)
        test.append(members[:round(len(members) * test_fraction)])
    held_out = np.sort(np.concatenate(test))
    kept = np.setdiff1d(np.arange(len(data)), held_out)
    if len(held_out) == 0 or len(kept) == 0:
        raise NnfsValueError(f"{data.name}: {len(data)} samples are too few to hold out "
                             f"{test_fraction:.0%} as a test set")
    return data.subset(kept, f"{data.name}, training part"), data.subset(held_out, f"{data.name}, test part")


def read(path: str | Path, label_column: str | int | None = None,
         labels_path: str | Path | None = None) -> DataSet:
    """Read a data set by its file name (see the module docstring for the formats)."""
    path = as_path(path, "data file")
    where = f"data file {str(path)!r}"
    input_file(path, where, DataFileError, "a data file")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".npz"):
        return _read_npz(path)
    if name.endswith(".csv"):
        return _read_csv(path, label_column)
    if "idx3" in name or "idx1" in name:
        return _read_idx_pair(path, labels_path)
    raise DataFileError(f"{where}: expected a .npz, .csv or MNIST IDX file "
                        "(…-images-idx3-ubyte[.gz])")


# --- labels -------------------------------------------------------------------------------------

#: The largest class number a data file may hold (labels are 0, 1, 2, ... up to this).
MAX_LABEL = 2**31 - 1


def _whole_labels(values: np.ndarray) -> np.ndarray:
    """Which of ``values`` (any numeric dtype) are class numbers: whole, 0 to MAX_LABEL."""
    if values.dtype.kind == "b":
        return np.ones(values.shape, dtype=bool)
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            return np.isfinite(values) & (values == np.round(values)) & (values >= 0) \
                & (values <= MAX_LABEL)
    return (values >= 0) & (values <= MAX_LABEL)


def _label_text(value) -> str:
    """A label as it was given: 1e+20 as 1e+20, not as the integer it wraps to."""
    return repr(float(value)) if isinstance(value, (float, np.floating)) else repr(int(value))


def _as_labels(values: np.ndarray, where: Callable[[int, str], str]) -> np.ndarray:
    """``values`` as int64 class labels, or DataFileError naming the first that is none:
    ``where(row, label)`` says where the label is."""
    whole = _whole_labels(values)
    if not whole.all():
        row = int(np.argmin(whole))
        raise DataFileError(f"{where(row, _label_text(values[row]))} is not a class number "
                            f"(0, 1, 2, ... up to {MAX_LABEL})")
    return values.astype(np.int64)


# --- npz ----------------------------------------------------------------------------------------

#: The entry names read as samples and as labels, in the order they are looked for.
_X_NAMES, _Y_NAMES = ("X", "x", "data"), ("y", "Y", "labels", "target")


def _read_npz(path: Path) -> DataSet:
    """X (samples × features) and, when there is one, y: both headers checked (dtype, shape,
    one label per sample) before either is read."""
    where = f"data file {str(path)!r}"
    with open_archive(path, where, DataFileError, ".npz data") as archive:
        x_key = next((k for k in _X_NAMES if k in archive), None)
        y_key = next((k for k in _Y_NAMES if k in archive), None)
        if x_key is None:
            raise DataFileError(f"{where} has no array 'X' (samples × features); it holds "
                                f"{sorted(archive.names)}")
        x_header = archive.header(x_key)
        if x_header.dtype.kind not in "biuf" or x_header.dtype.itemsize > 8:
            raise DataFileError(f"{where}: {x_key!r} must hold numbers, got {x_header.dtype}")
        if len(x_header.shape) not in (1, 2) or x_header.shape[0] == 0 or x_header.count == 0:
            raise DataFileError(f"{where}: {x_key!r} must be samples × features, got shape "
                                f"{x_header.shape}")
        samples = x_header.shape[0]
        y_header = None
        if y_key is not None:
            y_header = archive.header(y_key)
            if y_header.dtype.kind not in "biuf" or len(y_header.shape) != 1 \
                    or y_header.dtype.itemsize > 8:
                raise DataFileError(f"{where}: {y_key!r} must be one integer label per sample, "
                                    f"got {y_header.text}")
            if y_header.shape[0] != samples:
                raise DataFileError(f"{where}: {samples} samples but {y_header.shape[0]} labels")
        X = archive.read(x_header, x_header.nbytes, "its samples")
        y = None if y_header is None else archive.read(y_header, y_header.nbytes, "its labels")
    X = _features(X, where, x_key)
    if y is None:
        return DataSet(X, None, path.name)
    labels = _as_labels(y, lambda row, text: f"{where}: the label {text} in row {row} of {y_key!r}")
    return DataSet(X, labels, path.name)


def _features(X: np.ndarray, where: str, what: str) -> np.ndarray:
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    X = X.astype(np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        raise DataFileError(f"{where}: {what!r} holds {X[tuple(bad[0])]} in row {bad[0][0]}, "
                            f"column {bad[0][1]}")
    return X


# --- csv ----------------------------------------------------------------------------------------

def _number(cell: str) -> float | None:
    """The cell's value, or None if it is not a finite number."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_header(row: list[str]) -> bool:
    """A first line none of whose cells is a number is a header. A line of names and numbers
    is read as data, and refused at its first name: taking it for a header would drop a
    sample without a word (a byte-order mark or a "?" in the first sample did)."""
    return not any(_is_number(cell) for cell in row if cell.strip())


def _csv_rows(path: Path, where: str) -> list[tuple[int, list[str]]]:
    """The non-blank records of the CSV file, each with the line it starts on. A UTF-8
    byte-order mark (Excel's "CSV UTF-8") is no part of the first cell."""
    rows = []
    line = 1  # where the record being read starts
    with open_text(path, where) as file:
        reader = csv.reader(file, strict=True)
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append((line, row))
                line = reader.line_num + 1
        except UnicodeDecodeError as failure:
            encoding = _utf16(path)
            detail = f" (it is {encoding})" if encoding else ""
            raise DataFileError(f"{where} is not a text (UTF-8) CSV file{detail}: a byte near "
                                f"line {line} is not UTF-8 ({failure.reason})") from None
        except csv.Error as failure:
            raise DataFileError(f"{where}, line {line}: {_csv_problem(failure)}") from None
        except OSError as failure:
            raise DataFileError(f"{where} cannot be read: {failure.strerror or failure}") from None
    return rows


def _csv_problem(failure: Exception) -> str:
    text = str(failure)
    if "field larger than field limit" in text:
        return (f"a field longer than {csv.field_size_limit()} characters: a quote that never "
                "closes (a stray quote?) or a line that is not a CSV record")
    if "unexpected end of data" in text:
        return "a quote opens a field that never closes (a stray quote?)"
    if "expected after" in text:
        return f"a quote in the middle of a field ({text}; a stray quote?)"
    return f"not a CSV record ({text})"


def _utf16(path: Path) -> str | None:
    """The name of the UTF-16 or UTF-32 encoding the file's byte-order mark announces."""
    try:
        with open(path, "rb") as file:
            head = file.read(4)
    except OSError:
        return None
    for mark, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                       (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if head.startswith(mark):
            return name + ": save it as CSV UTF-8"
    return None


def open_text(path: Path, where: str):
    """The file opened as UTF-8 text for the csv module (a byte-order mark skipped)."""
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except PermissionError:
        raise NnfsPermissionError(f"{where} cannot be read (permission denied)") from None
    except OSError as failure:
        raise DataFileError(f"{where} cannot be read: {failure.strerror or failure}") from None


def _read_csv(path: Path, label_column: str | int | None) -> DataSet:
    where = f"data file {str(path)!r}"
    rows = _csv_rows(path, where)
    if not rows:
        raise DataFileError(f"{where} is empty")
    header = None
    first = rows[0][1]
    if _is_header(first):
        header = [cell.strip() for cell in first]
        rows = rows[1:]
    if not rows:
        raise DataFileError(f"{where} has a header but no data lines")
    width = len(header) if header else len(rows[0][1])
    label = _label_index(label_column, header, width, where)
    values = np.empty((len(rows), width))
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise DataFileError(f"{where}, line {line}: {len(row)} values, expected {width}")
        for j, cell in enumerate(row):
            if not cell.strip():
                raise DataFileError(f"{where}, line {line}: column {_column_name(j, header)} is "
                                    "empty (a missing value)")
            value = _number(cell)
            if value is None:
                hint = _cell_hint(cell, line)
                raise DataFileError(f"{where}, line {line}: column {_column_name(j, header)} holds "
                                    f"{cell.strip()[:40]!r}, which is not a finite number{hint}")
            values[i, j] = value
    if label is None:
        return DataSet(values, None, path.name)
    features = np.delete(values, label, axis=1)
    if features.shape[1] == 0:
        raise DataFileError(f"{where} has only the label column, no features")
    column = _column_name(label, header)
    labels = _as_labels(values[:, label], lambda row, text: (
        f"{where}, line {rows[row][0]}: the label {text} in column {column}"))
    return DataSet(features, labels, path.name)


def _cell_hint(cell: str, line: int) -> str:
    """What may explain a cell that is no number."""
    for separator in (";", "\t", "|"):
        if separator in cell:
            return (f" (is the file separated by {separator!r}? nnfs reads comma-separated "
                    "values)")
    if line == 1:
        return " (line 1 mixes names and numbers: a header's names must not be numbers)"
    return ""


def _column_name(j: int, header: list[str] | None) -> str:
    return f"{j} ({header[j]!r})" if header else str(j)


def _label_index(label_column, header, width: int, where: str) -> int | None:
    """The label column's index: a header name, an index (negative from the end), the default
    last column; ``"none"`` for unlabelled data."""
    if label_column is None:
        return width - 1
    if isinstance(label_column, str):
        text = label_column.strip()
        if text.lower() == "none":
            return None
        if header and text in header:
            if header.count(text) > 1:
                raise DataFileError(f"{where}: the header names {header.count(text)} columns "
                                    f"{text!r}, so --label-column {text!r} is ambiguous; give "
                                    "its index")
            return header.index(text)
        try:
            label_column = int(text) if text.isascii() else None
        except ValueError:
            label_column = None
        if label_column is None:
            names = f"; the header has {header}" if header else "; the file has no header"
            raise DataFileError(f"{where}: no label column {text!r}{names}")
    if not -width <= label_column < width:
        raise DataFileError(f"{where}: label column {label_column} is outside the {width} columns")
    return label_column % width


# --- MNIST IDX ----------------------------------------------------------------------------------

#: IDX type codes, as the format defines them; nnfs reads unsigned bytes (MNIST's).
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int",
              0x0D: "float", 0x0E: "double"}


@dataclass
class _Idx:
    """An open IDX file whose header has been read and checked; its data not yet."""

    path: Path
    where: str
    raw: BinaryIO
    file: BinaryIO  # raw, or a gzip reader over it
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def close(self) -> None:
        self.file.close()
        self.raw.close()


def _open_idx(path: Path, dimensions: int, what: str) -> _Idx:
    """Open ``path`` (gzip or not) and read and check its header alone: magic, type, the
    number of dimensions (``dimensions``), every size positive, and the data it declares not
    more than the file can hold, before any of the data is read or decompressed."""
    where = f"IDX file {str(path)!r}"
    input_file(path, where, DataFileError, "an IDX file")
    raw = open_input(path, where, DataFileError)
    compressed = path.name.endswith(".gz")
    try:
        on_disk = os.fstat(raw.fileno()).st_size
        file = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        head = file.read(4)
        if len(head) < 4 or head[:2] != b"\0\0":
            raise DataFileError(f"{where} does not start with the IDX magic (00 00 08 nd)")
        if head[2] != 0x08:
            kind = _IDX_TYPES.get(head[2], f"unknown type 0x{head[2]:02X}")
            raise DataFileError(f"{where} holds {kind}s (IDX type 0x{head[2]:02X}); nnfs reads "
                                "IDX files of unsigned bytes (0x08), as MNIST's")
        ndim = head[3]
        sizes = file.read(4 * ndim)
        if ndim == 0 or len(sizes) < 4 * ndim:
            raise DataFileError(f"{where} has a truncated header")
        shape = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
    except NnfsError:
        raw.close()
        raise
    except (OSError, EOFError, zlib.error) as failure:
        raw.close()
        raise DataFileError(f"{where} cannot be read: {_describe(failure)}") from None
    if ndim != dimensions:
        raw.close()
        raise DataFileError(f"{where} holds an array of shape {shape}; expected {what}")
    if 0 in shape:
        raw.close()
        raise DataFileError(f"{where} holds no {what.split(' (')[0]}: its header declares the "
                            f"shape {shape}")
    header = 4 + 4 * ndim
    size = math.prod(shape)
    if not compressed and size != on_disk - header:
        raw.close()
        raise DataFileError(f"{where}: the header promises {size} bytes of data for shape "
                            f"{shape}, the file has {on_disk - header}")
    if compressed and size > MAX_GZIP_RATIO * on_disk:
        raw.close()
        raise DataFileError(f"{where}: the header promises {size} bytes of data for shape "
                            f"{shape}, more than a gzip file of {on_disk} bytes can hold")
    return _Idx(path, where, raw, file, shape)


#: gzip (deflate) never expands data by more than about 1032 to 1.
MAX_GZIP_RATIO = 1100


def _read_idx_data(idx: _Idx) -> np.ndarray:
    """The data of an open IDX file: exactly what its header declares, no more."""
    data = np.empty(idx.size, dtype=np.uint8)
    try:
        done = 0
        while done < idx.size:
            got = idx.file.readinto(data[done:done + (1 << 20)])
            if not got:
                raise DataFileError(f"{idx.where}: the header promises {idx.size} bytes of data "
                                    f"for shape {idx.shape}, the file has {done}")
            done += got
        if idx.file.read(1):
            raise DataFileError(f"{idx.where}: the file holds more data than the {idx.size} bytes "
                                f"its header promises for shape {idx.shape}")
    except NnfsError:
        raise
    except (OSError, EOFError, zlib.error) as failure:
        raise DataFileError(f"{idx.where} is damaged: {_describe(failure)}") from None
    finally:
        idx.close()
    return data.reshape(idx.shape)


def _describe(failure: BaseException) -> str:
    return f"{type(failure).__name__}: {' '.join(str(failure).split()) or '(no message)'}"


def _read_idx_pair(path: Path, labels_path: str | Path | None) -> DataSet:
    images = _open_idx(path, 3, "images (an idx3 file: count × rows × columns)")
    try:
        if labels_path is None:
            guess = path.name.replace("images-idx3", "labels-idx1").replace("images.idx3",
                                                                            "labels.idx1")
            labels_path = path.with_name(guess)
            if guess == path.name or not labels_path.exists():
                raise NnfsFileNotFoundError(f"no labels file next to {str(path)!r} (looked for "
                                            f"{guess!r}); give it with --labels")
        labels_path = as_path(labels_path, "labels file")
        labels = _open_idx(labels_path, 1, "labels (an idx1 file: one per image)")
    except BaseException:
        images.close()
        raise
    if labels.shape[0] != images.shape[0]:
        images.close()
        labels.close()
        raise DataFileError(f"IDX labels {str(labels_path)!r} hold shape {labels.shape}; expected "
                            f"{images.shape[0]} labels for the {images.shape[0]} images of "
                            f"{str(path)!r}")
    try:
        pixels = _read_idx_data(images)
    except BaseException:
        labels.close()
        raise
    classes = _read_idx_data(labels)
    X = pixels.reshape(len(pixels), -1).astype(np.float64) / 255.0
    return DataSet(X, classes.astype(np.int64), path.name)
