"""Model files in the safetensors format (issue #19): written by the safetensors package,
readable by it and by Hugging Face's tools, loaded by nnfs's own reader with the checks of the
npz format, and without the package."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest

import nnfs
from bad_files import SAFETENSORS_FILES, good_safetensors, model_metadata, safetensors_file
from conftest import ROOT
from nnfs import fully_connected
from nnfs.io import inspect_model
from test_io import mutate

safetensors_numpy = pytest.importorskip(
    "safetensors.numpy", reason="the safetensors package (nnfs-core[safetensors]) writes these "
    "files; without it, only loading is tested (test_loading_needs_no_safetensors_package)")


def network(factory, seed=0):
    return nnfs.inference_network(factory, 3, [fully_connected(4, "tanh"),
                                               fully_connected(2, "softmax")], seed=seed)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_in_both_dtypes(tmp_path, dtype):
    path = tmp_path / "model.safetensors"
    with network(nnfs.backend("cpu", dtype), seed=3) as original:
        nnfs.save(original, path)
        expected = nnfs.transfer(original.parameters)
    for other in ("float32", "float64"):
        with nnfs.load(path, nnfs.backend("cpu", other)) as loaded:
            assert loaded.in_dim == 3 and [layer.out_dim for layer in loaded.layers] == [4, 2]
            assert [layer.activation for layer in loaded.layers] == [nnfs.tanh, nnfs.softmax]
            np.testing.assert_allclose(nnfs.transfer(loaded.parameters), expected,
                                       rtol=1e-7 if "float32" in (dtype, other) else 0)
    assert inspect_model(path).format == "safetensors"
    assert inspect_model(path).dtype == dtype


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_file_nnfs_writes_is_read_by_safetensors_as_pytorch_lays_out_linear_layers(tmp_path,
                                                                                     dtype):
    path = tmp_path / "model.safetensors"
    factory = nnfs.backend("cpu", dtype)
    X = np.random.default_rng(0).normal(size=(7, 3))
    with network(factory, seed=5) as original:
        nnfs.save(original, path, classes=["cat", "dog"])
        weights = [nnfs.transfer(layer.weights) for layer in original.layers]
        biases = [nnfs.transfer(layer.bias) for layer in original.layers]
        expected = nnfs.predict(original, X)
    tensors = safetensors_numpy.load_file(str(path))
    assert sorted(tensors) == ["layers.0.bias", "layers.0.weight", "layers.1.bias",
                               "layers.1.weight"]
    for i in range(2):  # units × inputs, as nn.Linear's weight, and the bias, bit for bit
        assert tensors[f"layers.{i}.weight"].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(tensors[f"layers.{i}.weight"], weights[i])
        np.testing.assert_array_equal(tensors[f"layers.{i}.bias"], biases[i])
    # the forward pass of its tensors alone, in numpy, as another tool would run it
    hidden = np.tanh(X @ tensors["layers.0.weight"].T.astype(np.float64)
                     + tensors["layers.0.bias"])
    z = hidden @ tensors["layers.1.weight"].T.astype(np.float64) + tensors["layers.1.bias"]
    outputs = np.exp(z - z.max(axis=1, keepdims=True))
    outputs /= outputs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5 if dtype == "float32" else 1e-12)
    from safetensors import safe_open

    with safe_open(str(path), "np") as opened:
        metadata = opened.metadata()
    assert metadata == {"format": "nnfs-model", "format_version": "2", "in_dim": "3",
                        "units": "[4, 2]", "activations": '["tanh", "softmax"]',
                        "dropout": "[0.0, 0.0]", "dtype": dtype, "task": "classification",
                        "classes": '["cat", "dog"]'}


def test_a_file_the_package_writes_in_any_order_loads(tmp_path):
    """nnfs reads the format, not its own writer's habits: tensors in any order, any padding."""
    rng = np.random.default_rng(1)
    tensors = {"layers.1.bias": rng.normal(size=2).astype(np.float32),
               "layers.0.weight": rng.normal(size=(4, 3)).astype(np.float32),
               "layers.1.weight": rng.normal(size=(2, 4)).astype(np.float32),
               "layers.0.bias": rng.normal(size=4).astype(np.float32)}
    path = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(tensors, str(path), metadata=model_metadata())
    with nnfs.load(path, nnfs.backend("cpu")) as loaded:
        np.testing.assert_array_equal(nnfs.transfer(loaded.layers[0].weights),
                                      tensors["layers.0.weight"])
        np.testing.assert_array_equal(nnfs.transfer(loaded.layers[1].bias),
                                      tensors["layers.1.bias"])
    by_hand = tmp_path / "by-hand.safetensors"  # compact JSON, no padding
    by_hand.write_bytes(good_safetensors())
    assert nnfs.transfer(nnfs.load(by_hand, nnfs.backend("cpu")).parameters)[0] == \
        pytest.approx(0.01)


def test_the_format_is_chosen_by_the_suffix_or_by_format_and_loading_reads_the_bytes(tmp_path):
    factory = nnfs.backend("cpu")
    with network(factory) as original:
        expected = nnfs.transfer(original.parameters)
        for name, file_format, magic in (("m.safetensors", None, b"{"),
                                         ("m.SafeTensors", None, b"{"),
                                         ("m.npz", None, b"PK"), ("m.bin", "safetensors", b"{"),
                                         ("npz.safetensors", "npz", b"PK"), ("m", None, b"PK")):
            path = nnfs.save(original, tmp_path / name, format=file_format)
            head = path.read_bytes()[:9]
            assert (head[8:9] if magic == b"{" else head[:2]) == magic, name
            with nnfs.load(path, factory) as loaded:  # whatever the name says
                assert np.array_equal(nnfs.transfer(loaded.parameters), expected), name
        with pytest.raises(nnfs.NnfsValueError, match="format must be one of npz, safetensors"):
            nnfs.save(original, tmp_path / "m.onnx", format="onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_classes_and_task_are_kept_in_both_formats(tmp_path):
    factory = nnfs.backend("cpu")
    with network(factory) as original:
        for suffix in (".npz", ".safetensors"):
            path = nnfs.save(original, tmp_path / f"named{suffix}", classes=["é", "a, b"])
            model = inspect_model(path)
            assert (model.task, model.classes) == ("classification", ("é", "a, b"))
            path = nnfs.save(original, tmp_path / f"plain{suffix}")
            assert (inspect_model(path).task, inspect_model(path).classes) == (None, None)
    with nnfs.inference_network(factory, 3, [fully_connected(1, "linear")]) as regressor:
        for suffix in (".npz", ".safetensors"):
            path = nnfs.save(regressor, tmp_path / f"r{suffix}", task="regression")
            assert inspect_model(path).task == "regression"


@pytest.mark.parametrize("bad", SAFETENSORS_FILES, ids=lambda bad: bad.name)
def test_damaged_and_crafted_files_are_refused_naming_what_is_wrong(tmp_path, bad):
    path = tmp_path / f"{bad.name}.safetensors"
    path.write_bytes(bad.make())
    with pytest.raises(nnfs.ModelFileError) as raised:
        nnfs.load(path, nnfs.backend("cpu"))
    message = str(raised.value)
    assert str(path) in message
    assert bad.given.lower() in message.lower() and bad.expected.lower() in message.lower(), \
        message


def test_a_file_named_safetensors_that_holds_text_is_refused_as_one(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("hello, this is no model")
    with pytest.raises(nnfs.ModelFileError, match=r"header declares .* bytes"):
        nnfs.load(path, nnfs.backend("cpu"))


#: Damaged copies tried, with fixed seeds.
MUTATIONS = 400


def test_random_damage_is_refused_or_harmless(tmp_path, cpu):
    original = good_safetensors()
    path = tmp_path / "model.safetensors"
    path.write_bytes(original)
    with nnfs.load(path, cpu) as loaded:
        expected = nnfs.transfer(loaded.parameters)
    rng = random.Random(19)
    refused = 0
    for number in range(MUTATIONS):
        damaged = mutate(original, rng)
        path.write_bytes(damaged)
        try:
            with nnfs.load(path, cpu) as loaded:
                parameters = nnfs.transfer(loaded.parameters)
        except nnfs.ModelFileError as error:
            assert str(path) in str(error), error
            refused += 1
            continue
        except Exception as error:
            raise AssertionError(f"mutation {number} raised {type(error).__name__}: {error}") \
                from error
        # no checksum: a flipped bit in the data is another valid model, of the same network
        assert parameters.shape == expected.shape, number
        assert np.isfinite(parameters).all(), number
    assert refused > MUTATIONS // 2


def test_the_tensors_are_read_only_once_the_network_fits(tmp_path, cpu, monkeypatch):
    path = tmp_path / "model.safetensors"
    path.write_bytes(good_safetensors())
    from nnfs import _safetensors
    from nnfs.backend_api import MemoryLimits

    monkeypatch.setattr(_safetensors.SafetensorsFile, "read",
                        lambda *args: pytest.fail("a tensor was read"))
    monkeypatch.setattr(type(cpu), "memory_limits",
                        lambda self: MemoryLimits(total_bytes=64, max_allocation_bytes=64))
    with pytest.raises(nnfs.OutOfDeviceMemory, match="26 parameters"):
        nnfs.load(path, cpu)
    assert inspect_model(path).parameter_count == 26  # the header alone


def test_a_header_larger_than_load_reads_is_refused_by_save(tmp_path):
    """save refuses what load would: 4096 class labels of 1024 control characters each fit the
    bound of the labels, but not, escaped twice as JSON (7 bytes each), the bound of a
    safetensors header."""
    factory = nnfs.backend("cpu")
    names = [f"{i:04d}" + "\x01" * 1020 for i in range(4096)]
    with nnfs.inference_network(factory, 1, [fully_connected(4096, "softmax")]) as wide:
        with pytest.raises(nnfs.NnfsValueError, match="safetensors header would take"):
            nnfs.save(wide, tmp_path / "wide.safetensors", classes=names)
        assert list(tmp_path.iterdir()) == []
        nnfs.save(wide, tmp_path / "wide.npz", classes=names)  # npz holds them
        assert inspect_model(tmp_path / "wide.npz").classes == tuple(names)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_loading_needs_no_safetensors_package(tmp_path):
    """With the package unavailable, a safetensors model loads and predicts; saving one is
    refused, naming the extra, before anything is written; npz saving is untouched."""
    model = tmp_path / "model.safetensors"
    model.write_bytes(good_safetensors())
    code = f"""
import sys
sys.modules["safetensors"] = None  # as if it were not installed
import nnfs
factory = nnfs.backend("cpu")
network = nnfs.load({str(model)!r}, factory)
print(nnfs.transfer(network.parameters)[:2].tolist())
try:
    nnfs.save(network, {str(tmp_path / 'new.safetensors')!r})
except nnfs.MissingDependency as error:
    print("refused:", error)
nnfs.save(network, {str(tmp_path / 'new.npz')!r})
print(sorted(m for m in sys.modules if m.startswith("safetensors")))
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert json.loads(lines[0]) == pytest.approx([0.01, 0.02])
    assert lines[1].startswith("refused:") and "pip install 'nnfs-core[safetensors]'" in lines[1]
    assert lines[2] == "['safetensors']"  # only the blocked entry: nothing imported it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "new.npz"]


def test_nnfs_train_refuses_a_safetensors_save_it_could_not_write_before_training(tmp_path):
    code = (f"import sys; sys.modules['safetensors'] = None; from nnfs.cli import main; "
            f"sys.exit(main(['train', '--epochs', '1', '--save', "
            f"{str(tmp_path / 'm.safetensors')!r}]))")
    result = _python(code)
    assert result.returncode == 1
    assert "epoch" not in result.stdout and "test accuracy" not in result.stdout
    assert "nnfs-core[safetensors]" in result.stderr and result.stderr.count("\n") == 1


def test_a_safetensors_model_is_exported_to_onnx_and_predicted_by_nnfs(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported model")
    import onnxruntime

    from conftest import run_nnfs

    factory = nnfs.backend("cpu")
    model = tmp_path / "model.safetensors"
    X = np.random.default_rng(2).normal(size=(6, 3))
    with network(factory, seed=2) as original:
        nnfs.save(original, model)
        expected = nnfs.predict(original, X)
    result = run_nnfs("export", "--model", str(model), "--onnx", str(tmp_path / "m.onnx"))
    assert result.returncode == 0, result.stderr
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"),
                                           providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": X.astype(np.float32)})[0]
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    predicted = run_nnfs("predict", "--model", str(model), "--data", str(tmp_path / "x.csv"),
                         "--probabilities")
    assert predicted.returncode == 0, predicted.stderr
    rows = [line.split(",") for line in predicted.stdout.splitlines()[1:]]
    np.testing.assert_allclose(np.array([row[1:] for row in rows], float), expected, rtol=1e-5)


def test_the_header_is_bounded_before_it_is_read(tmp_path, monkeypatch):
    """A length just over the bound is refused from the 8 bytes alone."""
    from nnfs import _safetensors

    path = tmp_path / "big.safetensors"
    path.write_bytes(safetensors_file("{}", b"", length=_safetensors.MAX_HEADER_BYTES + 1))
    with pytest.raises(nnfs.ModelFileError, match="at most 16777216"):
        nnfs.load(path, nnfs.backend("cpu"))


def test_dropout_rates_are_kept_and_version_1_files_load(tmp_path):
    factory = nnfs.backend("cpu")
    layers = [fully_connected(4, "tanh", dropout=0.25), fully_connected(2, "softmax")]
    with nnfs.inference_network(factory, 3, layers, seed=0) as original:
        nnfs.save(original, tmp_path / "v2.safetensors")
    assert [layer.dropout for layer in inspect_model(tmp_path / "v2.safetensors").layers] == \
        [0.25, 0.0]
    (tmp_path / "v1.safetensors").write_bytes(good_safetensors())  # version 1: no dropout
    with nnfs.load(tmp_path / "v1.safetensors", factory) as loaded:
        assert [layer.dropout for layer in loaded.layers] == [0.0, 0.0]
