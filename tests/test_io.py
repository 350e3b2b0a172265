"""save and load: a documented format, written whole, never unpickled (issue #6)."""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import nnfs
from bad_files import good_model, model_bomb, model_entries, zip_of
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
            assert loaded.in_dim == 3 and [layer.out_dim for layer in loaded.layers] == [4, 2]
            assert [layer.activation for layer in loaded.layers] == [nnfs.tanh, nnfs.softmax]
            np.testing.assert_allclose(nnfs.transfer(loaded.parameters), expected,
                                       rtol=1e-7 if factory is cpu else 0)
            assert loaded.factory is factory


def test_the_documented_entries(tmp_path, cpu):
    path = tmp_path / "model.npz"
    with network(cpu) as original:
        nnfs.save(original, path)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(["format", "format_version", "in_dim", "units",
                                                "activations", "dropout", "dtype", "parameters"])
        assert archive["format_version"].item() == 2
        assert archive["dropout"].tolist() == [0.0, 0.0]
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
    ({"format_version": np.array(3)}, "format version 3; this nnfs reads versions 1, 2"),
    ({"format_version": np.array(2)}, "version 2 without 'dropout'"),
    ({"parameters": None}, "lacks 'parameters'"),
    ({"parameters": np.zeros(25)}, "must be 26 floats"),
    ({"parameters": np.full(26, np.nan)}, "parameter 0 is nan"),
    ({"activations": np.array(["tanh", "swish"])}, "unknown activation"),
    ({"units": np.array([4, 0])}, "must be positive"),
    ({"units": np.array([4.0, 2.0])}, "list of integers"),
    ({"in_dim": np.array([3, 3])}, "must be a single integer"),
    ({"dtype": np.array("float16")}, "unknown dtype"),
    ({"parameters": np.zeros(10**6)}, r"must be 26 floats .* float64 of shape \(1000000,\)"),
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
    with pytest.raises(nnfs.ModelFileError, match=r"truncated\.npz"):
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
    with network(cpu) as original, \
            pytest.raises(nnfs.NnfsFileNotFoundError, match="does not exist"):
        nnfs.save(original, tmp_path / "no" / "such" / "model.npz")


def test_unreadable_file_is_a_permission_error(tmp_path, cpu, monkeypatch):
    """As the operating system reports it (simulated: root may read any file)."""
    path = tmp_path / "model.npz"
    with network(cpu) as original:
        nnfs.save(original, path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("nnfs._files.open", refuse, raising=False)
    with pytest.raises(nnfs.NnfsPermissionError, match="cannot be read"):
        nnfs.load(path, cpu)


def test_unreadable_file(cpu):
    """A file its user may not read, for real: as root, the load runs as the user nobody (root
    reads any file), in a directory nobody may enter."""
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="nnfs-unreadable-")
    try:
        os.chmod(directory, 0o755)
        path = os.path.join(directory, "model.npz")
        with network(cpu) as original:
            nnfs.save(original, path)
        os.chmod(path, 0)
        code = ("import nnfs\ntry:\n    nnfs.load({!r}, nnfs.backend('cpu'))\n"
                "except nnfs.NnfsPermissionError as error:\n    print('refused:', error)\n")
        command = [sys.executable, "-c", code.format(path)]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as another user needs setpriv (util-linux)")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
            probe = subprocess.run([*command[:4], sys.executable, "-c", ""],
                                   capture_output=True, text=True, timeout=60)
            if probe.returncode != 0:  # a Python under a folder only root may enter
                pytest.skip(f"user 65534 cannot run this Python: {probe.stderr.strip()}")
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.stdout.startswith("refused: load: "), result.stdout + result.stderr
        assert "cannot be read (permission denied)" in result.stdout
    finally:
        shutil.rmtree(directory)


def test_bad_arguments(tmp_path, cpu):
    with pytest.raises(nnfs.NnfsTypeError, match="save: inference"):
        nnfs.save("not a network", tmp_path / "m.npz")
    with network(cpu) as original:
        with pytest.raises(nnfs.NnfsTypeError, match="file path"):
            nnfs.save(original, 42)
        nnfs.save(original, tmp_path / "m.npz")
    with pytest.raises(nnfs.NnfsTypeError, match=r"factory .* or an inference network"):
        nnfs.load(tmp_path / "m.npz", "cpu")


# --- damaged files: refused whole, never a raw exception, never a huge allocation ---------------

def mutate(data: bytes, rng: random.Random) -> bytes:
    """``data`` changed the ways a disk, a network or an attacker changes files: flipped bits,
    overwritten bytes and runs, cut, grown, shortened, with a piece of itself copied in."""
    data = bytearray(data)
    kind = rng.choice(["flip", "byte", "run", "cut", "insert", "delete", "copy"])
    for _ in range(rng.choice([1, 1, 2, 4])):
        i = rng.randrange(len(data)) if data else 0
        if kind == "flip" and data:
            data[i] ^= 1 << rng.randrange(8)
        elif kind == "byte" and data:
            data[i] = rng.randrange(256)
        elif kind == "run":
            data[i:i + rng.randint(1, 16)] = rng.randbytes(rng.randint(1, 16))
        elif kind == "cut":
            return bytes(data[:i])
        elif kind == "insert":
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        elif kind == "delete":
            del data[i:i + rng.randint(1, 8)]
        elif kind == "copy" and data:
            j = rng.randrange(len(data))
            data[i:i] = data[j:j + rng.randint(1, 64)]
    return bytes(data)


#: Mutated files per run: fixed seeds, so every run tries the same ones.
MUTATIONS = 400


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED],
                         ids=["stored", "deflated"])
def test_random_damage_to_a_model_file_is_refused_or_harmless(tmp_path, cpu, method):
    """Each of MUTATIONS damaged copies of a model file loads to the very same network, or is
    refused with a ModelFileError naming the file: never another exception."""
    original = zip_of({f"{k}.npy": v for k, v in _members().items()}, method)
    path = tmp_path / "model.npz"
    path.write_bytes(original)
    with nnfs.load(path, cpu) as network:
        expected = nnfs.transfer(network.parameters)
    rng = random.Random(16 + method)
    outcomes = {"same": 0, "refused": 0}
    for number in range(MUTATIONS):
        damaged = mutate(original, rng)
        path.write_bytes(damaged)
        try:
            with nnfs.load(path, cpu) as network:
                units = [layer.out_dim for layer in network.layers]
                assert network.in_dim == 3 and units == [4, 2]
                assert np.array_equal(nnfs.transfer(network.parameters), expected), number
            outcomes["same"] += 1
        except nnfs.ModelFileError as error:
            assert str(path) in str(error), error
            outcomes["refused"] += 1
        except Exception as error:  # the test fails: say which mutation, reproducibly
            raise AssertionError(f"mutation {number} raised {type(error).__name__}: {error}") \
                from error
    assert outcomes["refused"] > MUTATIONS // 2, outcomes  # the damage is found, mostly


def _members() -> dict[str, bytes]:
    from bad_files import npy

    return {name: npy(value) for name, value in model_entries().items()}


def _peak_memory_of(code: str) -> tuple[int, str]:
    """Run ``code`` in a fresh Python; its peak resident memory (bytes) and what it printed."""
    script = ("import resource, nnfs\n" + code + "\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    *printed, peak = result.stdout.splitlines()
    return int(peak), "\n".join(printed)


def test_a_small_file_declaring_a_huge_entry_is_refused_in_little_memory(tmp_path):
    """A model file of a few hundred kilobytes whose 'activations' entry declares 200 MB
    (deflated): the header is refused before the data is read, so loading it takes about
    the memory of loading a good model, not 200 MB more (numpy's reader takes it all)."""
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(model_bomb(200 << 20))
    assert bomb.stat().st_size < 2 << 20
    good = tmp_path / "good.npz"
    good.write_bytes(good_model())
    load = ("try:\n    nnfs.load({!r}, nnfs.backend('cpu'))\n"
            "except nnfs.ModelFileError as error:\n    print(error)\n")
    baseline, _ = _peak_memory_of(load.format(str(good)))
    peak, printed = _peak_memory_of(load.format(str(bomb)))
    assert "'activations' must be 2 names, one per layer, got <U4 of shape" in printed
    assert peak - baseline < 32 << 20, f"{(peak - baseline) >> 20} MiB more than a good model"


def test_the_parameters_are_read_only_once_the_network_fits(tmp_path, cpu, monkeypatch):
    """Loading checks that the network fits the device before it reads the parameters: a
    file declaring a network too large for the device is refused with OutOfDeviceMemory, its
    parameters never read (here they are damaged, and that is not what is reported)."""
    from bad_files import _flip_in_member, model_members

    count = 3 * 400 + 400 + 400 * 2 + 2  # parameters.npy of 9.6 KB: more than zip reads ahead
    members = model_members(units=np.array([400, 2]),
                            parameters=np.ones(count, dtype=np.float32))
    path = tmp_path / "model.npz"  # inside parameters.npy: a bad CRC, if anyone read it all
    path.write_bytes(_flip_in_member(zip_of(members), "parameters.npy", back=40))
    with pytest.raises(nnfs.ModelFileError, match="Bad CRC"):
        nnfs.load(path, cpu)
    from nnfs.backend_api import MemoryLimits

    monkeypatch.setattr(type(cpu), "memory_limits",
                        lambda self: MemoryLimits(total_bytes=64, max_allocation_bytes=64))
    with pytest.raises(nnfs.OutOfDeviceMemory, match=f"{count} parameters"):
        nnfs.load(path, cpu)


# --- saving as users expect of a tool that writes files -----------------------------------------

def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path, cpu):
    with network(cpu) as original:
        for umask, mode in ((0o022, 0o644), (0o027, 0o640), (0o077, 0o600)):
            old = os.umask(umask)
            try:
                path = nnfs.save(original, tmp_path / f"model-{umask:o}.npz")
            finally:
                os.umask(old)
            assert oct(path.stat().st_mode & 0o777) == oct(mode)


def test_a_replaced_file_keeps_its_mode(tmp_path, cpu):
    path = tmp_path / "model.npz"
    with network(cpu) as original:
        for mode in (0o600, 0o644, 0o664, 0o400):
            if path.exists():
                path.chmod(0o644)
                path.unlink()
            nnfs.save(original, path)
            path.chmod(mode)
            nnfs.save(original, path)
            assert oct(path.stat().st_mode & 0o777) == oct(mode)


def test_saving_through_a_symbolic_link_writes_its_target(tmp_path, cpu):
    target = tmp_path / "models" / "current.npz"
    target.parent.mkdir()
    link = tmp_path / "model.npz"
    link.symlink_to(os.path.relpath(target, tmp_path))
    with network(cpu, seed=1) as first, network(cpu, seed=2) as second:
        nnfs.save(first, target)
        nnfs.save(second, link)
        assert link.is_symlink() and os.readlink(link) == "models/current.npz"
        with nnfs.load(target, cpu) as loaded:
            assert np.array_equal(nnfs.transfer(loaded.parameters),
                                  nnfs.transfer(second.parameters))
    assert sorted(os.listdir(target.parent)) == ["current.npz"]  # no temporary file left


def test_saving_through_a_dangling_link_creates_its_target(tmp_path, cpu):
    link = tmp_path / "model.npz"
    link.symlink_to(tmp_path / "made.npz")
    with network(cpu) as original:
        nnfs.save(original, link)
    assert link.is_symlink() and (tmp_path / "made.npz").is_file()


@pytest.mark.parametrize("length", [250, 255])
def test_the_longest_names_the_filesystem_allows_can_be_saved(tmp_path, cpu, length):
    """The temporary file's name is shortened to fit NAME_MAX, however long the name."""
    path = tmp_path / ("m" * (length - 4) + ".npz")
    with network(cpu) as original:
        nnfs.save(original, path)
        nnfs.save(original, path)  # and replaced
    assert os.listdir(tmp_path) == [path.name]
    with nnfs.load(path, cpu) as loaded:
        assert loaded.in_dim == 3


def test_a_path_given_as_bytes_is_a_path(tmp_path, cpu):
    with network(cpu) as original:
        nnfs.save(original, os.fsencode(tmp_path / "model.npz"))
    assert (tmp_path / "model.npz").is_file()


def test_save_never_replaces_a_device(tmp_path, cpu):
    """As root, os.replace over /dev/null would make it a regular file for the whole system."""
    link = tmp_path / "null.npz"
    link.symlink_to("/dev/null")
    with network(cpu) as original, pytest.raises(nnfs.NnfsValueError, match="character device"):
        nnfs.save(original, link)
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_the_writers_find_a_full_file_size_limit_in_a_child_process(tmp_path):
    """RLIMIT_FSIZE in a child process: saving past it is an NnfsOSError naming the limit,
    and no temporary file stays."""
    code = f"""
import json, os, resource, nnfs
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
net = nnfs.inference_network(nnfs.backend("cpu"), 30, [nnfs.fully_connected(30, "tanh")])
try:
    nnfs.save(net, {str(tmp_path / "m.npz")!r})
except OSError as error:
    print(json.dumps([type(error).__name__, str(error), os.listdir({str(tmp_path)!r})]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    kind, message, left = json.loads(result.stdout)
    assert kind == "NnfsOSError" and "file-size limit" in message and left == []


def test_version_1_files_still_load_and_version_2_keeps_dropout(tmp_path, cpu):
    """Files written before dropout (version 1, no 'dropout' entry) load as before; a network
    with dropout saves its rates and loads with them (inference ignores them)."""
    _archive(tmp_path / "v1.npz", parameters=np.arange(26) / 26)
    with nnfs.load(tmp_path / "v1.npz", cpu) as loaded:
        assert [layer.dropout for layer in loaded.layers] == [0.0, 0.0]
        np.testing.assert_allclose(nnfs.transfer(loaded.parameters), np.arange(26) / 26,
                                   rtol=1e-7)
    layers = [nnfs.fully_connected(4, "tanh", dropout=0.25), nnfs.fully_connected(2, "softmax")]
    with nnfs.inference_network(cpu, 3, layers, seed=0) as original:
        nnfs.save(original, tmp_path / "v2.npz")
        with nnfs.load(tmp_path / "v2.npz", cpu) as loaded:
            assert [layer.dropout for layer in loaded.layers] == [0.25, 0.0]
    for rates in (np.array([1.0, 0.0]), np.array([0.5]), np.zeros((2, 2)),
                  np.array(["a", "b"])):
        _archive(tmp_path / "bad.npz", format_version=np.array(2), dropout=rates)
        with pytest.raises(nnfs.ModelFileError, match="'dropout' must be 2 rates in"):
            nnfs.load(tmp_path / "bad.npz", cpu)


def test_a_checkpoint_loads_as_its_model(tmp_path, cpu):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    with network(cpu) as net:
        nnfs.fit(net, X, y, epochs=2, quiet=True, checkpoint=tmp_path / "run.npz",
                 optimizer=nnfs.optimizers.Adam())
        with nnfs.load(tmp_path / "run.npz", cpu) as loaded:
            np.testing.assert_array_equal(nnfs.transfer(loaded.parameters),
                                          nnfs.transfer(net.parameters))


# --- save refuses what load would refuse (issue #16) ----------------------------------------------

def poisoned(network, index: int, value: float):
    """``network`` with one parameter set to ``value`` behind the checks of transfer (as a
    diverged update leaves it)."""
    parameters = nnfs.transfer(network.parameters).copy()
    parameters[index] = value
    network.factory.backend.write(parameters, network.parameters)
    return network


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
@pytest.mark.parametrize("value, kind", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "inf")])
def test_save_refuses_parameters_that_are_not_finite_and_leaves_the_old_file(tmp_path, cpu64,
                                                                           suffix, value, kind):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors", reason="writing safetensors needs the package")
    path = tmp_path / f"model{suffix}"
    with network(cpu64, seed=1) as good, network(cpu64, seed=2) as bad:
        nnfs.save(good, path)
        before = path.read_bytes()
        poisoned(bad, 7, value)
        with pytest.raises(nnfs.NnfsValueError, match=rf"save: the network to write to .*: "
                                                      rf"parameter 7 is {kind}; a model holds "
                                                      r"finite numbers.*did its training diverge"):
            nnfs.save(bad, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_save_and_load_share_their_bound_on_layers(tmp_path, cpu, monkeypatch):
    """The bounds load checks are the bounds save checks: with MAX_LAYERS lowered to 2, a
    3-layer network is refused by save (before anything is written) and its file by load."""
    from nnfs import io

    path = tmp_path / "deep.npz"
    with nnfs.inference_network(cpu, 3, [fully_connected(2, "tanh")] * 3) as deep:
        nnfs.save(deep, path)
        monkeypatch.setattr(io, "MAX_LAYERS", 2)
        with pytest.raises(nnfs.NnfsValueError, match="a model has 1 to 2 layers, got 3"):
            nnfs.save(deep, tmp_path / "new.npz")
    with pytest.raises(nnfs.ModelFileError, match="at most 2 layers"):
        nnfs.load(path, cpu)
    assert not (tmp_path / "new.npz").exists()


@pytest.mark.parametrize("options, message", [
    ({"classes": ["a"]}, "1 classes for a network of 2 outputs; expected 2"),
    ({"classes": ["a", "a"]}, "the class 'a' is named twice"),
    ({"classes": ["a", ""]}, r"class 1 \(''\) must be 1 to 1024 characters"),
    ({"classes": ["a", "b\0"]}, "with no NUL"),
    ({"classes": ["a", 1]}, "class 1 must be text, got int"),
    ({"classes": "ab"}, "classes must be a list of text labels"),
    ({"classes": ["a", "x" * 1025]}, "must be 1 to 1024 characters"),
    ({"task": "clustering"}, "the task must be one of classification, regression"),
    ({"task": "regression", "classes": ["a", "b"]}, "a regression model has no classes"),
])
def test_save_refuses_labels_that_load_would_refuse(tmp_path, cpu, options, message):
    with network(cpu) as original, pytest.raises(nnfs.NnfsValueError, match=message):
        nnfs.save(original, tmp_path / "m.npz", **options)
    assert list(tmp_path.iterdir()) == []


def test_the_labels_of_a_one_output_classifier_are_its_two_sides(tmp_path, cpu):
    from nnfs.io import inspect_model

    with nnfs.inference_network(cpu, 3, [fully_connected(1, "sigmoid")]) as binary:
        nnfs.save(binary, tmp_path / "b.npz", classes=["no", "yes"])
    assert inspect_model(tmp_path / "b.npz").classes == ("no", "yes")
    with np.load(tmp_path / "b.npz") as archive:
        assert archive["classes"].tolist() == ["no", "yes"]
        assert archive["task"].item() == "classification"
