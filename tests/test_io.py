"""save and load: a documented format, written whole, never unpickled (issue #6)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import nnfs
from nnfs import fully_connected


def network(factory, units=4, seed=0):
    return nnfs.inference_network(factory, 3, [fully_connected(units, "tanh"),
                                               fully_connected(2, "softmax")], seed=seed)


def test_round_trip_in_both_dtypes(tmp_path, cpu, cpu64):
    path = tmp_path / "model.npz"
    with network(cpu64, seed=3) as original:
        nnfs.save(original, path)
        expected = nnfs.transfer(original.parameters)
    for factory in (cpu64, cpu):
        with nnfs.load(path, factory) as loaded:
            assert loaded.in_dim == 3 and [l.out_dim for l in loaded.layers] == [4, 2]
            assert [l.activation for l in loaded.layers] == [nnfs.tanh, nnfs.softmax]
            np.testing.assert_allclose(nnfs.transfer(loaded.parameters), expected,
                                       rtol=1e-7 if factory is cpu else 0)
            assert loaded.factory is factory


def test_the_documented_entries(tmp_path, cpu):
    path = tmp_path / "model.npz"
    with network(cpu) as original:
        nnfs.save(original, path)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(["format", "format_version", "in_dim", "units",
                                                "activations", "dtype", "parameters"])
        assert archive["format"].item() == "nnfs-model"
        assert archive["units"].tolist() == [4, 2]
        assert archive["activations"].tolist() == ["tanh", "softmax"]
        assert archive["parameters"].shape == (3 * 4 + 4 + 4 * 2 + 2,)


def test_load_into_an_existing_network(tmp_path, cpu):
    path = tmp_path / "model.npz"
    with network(cpu, seed=1) as source, network(cpu, seed=2) as target:
        nnfs.save(source, path)
        assert nnfs.load(path, target) is target
        assert np.array_equal(nnfs.transfer(target.parameters), nnfs.transfer(source.parameters))


def test_another_architecture_is_refused_and_nothing_changes(tmp_path, cpu):
    path = tmp_path / "model.npz"
    with network(cpu, units=4) as source, network(cpu, units=5) as target:
        nnfs.save(source, path)
        before = nnfs.transfer(target.parameters).copy()
        with pytest.raises(nnfs.ModelFileError, match=r"holds a network 3 → 4 tanh → 2 softmax, "
                                                      r"but the network to load into is 3 → 5"):
            nnfs.load(path, target)
        assert np.array_equal(nnfs.transfer(target.parameters), before)


def test_saving_is_whole_or_nothing(tmp_path, cpu, monkeypatch):
    path = tmp_path / "model.npz"
    with network(cpu, seed=1) as first, network(cpu, seed=2) as second:
        nnfs.save(first, path)
        good = path.read_bytes()

        def crash(file, **entries):
            file.write(b"PK\x03\x04 half an archive")
            raise OSError("disk full")

        monkeypatch.setattr(np, "savez", crash)
        with pytest.raises(OSError, match="disk full"):
            nnfs.save(second, path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind


def test_a_pickle_that_would_run_code_is_never_run(tmp_path, cpu):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(nnfs.ModelFileError, match="pickled Python objects, which nnfs never loads"):
        nnfs.load(path, cpu)
    np.savez(tmp_path / "objects.npz", format=np.array("nnfs-model"),
             format_version=np.array(1), in_dim=np.array(3), units=np.array([4, 2]),
             activations=np.array(["tanh", "softmax"]), dtype=np.array("float32"),
             parameters=np.array([Exploit()], dtype=object))
    with pytest.raises(nnfs.ModelFileError, match="Python objects"):
        nnfs.load(tmp_path / "objects.npz", cpu)
    assert not marker.exists()


def _archive(path, **changes):
    entries = {"format": np.array("nnfs-model"), "format_version": np.array(1),
               "in_dim": np.array(3), "units": np.array([4, 2]),
               "activations": np.array(["tanh", "softmax"]), "dtype": np.array("float32"),
               "parameters": np.zeros(26)}
    entries.update(changes)
    entries = {k: v for k, v in entries.items() if v is not None}
    np.savez(path, **entries)
    return path


@pytest.mark.parametrize("changes, text", [
    ({"format": np.array("something-else")}, "not an nnfs model file"),
    ({"format_version": np.array(2)}, "format version 2; this nnfs reads version 1"),
    ({"parameters": None}, "lacks 'parameters'"),
    ({"parameters": np.zeros(25)}, "must be 26 floats"),
    ({"parameters": np.full(26, np.nan)}, "parameter 0 is nan"),
    ({"activations": np.array(["tanh", "swish"])}, "unknown activation"),
    ({"units": np.array([4, 0])}, "must be positive"),
    ({"units": np.array([4.0, 2.0])}, "list of integers"),
    ({"in_dim": np.array([3, 3])}, "must be a single integer"),
    ({"dtype": np.array("float16")}, "unknown dtype"),
    ({"parameters": np.zeros(10**6)}, "far more than"),
])
def test_invalid_files(tmp_path, cpu, changes, text):
    path = _archive(tmp_path / "model.npz", **changes)
    with pytest.raises(nnfs.ModelFileError, match=text):
        nnfs.load(path, cpu)


def test_truncated_missing_directory_and_plain_files(tmp_path, cpu):
    path = tmp_path / "model.npz"
    with network(cpu) as original:
        nnfs.save(original, path)
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(nnfs.ModelFileError, match="truncated.npz"):
        nnfs.load(tmp_path / "truncated.npz", cpu)
    with pytest.raises(nnfs.NnfsFileNotFoundError, match="does not exist"):
        nnfs.load(tmp_path / "absent.npz", cpu)
    with pytest.raises(nnfs.ModelFileError, match="is a directory"):
        nnfs.load(tmp_path, cpu)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(nnfs.ModelFileError, match="not an nnfs model"):
        nnfs.load(tmp_path / "text.npz", cpu)
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(nnfs.ModelFileError, match="single numpy array"):
        nnfs.load(tmp_path / "array.npy", cpu)


def test_save_into_a_missing_directory(tmp_path, cpu):
    with network(cpu) as original, pytest.raises(nnfs.NnfsFileNotFoundError, match="does not exist"):
        nnfs.save(original, tmp_path / "no" / "such" / "model.npz")


def test_unreadable_file_is_a_permission_error(tmp_path, cpu, monkeypatch):
    """As the operating system reports it (simulated: root may read any file)."""
    path = tmp_path / "model.npz"
    with network(cpu) as original:
        nnfs.save(original, path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("nnfs.io.open", refuse, raising=False)
    with pytest.raises(nnfs.NnfsPermissionError, match="cannot be read"):
        nnfs.load(path, cpu)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file, so chmod 0 cannot stop it")
def test_unreadable_file(tmp_path, cpu):
    path = tmp_path / "model.npz"
    with network(cpu) as original:
        nnfs.save(original, path)
    path.chmod(0)
    with pytest.raises(nnfs.NnfsPermissionError):
        nnfs.load(path, cpu)


def test_bad_arguments(tmp_path, cpu):
    with pytest.raises(nnfs.NnfsTypeError, match="save: inference"):
        nnfs.save("not a network", tmp_path / "m.npz")
    with network(cpu) as original:
        with pytest.raises(nnfs.NnfsTypeError, match="file path"):
            nnfs.save(original, 42)
        nnfs.save(original, tmp_path / "m.npz")
    with pytest.raises(nnfs.NnfsTypeError, match="factory .* or an inference network"):
        nnfs.load(tmp_path / "m.npz", "cpu")
