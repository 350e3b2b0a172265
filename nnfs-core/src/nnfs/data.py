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
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataFileError, NnfsError, NnfsFileNotFoundError, NnfsValueError


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
    path = Path(path)
    if not path.exists():
        raise NnfsFileNotFoundError(f"data file {str(path)!r} does not exist")
    if path.is_dir():
        raise DataFileError(f"data file {str(path)!r} is a directory")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".npz"):
        return _read_npz(path)
    if name.endswith(".csv"):
        return _read_csv(path, label_column)
    if "idx3" in name or "idx1" in name:
        return _read_idx_pair(path, labels_path)
    raise DataFileError(f"data file {str(path)!r}: expected a .npz, .csv or MNIST IDX file "
                        "(…-images-idx3-ubyte[.gz])")


# --- npz ----------------------------------------------------------------------------------------

def _read_npz(path: Path) -> DataSet:
    where = f"data file {str(path)!r}"
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            x_key = next((k for k in ("X", "x", "data") if k in keys), None)
            y_key = next((k for k in ("y", "Y", "labels", "target") if k in keys), None)
            if x_key is None:
                raise DataFileError(f"{where} has no array 'X' (samples × features); it holds "
                                    f"{sorted(keys)}")
            X = archive[x_key]
            y = archive[y_key] if y_key is not None else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError) as error:
        raise DataFileError(f"{where} is not a readable .npz archive of arrays: {error}") from None
    X = _features(X, where, x_key)
    return DataSet(X, None if y is None else _labels(y, where, y_key, len(X)), path.name)


def _features(X: np.ndarray, where: str, what: str) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise DataFileError(f"{where}: {what!r} must hold numbers, got {X.dtype}")
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2 or X.shape[0] == 0:
        raise DataFileError(f"{where}: {what!r} must be samples × features, got shape {X.shape}")
    X = X.astype(np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        raise DataFileError(f"{where}: {what!r} holds {X[tuple(bad[0])]} in row {bad[0][0]}, "
                            f"column {bad[0][1]}")
    return X


def _labels(y: np.ndarray, where: str, what: str, count: int) -> np.ndarray:
    if y.dtype.kind not in "biuf" or y.ndim != 1:
        raise DataFileError(f"{where}: {what!r} must be one integer label per sample, got "
                            f"{y.dtype} of shape {y.shape}")
    if len(y) != count:
        raise DataFileError(f"{where}: {count} samples but {len(y)} labels")
    whole = np.isfinite(y) & (y == np.round(y)) & (y >= 0) if y.dtype.kind == "f" else y >= 0
    if not whole.all():
        row = int(np.argmin(whole))
        raise DataFileError(f"{where}: label {y[row]!r} in row {row} is not a class number "
                            "(0, 1, 2, ...)")
    return y.astype(np.int64)


# --- csv ----------------------------------------------------------------------------------------

def _number(cell: str) -> float | None:
    """The cell's value, or None if it is not a finite number."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_header(row: list[str]) -> bool:
    """A first line with a cell that does not even parse as a float is a header."""
    for cell in row:
        try:
            float(cell)
        except ValueError:
            return True
    return False


def _read_csv(path: Path, label_column: str | int | None) -> DataSet:
    where = f"data file {str(path)!r}"
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = [(number, row) for number, row in enumerate(csv.reader(file), start=1)
                    if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise DataFileError(f"{where} is not a text (UTF-8) CSV file") from None
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
                raise DataFileError(f"{where}, line {line}: column {_column_name(j, header)} holds "
                                    f"{cell.strip()!r}, which is not a finite number")
            values[i, j] = value
    if label is None:
        return DataSet(values, None, path.name)
    features = np.delete(values, label, axis=1)
    if features.shape[1] == 0:
        raise DataFileError(f"{where} has only the label column, no features")
    labels = values[:, label]
    whole = (labels == np.round(labels)) & (labels >= 0)
    if not whole.all():
        line = rows[int(np.argmin(whole))][0]
        raise DataFileError(f"{where}, line {line}: the label {float(labels[np.argmin(whole)])!r} in column "
                            f"{_column_name(label, header)} is not a class number (0, 1, 2, ...)")
    return DataSet(features, labels.astype(np.int64), path.name)


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
            return header.index(text)
        try:
            label_column = int(text)
        except ValueError:
            names = f"; the header has {header}" if header else "; the file has no header"
            raise DataFileError(f"{where}: no label column {text!r}{names}") from None
    if not -width <= label_column < width:
        raise DataFileError(f"{where}: label column {label_column} is outside the {width} columns")
    return label_column % width


# --- MNIST IDX ----------------------------------------------------------------------------------

def _read_idx(path: Path) -> np.ndarray:
    where = f"IDX file {str(path)!r}"
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as error:
        raise DataFileError(f"{where} cannot be read: {error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataFileError(f"{where} does not start with the IDX magic of unsigned bytes "
                            "(00 00 08 nd)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataFileError(f"{where} has a truncated header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(shape)
    if len(raw) - header != size:
        raise DataFileError(f"{where}: the header promises {size} bytes of data for shape "
                            f"{shape}, the file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_idx_pair(path: Path, labels_path: str | Path | None) -> DataSet:
    images = _read_idx(path)
    if images.ndim != 3:
        raise DataFileError(f"IDX file {str(path)!r} holds shape {images.shape}; expected images "
                            "(an idx3 file: count × rows × columns)")
    if labels_path is None:
        guess = path.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
        labels_path = path.with_name(guess)
        if guess == path.name or not labels_path.exists():
            raise NnfsFileNotFoundError(f"no labels file next to {str(path)!r} (looked for "
                                        f"{guess!r}); give it with --labels")
    labels = _read_idx(Path(labels_path))
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataFileError(f"IDX labels {str(labels_path)!r} hold shape {labels.shape}; expected "
                            f"{len(images)} labels for the {len(images)} images of {str(path)!r}")
    X = images.reshape(len(images), -1).astype(np.float64) / 255.0
    return DataSet(X, labels.astype(np.int64), path.name)
