"""Data sets for ``nnfs train`` and ``nnfs predict``: one sample per row, with class labels or
regression targets.

* scikit-learn's bundled handwritten digits (8×8 images of pixels 0 to 16, 10 classes; no
  download);
* ``.npz`` archives holding ``X`` (samples × features) and ``y`` (labels or targets), read
  without pickle;
* ``.csv`` files with one sample per line, an optional header, a label column, and any
  one-character delimiter;
* MNIST's IDX files (``train-images-idx3-ubyte`` and its labels file, optionally ``.gz``).

``X`` holds the features as the file holds them; ``feature_scale`` is the scaling a reader
suggests training at (the digits' pixels of 0 to 16 and MNIST's of 0 to 255 to [0, 1]), which
``nnfs train`` folds into the model, so that the model takes the data as the user has it.

**Labels.** With ``task="classification"``, labels are class numbers (0, 1, 2, ...) or text
(``"cat"``, ``"dog"``): text labels are mapped to 0, 1, ... in sorted order and kept as
``class_names``. With ``task="regression"`` they are targets, any finite numbers. With
``task="auto"`` (the command line's default), a label column of numbers that are not all whole
is regression, anything else classification.

**CSV** files are read by a fast reader where one is installed (pandas, else numpy's
``loadtxt``), and by nnfs's own strict reader (the csv module) otherwise: the strict reader is
the reference, and a fast reader is used only where its result is the strict reader's. It runs
on files with nothing that could make the two differ (no quote, no NUL, valid UTF-8, no line
longer than the strict reader's field limit), and whatever it cannot read as clean numbers (a
missing value, a word, a ragged line, a label that is no class) goes to the strict reader,
which names the line.

Every reader names the file, and the line, row or entry, of whatever it cannot use.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import math
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from ._files import as_path, input_file, open_input
from ._npz import open_archive
from .errors import (
    DataFileError,
    NnfsError,
    NnfsFileNotFoundError,
    NnfsValueError,
)

#: What a data set's labels are: ``auto`` tells them apart by their values (see above).
TASKS = ("classification", "regression", "auto")


@dataclass
class DataSet:
    """Samples (one per row, float64, as the file holds them) and their labels: class indices
    (int64; of ``class_names`` where the labels were text) or regression targets (float64);
    None when unlabelled. ``feature_scale``: train on ``X · feature_scale`` (see the module
    docstring)."""

    X: np.ndarray
    y: np.ndarray | None
    name: str
    task: str = "classification"
    class_names: tuple[str, ...] | None = None
    feature_scale: float = 1.0
    #: The features' names, where the file has a header.
    feature_names: tuple[str, ...] | None = None

    @property
    def classes(self) -> int:
        """The number of classes (0 for regression targets or no labels)."""
        if self.task == "regression" or self.y is None or not len(self.y):
            return 0
        if self.class_names is not None:
            return len(self.class_names)
        return int(self.y.max()) + 1

    def label_text(self, index: int) -> str:
        """How class ``index`` is written: its name, or its number."""
        return self.class_names[index] if self.class_names is not None else str(index)

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, rows: np.ndarray, name: str) -> DataSet:
        return dataclasses.replace(self, X=self.X[rows], name=name,
                                   y=None if self.y is None else self.y[rows])


def digits() -> DataSet:
    """scikit-learn's handwritten digits as ``load_digits()`` gives them (pixels 0 to 16),
    suggested to be trained at 1/16."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NnfsError("the digits data set comes with scikit-learn, which is not installed: "
                        "pip install 'nnfs-core[train]'") from None
    X, y = load_digits(return_X_y=True)
    return DataSet(X.astype(np.float64), y.astype(np.int64), "digits (scikit-learn)",
                   feature_scale=1 / 16)


def split(data: DataSet, test_fraction: float, seed: int | None) -> tuple[DataSet, DataSet]:
    """Hold out ``test_fraction`` of the samples, chosen at random: of each class (stratified)
    for class labels, of all of them for regression targets."""
    if not 0.0 < test_fraction < 1.0:
        raise NnfsValueError(f"the test fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    groups = [np.arange(len(data))] if data.task == "regression" else \
        [np.flatnonzero(data.y == label) for label in np.unique(cast(np.ndarray, data.y))]
    test = []
    for members in groups:
        rng.shuffle(members)
        test.append(members[:round(len(members) * test_fraction)])
    held_out = np.sort(np.concatenate(test))
    kept = np.setdiff1d(np.arange(len(data)), held_out)
    if len(held_out) == 0 or len(kept) == 0:
        raise NnfsValueError(f"{data.name}: {len(data)} samples are too few to hold out "
                             f"{test_fraction:.0%} as a test set")
    return (data.subset(kept, f"{data.name}, training part"),
            data.subset(held_out, f"{data.name}, test part"))


def in_classes_of(data: DataSet, training: DataSet) -> DataSet:
    """``data``'s labels as indices of ``training``'s classes: text labels mapped by name, each
    of which must be one of the training data's (a test set of the same classes)."""
    if data.y is None or training.task == "regression" or \
            (data.class_names is None and training.class_names is None):
        return data
    if data.class_names is None or training.class_names is None:
        kinds = ["text" if d.class_names else "class numbers" for d in (data, training)]
        raise DataFileError(f"{data.name}: its labels are {kinds[0]}, but those of the "
                            f"training data {training.name} are {kinds[1]}")
    index = {name: i for i, name in enumerate(training.class_names)}
    unknown = [name for name in data.class_names if name not in index]
    if unknown:
        shown = ", ".join(map(repr, training.class_names[:10]))
        more = ", ..." if len(training.class_names) > 10 else ""
        raise DataFileError(f"{data.name}: the label {unknown[0][:40]!r} is none of the classes "
                            f"of the training data {training.name} ({shown}{more})")
    mapping = np.array([index[name] for name in data.class_names], dtype=np.int64)
    return dataclasses.replace(data, y=mapping[data.y], class_names=training.class_names)


def read(path: str | Path, label_column: str | int | None = None,
         labels_path: str | Path | None = None, *, delimiter: str = ",",
         task: str = "classification", features: int | None = None) -> DataSet:
    """Read a data set by its file name (see the module docstring for the formats).

    ``label_column`` (CSV): a header name or an index (negative from the end), ``"none"`` for
    no labels; by default the last column, or, when ``features`` (what a model takes) is
    given, the last column only if the file has one column more than that. ``delimiter``:
    the CSV's one-character delimiter. ``task``: one of :data:`TASKS`.
    """
    if task not in TASKS:
        raise NnfsValueError(f"the task must be one of {', '.join(TASKS)}, got {task!r}")
    delimiter = check_delimiter(delimiter)
    path = as_path(path, "data file")
    where = f"data file {str(path)!r}"
    input_file(path, where, DataFileError, "a data file")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".npz"):
        return _read_npz(path, task)
    if name.endswith(".csv"):
        return _read_csv(path, label_column, delimiter, task, features)
    if "idx3" in name or "idx1" in name:
        return _read_idx_pair(path, labels_path, task)
    raise DataFileError(f"{where}: expected a .npz, .csv or MNIST IDX file "
                        "(…-images-idx3-ubyte[.gz])")


def check_delimiter(delimiter: object) -> str:
    """A CSV delimiter: one character that cannot be part of a number, a quote or a line end
    (``"tab"`` and ``"\\t"`` for a tab)."""
    if delimiter in ("tab", "\\t"):
        return "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n" \
            or delimiter.isalnum() or delimiter in ".+-_" \
            or (delimiter.isspace() and delimiter not in " \t"):
        raise NnfsValueError(f"--delimiter must be one character that is no part of a number, "
                             f"a quote or a line end (such as ',', ';', '|' or tab), got "
                             f"{delimiter!r}")
    return delimiter


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


def _as_labels(values: np.ndarray, where: Callable[[int, str], str],
               hint: str = "") -> np.ndarray:
    """``values`` as int64 class labels, or DataFileError naming the first that is none:
    ``where(row, label)`` says where the label is."""
    whole = _whole_labels(values)
    if not whole.all():
        row = int(np.argmin(whole))
        raise DataFileError(f"{where(row, _label_text(values[row]))} is not a class number "
                            f"(0, 1, 2, ... up to {MAX_LABEL}){hint}")
    return values.astype(np.int64)


def _targets(values: np.ndarray, where: Callable[[int, str], str]) -> np.ndarray:
    """``values`` as float64 regression targets, every one finite."""
    if values.dtype.kind not in "biuf":
        raise DataFileError(f"{where(0, repr(values[0]))} is not a number: regression targets "
                            "are numbers")
    targets = values.astype(np.float64)
    finite = np.isfinite(targets)
    if not finite.all():
        row = int(np.argmin(finite))
        raise DataFileError(f"{where(row, _label_text(values[row]))} is not a finite number")
    return targets


def _named(names: Sequence[str], where: Callable[[int, str], str],
           task: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Text labels as indices of their sorted distinct names."""
    if task == "regression":
        raise DataFileError(f"{where(0, repr(names[0][:40]))} is not a number: regression "
                            "targets are numbers")
    classes, indices = np.unique(np.asarray(names, dtype=str), return_inverse=True)
    return indices.astype(np.int64).ravel(), tuple(str(name) for name in classes)


def _numeric_labels(values: np.ndarray, task: str,
                    where: Callable[[int, str], str]) -> tuple[np.ndarray, str]:
    """Labels given as numbers: class numbers, or regression targets (``task``; ``auto``:
    regression when some are not whole)."""
    hint = " (regression targets? give --task regression)" if task == "auto" else ""
    if task == "auto" and values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            fractions = np.isfinite(values) & (values != np.round(values))
        task = "regression" if fractions.any() else "classification"
    if task == "regression":
        return _targets(values, where), "regression"
    return _as_labels(values, where, hint), "classification"


# --- npz ----------------------------------------------------------------------------------------

#: The entry names read as samples and as labels, in the order they are looked for.
_X_NAMES, _Y_NAMES = ("X", "x", "data"), ("y", "Y", "labels", "target")


def _read_npz(path: Path, task: str) -> DataSet:
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
            text = y_header.dtype.kind == "U" and y_header.dtype.itemsize <= 4 * MAX_NAME
            if not (y_header.dtype.kind in "biuf" or text) or len(y_header.shape) != 1 \
                    or (y_header.dtype.itemsize > 8 and not text):
                raise DataFileError(f"{where}: {y_key!r} must be one label per sample (numbers, "
                                    f"or text of at most {MAX_NAME} characters), got "
                                    f"{y_header.text}")
            if y_header.shape[0] != samples:
                raise DataFileError(f"{where}: {samples} samples but {y_header.shape[0]} labels")
        X = archive.read(x_header, x_header.nbytes, "its samples")
        y = None if y_header is None else archive.read(y_header, y_header.nbytes, "its labels")
    X = _features(X, where, x_key)
    if y is None:
        return DataSet(X, None, path.name)

    def at(row: int, text: str) -> str:
        return f"{where}: the label {text} in row {row} of {y_key!r}"

    if y.dtype.kind == "U":
        labels, names = _named(y.tolist(), at, task)
        return DataSet(X, labels, path.name, "classification", names)
    labels, kind = _numeric_labels(y, task, at)
    return DataSet(X, labels, path.name, kind)


#: The longest text label a data file may hold (what a model file keeps of a class).
MAX_NAME = 1024


def _features(X: np.ndarray, where: str, what: str) -> np.ndarray:
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    X = X.astype(np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        raise DataFileError(f"{where}: {what!r} holds {X[tuple(bad[0])]} in row {bad[0][0]}, "
                            f"column {bad[0][1]}")
    return X


# --- csv: what both readers give ------------------------------------------------------------------

@dataclass
class _Table:
    """A CSV file read: its header (None if it has none), the features (float64, finite),
    the label column's index and cells (finite numbers, or text; None if unlabelled), and the
    line each row starts on (None from a fast reader, which does not count lines)."""

    header: list[str] | None
    features: np.ndarray
    label: int | None
    labels: np.ndarray | list[str] | None
    lines: list[int] | None


def _csv_dataset(table: _Table, path: Path, task: str, where: str) -> DataSet:
    """The data set of a table read by either reader: its labels checked for ``task``."""
    if table.features.shape[1] == 0:
        raise DataFileError(f"{where} has only the label column, no features")
    names = None if table.header is None else tuple(
        name for j, name in enumerate(table.header) if j != table.label)
    if table.label is None:
        return DataSet(table.features, None, path.name, feature_names=names)
    column = _column_name(table.label, table.header)

    def at(row: int, text: str) -> str:
        line = table.lines[row] if table.lines is not None else row
        return f"{where}, line {line}: the label {text} in column {column}"

    if isinstance(table.labels, np.ndarray):
        labels, kind = _numeric_labels(table.labels, task, at)
        return DataSet(table.features, labels, path.name, kind, feature_names=names)
    assert table.labels is not None  # a table with a label column has its cells
    labels, classes = _named(table.labels, at, task)
    return DataSet(table.features, labels, path.name, "classification", classes,
                   feature_names=names)


def _read_csv(path: Path, label_column: str | int | None, delimiter: str, task: str,
              features: int | None) -> DataSet:
    where = f"data file {str(path)!r}"
    raw = _read_bytes(path, where)
    table = _fast_table(raw, delimiter, label_column, features, where)
    if table is not None:
        try:
            return _csv_dataset(table, path, task, where)
        except DataFileError:
            pass  # the strict reader names the line
    table = _strict_table(raw, delimiter, label_column, features, where)
    return _csv_dataset(table, path, task, where)


def _read_bytes(path: Path, where: str) -> bytes:
    with open_input(path, where, DataFileError) as file:
        try:
            return file.read()
        except OSError as failure:
            raise DataFileError(f"{where} cannot be read: {failure.strerror or failure}") \
                from None


def _column_name(j: int, header: list[str] | None) -> str:
    return f"{j} ({header[j]!r})" if header else str(j)


def _label_index(label_column, header, width: int, where: str,
                 features: int | None = None) -> int | None:
    """The label column's index: a header name, an index (negative from the end), the default
    last column (with ``features`` given, only when there is one column more); ``"none"`` for
    unlabelled data."""
    if label_column is None:
        return width - 1 if features is None or width == features + 1 else None
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


# --- csv: the strict reader, the reference ------------------------------------------------------

#: The longest field the strict reader takes, in characters (the csv module's limit).
FIELD_LIMIT = csv.field_size_limit()
#: Separators a user may have meant when a cell holds one (named in the message).
_SEPARATORS = (";", "\t", "|", ",")


def _number(cell: str) -> float | None:
    """The cell's value, or None if it is not a finite number."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _decode(raw: bytes, where: str) -> str:
    """The file as text: UTF-8, a byte-order mark (Excel's "CSV UTF-8") no part of it."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as failure:
        encoding = _utf16(raw)
        detail = f" (it is {encoding})" if encoding else ""
        line = raw[:failure.start].count(b"\n") + 1
        raise DataFileError(f"{where} is not a text (UTF-8) CSV file{detail}: a byte near "
                            f"line {line} is not UTF-8 ({failure.reason})") from None


def _csv_rows(text: str, delimiter: str, where: str) -> list[tuple[int, list[str]]]:
    """The non-blank records of the CSV text, each with the line it starts on."""
    rows = []
    line = 1  # where the record being read starts
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as failure:
        raise DataFileError(f"{where}, line {line}: {_csv_problem(failure)}") from None
    return rows


def _csv_problem(failure: Exception) -> str:
    text = str(failure)
    if "field larger than field limit" in text:
        return (f"a field longer than {FIELD_LIMIT} characters: a quote that never "
                "closes (a stray quote?) or a line that is not a CSV record")
    if "unexpected end of data" in text:
        return "a quote opens a field that never closes (a stray quote?)"
    if "expected after" in text:
        return f"a quote in the middle of a field ({text}; a stray quote?)"
    return f"not a CSV record ({text})"


def _utf16(raw: bytes) -> str | None:
    """The name of the UTF-16 or UTF-32 encoding the file's byte-order mark announces."""
    for mark, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                       (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if raw.startswith(mark):
            return name + ": save it as CSV UTF-8"
    return None


def _strict_table(raw: bytes, delimiter: str, label_column, features: int | None,
                  where: str) -> _Table:
    rows = _csv_rows(_decode(raw, where), delimiter, where)
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
    label = _label_index(label_column, header, width, where, features)
    values = np.empty((len(rows), width))
    cells: list[str] = []
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise DataFileError(f"{where}, line {line}: {len(row)} values, expected {width}")
        for j, cell in enumerate(row):
            if not cell.strip():
                raise DataFileError(f"{where}, line {line}: column {_column_name(j, header)} is "
                                    "empty (a missing value)")
            if j == label and (width > 1 or not _separated(cell, delimiter)):
                cells.append(cell.strip())
                continue
            value = _number(cell)
            if value is None:
                hint = _cell_hint(cell, line, delimiter)
                raise DataFileError(f"{where}, line {line}: column {_column_name(j, header)} holds "
                                    f"{cell.strip()[:40]!r}, which is not a finite number{hint}")
            values[i, j] = value
    lines = [line for line, _ in rows]
    kept = values if label is None else np.delete(values, label, axis=1)
    return _Table(header, kept, label, None if label is None else
                  _label_cells(cells, lines, header, label, where), lines)


def _separated(cell: str, delimiter: str) -> bool:
    """Whether a cell holds a separator other than the file's (a file of another one)."""
    return any(separator in cell for separator in _SEPARATORS if separator != delimiter)


def _label_cells(cells: list[str], lines: list[int], header: list[str] | None, label: int,
                 where: str) -> np.ndarray | list[str]:
    """The label column's cells as numbers (every one finite) when they all are numbers, as
    text when none is; a column of both is refused at the first cell of the fewer kind."""
    kinds = {cell: _is_number(cell) for cell in set(cells)}
    numbers = [kinds[cell] for cell in cells]
    if all(numbers):
        values = np.array([float(cell) for cell in cells])
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.argmin(finite))
            raise DataFileError(f"{where}, line {lines[row]}: column {_column_name(label, header)}"
                                f" holds {cells[row][:40]!r}, which is not a finite number")
        return values
    if not any(numbers):
        return cells
    odd = not (sum(numbers) * 2 > len(numbers))  # the kind there is less of: True for numbers
    row = numbers.index(odd)
    described = ("numbers", "text") if odd else ("text", "numbers")
    raise DataFileError(f"{where}, line {lines[row]}: the label column "
                        f"{_column_name(label, header)} holds {cells[row][:40]!r} among "
                        f"{described[1]}: labels are all class numbers, all text, or all "
                        f"targets, not {described[0]} and {described[1]} (a missing value?)")


def _cell_hint(cell: str, line: int, delimiter: str) -> str:
    """What may explain a cell that is no number."""
    for separator in _SEPARATORS:
        if separator != delimiter and separator in cell:
            return (f" (is the file separated by {separator!r}? nnfs reads "
                    f"{'comma' if delimiter == ',' else repr(delimiter)}-separated values: "
                    f"give --delimiter {separator!r})")
    if line == 1:
        return " (line 1 mixes names and numbers: a header's names must not be numbers)"
    return ""


# --- csv: the fast readers ----------------------------------------------------------------------

#: The fast readers tried, in order, before the strict reader (each used if installed).
FAST_CSV_READERS = ("pandas", "numpy")
_UTF8_BOM = b"\xef\xbb\xbf"


def _plain(raw: bytes) -> bool:
    """Whether the file holds nothing a fast reader could read otherwise than the strict
    one: no quote, no NUL, valid UTF-8, lines shorter than the strict reader's field limit,
    lines ending in \\n (or \\r\\n)."""
    if b'"' in raw or b"\0" in raw or (not raw.isascii() and not _is_utf8(raw)):
        return False
    if len(raw) > FIELD_LIMIT:
        ends = np.flatnonzero(np.frombuffer(raw, np.uint8) == 10)
        gaps = np.diff(ends, prepend=-1, append=len(raw))
        if gaps.max() > FIELD_LIMIT:
            return False
    return True


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _fast_table(raw: bytes, delimiter: str, label_column, features: int | None,
                where: str) -> _Table | None:
    """The table of a plain file read by the first fast reader installed, or None where the
    strict reader must read it (see the module docstring)."""
    readers = [_FAST_READERS[name] for name in FAST_CSV_READERS]
    if not readers or not _plain(raw):
        return None
    start = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
    end = raw.find(b"\n", start)
    end = len(raw) if end < 0 else end
    first = raw[start:end].decode("utf-8").removesuffix("\r")
    if "\r" in first:
        return None  # lines that end in \r alone
    row = first.split(delimiter)  # no quotes: what the csv module would give
    if not any(cell.strip() for cell in row):
        return None
    header = [cell.strip() for cell in row] if _is_header(row) else None
    try:
        label = _label_index(label_column, header, len(row), where, features)
    except DataFileError:
        return None
    body = raw[end + 1:] if header is not None else raw[start:]
    if not body.strip():
        return None
    for reader in readers:
        read = reader(body, delimiter, len(row), label)
        if read is not _MISSING:
            return None if read is None else _Table(header, read[0], read[1], read[2], None)
    return None


_MISSING = object()  # a fast reader that is not installed


def _pandas_table(body: bytes, delimiter: str, width: int, label: int | None):
    """(features, label, labels) read by pandas' C parser, or None."""
    try:
        import pandas
    except ImportError:
        return _MISSING
    options = dict(sep=delimiter, header=None, index_col=False, na_filter=False, engine="c",
                   skip_blank_lines=True, encoding="utf-8")
    if int(pandas.__version__.split(".")[0]) < 3:
        options["float_precision"] = "round_trip"  # correctly rounded, as float() is
    try:
        frame = pandas.read_csv(io.BytesIO(body), dtype=np.float64, **options)
    except MemoryError:
        raise
    except Exception:  # a cell that is no number (text labels?), a ragged line
        if label is None:
            return None
        types = {j: (object if j == label else np.float64) for j in range(width)}
        try:
            frame = pandas.read_csv(io.BytesIO(body), dtype=types, **options)
        except MemoryError:
            raise
        except Exception:
            return None
    if frame.shape[1] != width:
        return None
    if all(dtype == np.float64 for dtype in frame.dtypes):
        return _split_numbers(frame.to_numpy(np.float64), label)
    cells = frame[label].to_numpy(object)
    if not all(isinstance(cell, str) and cell.strip() for cell in cells):
        return None
    cells = [cell.strip() for cell in cells]
    if any(_is_number(name) for name in set(cells)):  # numbers among text ("nan"?)
        return None
    features = frame.drop(columns=[label]).to_numpy(np.float64)
    if not np.isfinite(features).all():
        return None
    return np.ascontiguousarray(features), label, cells


def _numpy_table(body: bytes, delimiter: str, width: int, label: int | None):
    """(features, label, labels) read by numpy's loadtxt (numbers only), or None."""
    try:
        values = np.loadtxt(io.BytesIO(body), delimiter=delimiter, dtype=np.float64, ndmin=2,
                            comments=None, quotechar=None, encoding="utf-8")
    except MemoryError:
        raise
    except Exception:  # a cell that is no number, a ragged line
        return None
    if values.shape[1] != width:
        return None
    return _split_numbers(values, label)


def _split_numbers(values: np.ndarray, label: int | None):
    if not np.isfinite(values).all():
        return None
    if label is None:
        return np.ascontiguousarray(values), None, None
    return (np.ascontiguousarray(np.delete(values, label, axis=1)), label,
            np.ascontiguousarray(values[:, label]))


_FAST_READERS = {"pandas": _pandas_table, "numpy": _numpy_table}


# --- MNIST IDX ----------------------------------------------------------------------------------

#: IDX type codes, as the format defines them; nnfs reads unsigned bytes (MNIST's).
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int",
              0x0D: "float", 0x0E: "double"}


@dataclass
class _Idx:
    """An open IDX file whose header has been read and checked; its data not yet."""

    path: Path
    where: str
    raw: io.BufferedReader
    file: io.BufferedIOBase  # raw, or a gzip reader over it
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


def _read_idx_pair(path: Path, labels_path: str | Path | None, task: str) -> DataSet:
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
    X = pixels.reshape(len(pixels), -1).astype(np.float64)
    if task == "regression":
        return DataSet(X, classes.astype(np.float64), path.name, "regression",
                       feature_scale=1 / 255)
    return DataSet(X, classes.astype(np.int64), path.name, feature_scale=1 / 255)
