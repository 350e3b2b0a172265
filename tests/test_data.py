"""Data files for nnfs train and predict: CSV, npz and MNIST IDX, with errors that point at
the line (issue #6)."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys

import numpy as np
import pytest

import nnfs
from bad_files import DATA_FILES, csv_rows, idx_gzip_bomb, npz_data
from nnfs import data
from test_io import mutate

#: The CSV readers: each fast reader alone, and the strict reader alone.
READERS = ["pandas", "numpy", "strict"]


def use_reader(monkeypatch, reader: str) -> None:
    """Read CSV files with ``reader`` alone (a fast reader still hands to the strict one what
    it cannot read as clean numbers, as it does when installed)."""
    if reader == "pandas":
        pytest.importorskip("pandas", reason="pandas (nnfs-core[csv]) is not installed")
    monkeypatch.setattr(data, "FAST_CSV_READERS", () if reader == "strict" else (reader,))


@pytest.fixture(params=READERS)
def csv_reader(request, monkeypatch):
    use_reader(monkeypatch, request.param)
    return request.param


def write(path, text):
    path.write_text(text)
    return path


def test_csv_with_header_and_named_label(tmp_path, csv_reader):
    path = write(tmp_path / "d.csv", "a,b,kind\n1,2,0\n3,4.5,1\n\n5,6,2\n")
    dataset = data.read(path, "kind")
    assert dataset.X.tolist() == [[1, 2], [3, 4.5], [5, 6]]
    assert dataset.y.tolist() == [0, 1, 2] and dataset.classes == 3


def test_csv_without_header_label_last_or_by_index(tmp_path, csv_reader):
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
    ("1,2,1e20\n", r"line 1: the label 1e\+20 in column 2 is not a class number"),
    ("a,b,c\n1,2,0\n3,\"4\n5\",1\n", r"line 3: column 1 \('b'\) holds '4\\n5'"),
    ("a,b,c\n1,2,0\n3,\"4,1\n5,6,0\n", r"line 3: a quote opens a field that never closes"),
    ("1,2,nan\n", "holds 'nan', which is not a finite number"),
    ("", "is empty"),
    ("a,b\n", "header but no data"),
])
def test_csv_errors_name_the_line(tmp_path, csv_reader, text, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(nnfs.DataFileError, match=message):
        data.read(path)


def test_csv_unknown_label_column(tmp_path, csv_reader):
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
    with pytest.raises(nnfs.DataFileError, match="holds Python objects"):
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
    assert dataset.X.shape == (2, 12) and dataset.X.max() == 23  # as the file holds them
    assert dataset.feature_scale == 1 / 255  # suggested for training, folded into the model
    assert dataset.y.tolist() == [7, 3]


def test_idx_errors(tmp_path):
    images = idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 2, 2)))
    with pytest.raises(nnfs.NnfsFileNotFoundError,
                       match=r"no labels file .* give it with --labels"):
        data.read(images)
    idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3))
    with pytest.raises(nnfs.DataFileError, match=r"3 labels|hold shape \(3,\)"):
        data.read(images)
    (tmp_path / "bad-images-idx3-ubyte").write_bytes(b"\x00\x01\x08\x03" + bytes(12))
    with pytest.raises(nnfs.DataFileError, match="IDX magic"):
        data.read(tmp_path / "bad-images-idx3-ubyte")
    (tmp_path / "bad-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + bytes(12))
    with pytest.raises(nnfs.DataFileError, match=r"holds floats \(IDX type 0x0D\)"):
        data.read(tmp_path / "bad-images-idx3-ubyte")
    raw = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "cut-images-idx3-ubyte").write_bytes(raw[:-1])
    with pytest.raises(nnfs.DataFileError, match="promises 8 bytes"):
        data.read(tmp_path / "cut-images-idx3-ubyte")


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(nnfs.DataFileError, match=r"expected a \.npz, \.csv or MNIST IDX"):
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


# --- what Excel and others write ----------------------------------------------------------------

@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_a_byte_order_mark_keeps_the_first_sample(tmp_path, csv_reader, header):
    """Excel's "CSV UTF-8" starts with a byte-order mark; it is no part of the first cell, so
    the first line is read as what it is (it used to be taken for a header, losing a sample)."""
    text = ("a,b,label\n" if header else "") + "1,2,0\n3,4,1\n"
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    dataset = data.read(path)
    assert dataset.X.tolist() == [[1, 2], [3, 4]] and dataset.y.tolist() == [0, 1]
    if header:
        assert data.read(path, "label").y.tolist() == [0, 1]  # the header's first name is 'a'
        assert data.read(path, "a").y.tolist() == [1, 3]


def test_a_first_line_mixing_names_and_numbers_is_a_sample_to_refuse_not_a_header(tmp_path,
                                                                                  csv_reader):
    path = tmp_path / "d.csv"
    path.write_text("1,?,0\n3,4,1\n")
    with pytest.raises(nnfs.DataFileError, match=r"line 1: column 1 holds '\?'.*header's names"):
        data.read(path)


def test_a_label_column_named_twice_is_ambiguous(tmp_path, csv_reader):
    path = tmp_path / "d.csv"
    path.write_text("x,label,label\n1,0,1\n")
    with pytest.raises(nnfs.DataFileError, match=r"names 2 columns 'label'.*ambiguous"):
        data.read(path, "label")


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 2**63], dtype=np.uint64), "the label 9223372036854775808 in row 1"),
    (np.array([0.0, 1e20]), r"the label 1e\+20 in row 1"),
    (np.array([0.0, np.inf]), "the label inf in row 1"),
    (np.array([0, 2**31]), "the label 2147483648 in row 1"),
])
def test_labels_beyond_the_class_numbers_are_named_as_given(tmp_path, labels, message):
    path = tmp_path / "d.npz"
    path.write_bytes(npz_data(X=np.zeros((2, 3)), y=labels))
    with pytest.raises(nnfs.DataFileError, match=message):
        data.read(path)


def test_labels_of_any_integer_or_boolean_dtype_are_read(tmp_path):
    for labels in (np.array([0, 1], np.uint8), np.array([True, False]), np.array([1.0, 0.0])):
        (tmp_path / "d.npz").write_bytes(npz_data(X=np.zeros((2, 3)), y=labels))
        assert data.read(tmp_path / "d.npz").y.tolist() == labels.astype(int).tolist()


# --- damaged data files: refused whole, never a raw exception, never a huge allocation ---------

def _read_all(path):
    dataset = data.read(path)
    return dataset.X, dataset.y


@pytest.mark.parametrize("kind", ["csv", "csv-pandas", "csv-numpy", "npz", "idx-gz"])
def test_random_damage_to_a_data_file_is_refused_or_harmless(tmp_path, kind, monkeypatch):
    """Damaged copies of a data file (CSV, npz, gzip IDX) are each read to the same data, to
    other data that is valid, or refused with an nnfs error naming the file: never a raw
    exception. (A CSV can be damaged into another valid CSV; that is no error to find.)"""
    rng = np.random.default_rng(1)
    use_reader(monkeypatch, kind.removeprefix("csv-") if kind.startswith("csv-") else "strict")
    if kind.startswith("csv"):
        original = csv_rows(12).encode()
        path = tmp_path / "d.csv"
    elif kind == "npz":
        original = npz_data(X=rng.normal(size=(12, 3)), y=rng.integers(0, 3, 12))
        path = tmp_path / "d.npz"
    else:
        original = gzip.compress(bytes([0, 0, 8, 3, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 2])
                                 + rng.integers(0, 256, 48).astype(np.uint8).tobytes())
        path = tmp_path / "t-images-idx3-ubyte.gz"
        (tmp_path / "t-labels-idx1-ubyte.gz").write_bytes(gzip.compress(
            bytes([0, 0, 8, 1, 0, 0, 0, 12]) + bytes(12)))
    path.write_bytes(original)
    expected = _read_all(path)
    generator = random.Random(7 + len(kind.split('-')[0]))
    refused = 0
    for number in range(300):
        path.write_bytes(mutate(original, generator))
        try:
            X, y = _read_all(path)
        except (nnfs.DataFileError, nnfs.NnfsFileNotFoundError) as error:
            assert str(path) in str(error) or "labels" in str(error), error
            refused += 1
            continue
        except Exception as error:
            raise AssertionError(f"mutation {number} raised {type(error).__name__}: {error}") \
                from error
        if not kind.startswith("csv"):  # npz and gzip have checksums: read is what was written
            assert np.array_equal(X, expected[0]) and np.array_equal(y, expected[1]), number
    assert refused > 100


def _peak_memory(code: str) -> int:
    script = ("import resource, nnfs\n" + code + "\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def test_an_idx_bomb_is_refused_before_it_is_decompressed(tmp_path):
    """A gzip IDX file of a few hundred kilobytes declaring 10 images but holding 300 MB: the
    header is read first and the data only as far as it declares, so the file is refused
    (it holds more than its header says) in the memory of reading a good file."""
    bomb = tmp_path / "b-images-idx3-ubyte.gz"
    bomb.write_bytes(idx_gzip_bomb(10, 300 << 20))
    assert bomb.stat().st_size < 1 << 20
    (tmp_path / "b-labels-idx1-ubyte.gz").write_bytes(gzip.compress(
        bytes([0, 0, 8, 1, 0, 0, 0, 10]) + bytes(10)))
    good = tmp_path / "g-images-idx3-ubyte.gz"
    good.write_bytes(idx_gzip_bomb(10, 0))
    (tmp_path / "g-labels-idx1-ubyte.gz").write_bytes(gzip.compress(
        bytes([0, 0, 8, 1, 0, 0, 0, 10]) + bytes(10)))
    read = ("from nnfs import data\ntry:\n    data.read({!r})\n"
            "except nnfs.DataFileError as error:\n    assert 'more data than' in str(error)\n")
    baseline = _peak_memory(read.format(str(good)))
    peak = _peak_memory(read.format(str(bomb)))
    assert peak - baseline < 32 << 20, f"{(peak - baseline) >> 20} MiB more than a good file"
    with pytest.raises(nnfs.DataFileError, match="more data than the 7840 bytes"):
        data.read(bomb)


def test_idx_headers_are_compared_before_the_images_are_read(tmp_path, monkeypatch):
    """Images and labels that do not match are refused from their headers alone."""
    images = tmp_path / "t-images-idx3-ubyte.gz"
    images.write_bytes(idx_gzip_bomb(1000, 0))
    (tmp_path / "t-labels-idx1-ubyte.gz").write_bytes(gzip.compress(
        bytes([0, 0, 8, 1, 0, 0, 0, 10]) + bytes(10)))
    monkeypatch.setattr(data, "_read_idx_data", lambda idx: pytest.fail("data was read"))
    with pytest.raises(nnfs.DataFileError, match="expected 1000 labels"):
        data.read(images)


# --- the CSV readers agree ------------------------------------------------------------------------

def _outcome(path, **options):
    """What reading ``path`` gives: the data set's arrays and labels, or the error's class and
    message."""
    try:
        found = data.read(path, **options)
    except nnfs.NnfsError as error:
        return type(error).__name__, str(error)
    y = None if found.y is None else (found.y.dtype.str, found.y.tolist())
    return (found.X.tolist(), y, found.task, found.class_names, found.feature_names)


@pytest.mark.parametrize("bad", [bad for bad in DATA_FILES if bad.suffix == ".csv"],
                         ids=lambda bad: bad.name)
def test_every_bad_csv_of_the_catalogue_is_refused_alike_by_every_reader(tmp_path, monkeypatch,
                                                                        bad):
    path = tmp_path / f"{bad.name}.csv"
    path.write_bytes(bad.make())
    messages = set()
    for reader in READERS:
        use_reader(monkeypatch, reader)
        with pytest.raises(nnfs.DataFileError) as raised:
            data.read(path)
        message = str(raised.value)
        assert bad.given.lower() in message.lower() and bad.expected.lower() in message.lower()
        messages.add(message)
    assert len(messages) == 1, messages


#: Pieces a careless or hostile CSV is made of: numbers of every spelling, words, the
#: separators and quotes the readers treat differently, blanks, odd whitespace, line ends.
_PIECES = ["1", "-2.5", "3e2", ".5", "5.", "+7", "1_000", "0x1F", "1e400", "1e-400", "nan",
           "inf", "-0", " 4 ", "4\t", "\x0c5", "١٢", "0.1000000000000000055511151231257827",
           "cat", "dog", "é", "", " ", ",", ";", "\t", '"', '"x"', '""', "\r\n", "\n", "\r",
           "\n\n", "\x00", "\ufeff", "a", "label", "#", "?", "NA", "True"]


def _random_csv(rng: random.Random) -> str:
    header = rng.random() < 0.5
    width = rng.randint(1, 4)
    lines = [",".join(rng.choice(["a", "b", "c", "label", "x y"]) for _ in range(width))] \
        if header else []
    for _ in range(rng.randint(1, 6)):
        cells = [rng.choice(["1", "2.5", "-3", "4e1", "0", "7"]) for _ in range(width)]
        if rng.random() < 0.5:
            cells[-1] = rng.choice(["0", "1", "2", "0.5", "cat", "dog"])
        line = ",".join(cells)
        for _ in range(rng.choice([0, 0, 1, 2])):  # damage: a piece put in or written over
            at = rng.randint(0, len(line))
            piece = rng.choice(_PIECES)
            line = line[:at] + piece + line[at + (rng.random() < 0.5):]
        lines.append(line)
    return "\n".join(lines) + rng.choice(["", "\n", "\r\n"])


@pytest.mark.parametrize("reader", ["pandas", "numpy"])
def test_a_fast_reader_gives_what_the_strict_reader_gives(tmp_path, monkeypatch, reader):
    """2,000 CSV files of numbers, words, quotes, blanks, NULs, byte-order marks, odd line
    ends and separators, read for every task: the fast reader gives the very data set the
    strict reader gives, or the very same error. (A fast reader hands the strict one all it
    cannot read as clean numbers, so this also checks that it does.)"""
    use_reader(monkeypatch, reader)
    rng = random.Random(2024 + len(reader))
    path = tmp_path / "fuzz.csv"
    used = 0
    for number in range(2000):
        text = _random_csv(rng)
        encoded = (b"\xef\xbb\xbf" if rng.random() < 0.1 else b"") + text.encode()
        path.write_bytes(encoded)
        task = rng.choice(["classification", "regression", "auto"])
        fast = _outcome(path, task=task)
        with monkeypatch.context() as strict:
            strict.setattr(data, "FAST_CSV_READERS", ())
            expected = _outcome(path, task=task)
        assert fast == expected, (number, encoded, task)
        used += not isinstance(fast[0], str)
    assert used > 200  # enough of them are data sets, not errors


@pytest.mark.parametrize("reader", ["pandas", "numpy"])
def test_a_plain_file_is_read_by_the_fast_reader_alone(tmp_path, monkeypatch, reader):
    use_reader(monkeypatch, reader)
    monkeypatch.setattr(data, "_strict_table", lambda *args: pytest.fail("the strict reader ran"))
    rows = "\r\n".join(f"{i},{i / 3!r},{i % 3}" for i in range(50))
    path = tmp_path / "plain.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b,label\r\n" + rows.encode() + b"\r\n\r\n")
    found = data.read(path)
    assert found.X[:, 1].tolist() == [i / 3 for i in range(50)]  # bit for bit
    assert found.y.tolist() == [i % 3 for i in range(50)]
    assert found.feature_names == ("a", "b")
    if reader == "pandas":  # text labels too
        path.write_text("a,b\n" + "\n".join(f"{i},{'cat' if i % 2 else 'dog'}" for i in range(9)))
        found = data.read(path)
        assert found.class_names == ("cat", "dog") and found.y.tolist()[:3] == [1, 0, 1]


def test_the_fast_readers_are_used_when_installed_and_skipped_when_not(tmp_path, monkeypatch):
    """With neither fast reader importable, the strict reader reads the file."""
    path = write(tmp_path / "d.csv", "1,2,0\n3,4,1\n")
    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.setattr(data, "FAST_CSV_READERS", ("pandas",))
    called = []
    real = data._strict_table
    monkeypatch.setattr(data, "_strict_table", lambda *a: called.append(1) or real(*a))
    assert data.read(path).y.tolist() == [0, 1] and called == [1]


# --- delimiters, headers, text labels, regression targets -------------------------------------

@pytest.mark.parametrize("delimiter, given", [(";", ";"), ("\t", "tab"), ("\t", "\\t"),
                                              ("|", "|"), (" ", " ")])
def test_other_delimiters(tmp_path, csv_reader, delimiter, given):
    path = write(tmp_path / "d.csv", f"a{delimiter}b{delimiter}kind\n1{delimiter}2.5{delimiter}0\n"
                                     f"3{delimiter}4{delimiter}1\n")
    found = data.read(path, "kind", delimiter=given)
    assert found.X.tolist() == [[1, 2.5], [3, 4]] and found.y.tolist() == [0, 1]


@pytest.mark.parametrize("delimiter", ["", ";;", "1", "e", ".", "-", '"', "\n", "\r", 5])
def test_delimiters_that_cannot_separate_numbers_are_refused(tmp_path, delimiter):
    path = write(tmp_path / "d.csv", "1,2\n")
    with pytest.raises(nnfs.NnfsValueError, match="--delimiter must be one character"):
        data.read(path, delimiter=delimiter)


def test_a_semicolon_file_read_as_commas_says_which_option_reads_it(tmp_path, csv_reader):
    path = write(tmp_path / "d.csv", "1;2;0\n3;4;1\n")
    with pytest.raises(nnfs.DataFileError, match=r"separated by ';'\? .* give --delimiter ';'"):
        data.read(path)


def test_text_labels_are_classes_in_sorted_order(tmp_path, csv_reader):
    path = write(tmp_path / "d.csv", "x,y,animal\n1,2,dog\n3,4,cat\n5,6,dog\n7,8,émeu\n")
    found = data.read(path)
    assert found.class_names == ("cat", "dog", "émeu") and found.y.tolist() == [1, 0, 1, 2]
    assert found.classes == 3 and found.task == "classification"
    with pytest.raises(nnfs.DataFileError, match=r"line 2: the label 'dog' in column 2 .* is "
                                                 r"not a number: regression targets"):
        data.read(path, task="regression")


@pytest.mark.parametrize("text, message", [
    ("1,cat\n2,dog\n3,7\n", r"line 3: the label column 1 holds '7' among text"),
    ("1,0\n2,1\n3,NA\n", r"line 3: the label column 1 holds 'NA' among numbers.*missing value"),
    ("1,cat\n2,nan\n3,dog\n", r"line 2: the label column 1 holds 'nan' among text"),
    ("1,cat\n2,\n", r"line 2: column 1 is empty \(a missing value\)"),
])
def test_a_label_column_of_numbers_and_text_is_refused_at_the_odd_one(tmp_path, csv_reader, text,
                                                                     message):
    path = write(tmp_path / "d.csv", text)
    with pytest.raises(nnfs.DataFileError, match=message):
        data.read(path, task="auto")


def test_text_labels_in_an_npz(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(npz_data(X=np.zeros((3, 2)), y=np.array(["b", "a", "b"])))
    found = data.read(path)
    assert found.class_names == ("a", "b") and found.y.tolist() == [1, 0, 1]


def test_a_test_set_takes_the_training_sets_classes(tmp_path):
    train = data.read(write(tmp_path / "train.csv", "1,cat\n2,dog\n3,emu\n"))
    test = data.in_classes_of(data.read(write(tmp_path / "test.csv", "1,emu\n2,cat\n")), train)
    assert test.class_names == ("cat", "dog", "emu") and test.y.tolist() == [2, 0]
    with pytest.raises(nnfs.DataFileError, match="the label 'owl' is none of the classes"):
        data.in_classes_of(data.read(write(tmp_path / "owl.csv", "1,owl\n")), train)
    with pytest.raises(nnfs.DataFileError, match="labels are class numbers, but those of"):
        data.in_classes_of(data.read(write(tmp_path / "n.csv", "1,0\n")), train)


@pytest.mark.parametrize("labels, task, found", [
    ("0,1,2,1", "auto", "classification"),
    ("0.0,1.0,2.0,1.0", "auto", "classification"),
    ("0.5,1,2,1", "auto", "regression"),
    ("-3.25,1e3,2,1", "auto", "regression"),
    ("0,1,2,1", "regression", "regression"),
])
def test_regression_targets_are_told_by_their_fractions_or_asked_for(tmp_path, csv_reader, labels,
                                                                    task, found):
    values = labels.split(",")
    path = write(tmp_path / "d.csv", "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    dataset = data.read(path, task=task)
    assert dataset.task == found
    expected = [float(v) for v in values]
    assert dataset.y.tolist() == expected
    assert dataset.y.dtype == (np.float64 if found == "regression" else np.int64)


def test_whole_labels_that_are_no_classes_point_to_the_regression_task(tmp_path, csv_reader):
    path = write(tmp_path / "d.csv", "1,2\n3,-4\n")
    with pytest.raises(nnfs.DataFileError, match=r"label -4.0 .* not a class number .* give "
                                                 r"--task regression"):
        data.read(path, task="auto")
    assert data.read(path, task="regression").y.tolist() == [2, -4]


def test_a_regression_set_is_split_at_random_not_by_class():
    dataset = data.DataSet(np.arange(40.0).reshape(20, 2), np.linspace(0, 1, 20), "toy",
                           task="regression")
    train, test = data.split(dataset, 0.25, seed=0)
    assert len(test) == 5 and len(train) == 15 and test.task == "regression"


def test_the_digits_are_given_as_scikit_learn_gives_them():
    from sklearn.datasets import load_digits

    digits = data.digits()
    np.testing.assert_array_equal(digits.X, load_digits().data)
    assert digits.feature_scale == 1 / 16 and digits.X.max() == 16


@pytest.mark.parametrize("columns, labelled", [(3, False), (4, True), (5, False)])
def test_predict_finds_the_label_column_by_the_models_inputs(tmp_path, csv_reader, columns,
                                                            labelled):
    path = write(tmp_path / "d.csv", ",".join(str(i) for i in range(columns)) + "\n")
    found = data.read(path, features=3)
    assert (found.y is not None) is labelled
    assert found.X.shape[1] == columns - labelled
