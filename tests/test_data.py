"""Data files for nnfs train and predict: CSV, npz and MNIST IDX, with errors that point at
the line (issue #6)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import nnfs
from nnfs import data


def write(path, text):
    path.write_text(text)
    return path


def test_csv_with_header_and_named_label(tmp_path):
    path = write(tmp_path / "d.csv", "a,b,kind\n1,2,0\n3,4.5,1\n\n5,6,2\n")
    dataset = data.read(path, "kind")
    assert dataset.X.tolist() == [[1, 2], [3, 4.5], [5, 6]]
    assert dataset.y.tolist() == [0, 1, 2] and dataset.classes == 3


def test_csv_without_header_label_last_or_by_index(tmp_path):
    path = write(tmp_path / "d.csv", "0,1,2\n1,3,4\n")
    assert data.read(path).y.tolist() == [2, 4]
    by_index = data.read(path, "0")
    assert by_index.y.tolist() == [0, 1] and by_index.X.tolist() == [[1, 2], [3, 4]]
    assert data.read(path, "none").y is None


@pytest.mark.parametrize("text, message", [
    ("a,b,c\n1,2,0\n3,,1\n", r"line 3: column 1 \('b'\) is empty \(a missing value\)"),
    ("a,b,c\n1,2,0\n3,x,1\n", r"line 3: column 1 \('b'\) holds 'x', which is not a finite"),
    ("1,2,0\n3,4\n", "line 2: 2 values, expected 3"),
    ("1,2,0.5\n", r"label 0.5 .* is not a class number"),
    ("1,2,-1\n", r"label -1.0 in column 2 is not a class number"),
    ("1,2,nan\n", "holds 'nan', which is not a finite number"),
    ("", "is empty"),
    ("a,b\n", "header but no data"),
])
def test_csv_errors_name_the_line(tmp_path, text, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(nnfs.DataFileError, match=message):
        data.read(path)


def test_csv_unknown_label_column(tmp_path):
    path = write(tmp_path / "d.csv", "a,b\n1,0\n")
    with pytest.raises(nnfs.DataFileError, match="no label column 'c'"):
        data.read(path, "c")
    with pytest.raises(nnfs.DataFileError, match="outside the 2 columns"):
        data.read(path, "5")


def test_npz(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((4, 3)), y=np.array([0, 1, 1, 0]))
    dataset = data.read(tmp_path / "d.npz")
    assert dataset.X.shape == (4, 3) and dataset.y.tolist() == [0, 1, 1, 0]
    np.savez(tmp_path / "noX.npz", features=np.ones(3))
    with pytest.raises(nnfs.DataFileError, match="no array 'X'"):
        data.read(tmp_path / "noX.npz")
    np.savez(tmp_path / "objects.npz", X=np.array([object()], dtype=object))
    with pytest.raises(nnfs.DataFileError, match="not a readable .npz"):
        data.read(tmp_path / "objects.npz")
    np.savez(tmp_path / "short.npz", X=np.ones((4, 3)), y=np.array([0, 1]))
    with pytest.raises(nnfs.DataFileError, match="4 samples but 2 labels"):
        data.read(tmp_path / "short.npz")


def idx(path, array, magic_type=0x08, compress=False):
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_idx_images_with_labels_found_by_name(tmp_path, compress):
    suffix = ".gz" if compress else ""
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    path = idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, compress=compress)
    idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", np.array([7, 3]), compress=compress)
    dataset = data.read(path)
    assert dataset.X.shape == (2, 12) and dataset.X.max() == pytest.approx(23 / 255)
    assert dataset.y.tolist() == [7, 3]


def test_idx_errors(tmp_path):
    images = idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 2, 2)))
    with pytest.raises(nnfs.NnfsFileNotFoundError, match="no labels file .* give it with --labels"):
        data.read(images)
    idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3))
    with pytest.raises(nnfs.DataFileError, match="3 labels|hold shape \\(3,\\)"):
        data.read(images)
    (tmp_path / "bad-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + bytes(12))
    with pytest.raises(nnfs.DataFileError, match="IDX magic"):
        data.read(tmp_path / "bad-images-idx3-ubyte")
    raw = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "cut-images-idx3-ubyte").write_bytes(raw[:-1])
    with pytest.raises(nnfs.DataFileError, match="promises 8 bytes"):
        data.read(tmp_path / "cut-images-idx3-ubyte")


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(nnfs.DataFileError, match="expected a .npz, .csv or MNIST IDX"):
        data.read(write(tmp_path / "d.txt", "1"))
    with pytest.raises(nnfs.NnfsFileNotFoundError):
        data.read(tmp_path / "absent.csv")


def test_stratified_split():
    dataset = data.DataSet(np.arange(100).reshape(50, 2).astype(float),
                           np.repeat([0, 1], [40, 10]), "toy")
    train, test = data.split(dataset, 0.2, seed=0)
    assert len(test) == 10 and sorted(test.y.tolist()) == [0] * 8 + [1] * 2
    assert set(map(tuple, train.X)) | set(map(tuple, test.X)) == set(map(tuple, dataset.X))
    with pytest.raises(nnfs.NnfsValueError, match="between 0 and 1"):
        data.split(dataset, 1.5, 0)
