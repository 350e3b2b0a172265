"""ONNX export: nnfs.export_onnx and ``nnfs export``, checked with ONNX Runtime (issue #19).

ONNX Runtime must give nnfs.predict's outputs to 1e-5 in float32 and 1e-12 in float64, for
every activation (in hidden and output layers) and on every backend a network can live on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest

pytest.importorskip("onnx", reason="ONNX export needs the onnx package (nnfs-core[onnx])")
pytest.importorskip("onnxruntime", reason="the exports are checked with onnxruntime (in "
                                          "nnfs-core[test])")

import onnx
import onnxruntime as ort

import nnfs
from conftest import ROOT, run_nnfs
from nnfs import export, fully_connected as fc

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
ACTIVATIONS = ["linear", "sigmoid", "tanh", "relu", "softmax"]


def randomized(network, seed=0):
    """Random weights and biases (a new network's biases are zero, which would hide a bias
    taken from the wrong place)."""
    rng = np.random.default_rng(seed)
    for layer in network.layers:
        nnfs.transfer(rng.normal(0, 0.7, (layer.out_dim, layer.in_dim)), layer.weights)
        nnfs.transfer(rng.normal(0, 0.5, layer.out_dim), layer.bias)
    return network


def run_onnx(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    return session.run(None, {"input": X})[0]


def samples(n, features, dtype, seed=1):
    return np.random.default_rng(seed).normal(0, 1.5, (n, features)).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ACTIVATIONS)
def test_every_activation_as_onnx_runtime_computes_it(tmp_path, kind, dtype):
    """5 → 8 kind → 6 kind → 3 kind: the activation in hidden layers and in the output."""
    factory = nnfs.backend("cpu", dtype)
    with randomized(nnfs.inference_network(factory, 5, [fc(8, kind), fc(6, kind),
                                                        fc(3, kind)])) as network:
        path = nnfs.export_onnx(network, tmp_path / "m.onnx")
        X = samples(257, 5, dtype)  # more than predict's batch of 256: a short last batch
        expected = nnfs.predict(network, X)
    got = run_onnx(path, X)
    assert got.dtype == np.dtype(dtype) and got.shape == (257, 3)
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    if kind == "softmax":  # over the features of each sample, not over the samples
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=TOLERANCE[dtype])


def test_a_network_of_every_activation_on_every_backend(tmp_path, factory):
    layers = [fc(16, "relu"), fc(12, "tanh"), fc(10, "sigmoid"), fc(8, "linear"),
              fc(4, "softmax")]
    with randomized(nnfs.inference_network(factory, 7, layers), seed=2) as network:
        nnfs.export_onnx(network, tmp_path / "m.onnx")
        X = samples(100, 7, factory.dtype)
        expected = nnfs.predict(network, X)
    tolerance = TOLERANCE[factory.dtype]
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", X), expected, rtol=tolerance,
                               atol=tolerance)


def test_the_graph_is_one_gemm_per_layer_at_the_stated_opset(tmp_path):
    factory = nnfs.backend("cpu")
    with nnfs.inference_network(factory, 4, [fc(6, "tanh"), fc(5, "linear"),
                                             fc(3, "softmax")]) as network:
        nnfs.export_onnx(network, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", export.OPSET)]
    assert export.OPSET == 13
    assert model.ir_version == 7 == onnx.helper.find_min_ir_version_for(list(model.opset_import))
    assert [node.op_type for node in model.graph.node] == ["Gemm", "Tanh", "Gemm", "Gemm",
                                                            "Softmax"]
    softmax = model.graph.node[-1]
    assert [(a.name, a.i) for a in softmax.attribute] == [("axis", 1)]
    assert all(a.i == 1 for n in model.graph.node if n.op_type == "Gemm" for a in n.attribute
               if a.name == "transB")
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {"nnfs_architecture": "4 → 6 tanh → 5 linear → 3 softmax",
                     "nnfs_dtype": "float32"}
    assert model.producer_name == "nnfs" and model.producer_version == nnfs.__version__
    shape = model.graph.input[0].type.tensor_type.shape
    assert [d.dim_param or d.dim_value for d in shape.dim] == ["N", 4]


def test_the_opset_is_stated_in_the_docstrings_and_the_guide():
    readme = " ".join((ROOT / "docs" / "guide" / "formats.md").read_text(encoding="utf-8").split())
    for text in (export.__doc__, nnfs.export_onnx.__doc__, readme):
        assert f"opset {export.OPSET}" in " ".join(text.split()).replace("**", "")


# --- nnfs export ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_model_trained_on_standardised_features_takes_raw_ones(tmp_path, dtype):
    """nnfs train standardises the features and folds the scaling into the first layer; the
    exported graph, fed the raw features (here of scales from 0.01 to 1000), gives
    nnfs.predict's outputs on them, and the model's accuracy."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=600, n_features=6, n_informative=4, n_redundant=0,
                               n_classes=3, class_sep=2.0, random_state=0)
    X = X * np.array([0.01, 1, 10, 100, 1000, 3]) + np.array([5, -20, 300, 0, 1e4, 1])
    data, model, exported = tmp_path / "data.npz", tmp_path / "m.npz", tmp_path / "m.onnx"
    np.savez(data, X=X, y=y)
    trained = run_nnfs("train", "--data", str(data), "--epochs", "20", "--eta", "0.1",
                       "--layers", "16:tanh,3:softmax", "--dtype", dtype, "--save", str(model),
                       "--quiet")
    assert trained.returncode == 0, trained.stderr
    result = run_nnfs("export", "--model", str(model), "--onnx", str(exported))
    assert result.returncode == 0, result.stderr
    assert f"ONNX opset {export.OPSET}" in result.stdout and dtype in result.stdout
    X = X.astype(dtype)
    with nnfs.load(model, nnfs.backend("cpu", dtype)) as network:
        expected = nnfs.predict(network, X)
    got = run_onnx(exported, X)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    raw = np.mean(got.argmax(axis=1) == y)
    standardised = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(dtype)
    scaled_again = np.mean(run_onnx(exported, standardised).argmax(axis=1) == y)
    assert raw > 0.9 and scaled_again < raw - 0.2, (raw, scaled_again)


def test_export_in_another_dtype_than_the_file(tmp_path):
    with randomized(nnfs.inference_network(nnfs.backend("cpu", "float64"), 3,
                                           [fc(4, "tanh"), fc(2, "sigmoid")])) as network:
        nnfs.save(network, tmp_path / "m.npz")
        X = samples(20, 3, "float64")
        expected = nnfs.predict(network, X)
    result = run_nnfs("export", "--model", str(tmp_path / "m.npz"), "--onnx",
                      str(tmp_path / "m.onnx"), "--dtype", "float32")
    assert result.returncode == 0, result.stderr
    got = run_onnx(tmp_path / "m.onnx", X.astype(np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arguments, text", [
    (["--model", "{dir}/absent.npz", "--onnx", "{dir}/m.onnx"], "absent.npz' does not exist"),
    (["--model", "{dir}/notes.txt", "--onnx", "{dir}/m.onnx"], "not an nnfs model file"),
    (["--model", "{dir}/m.npz", "--onnx", "{dir}/no/such/m.onnx"], "does not exist"),
    (["--model", "{dir}/m.npz", "--onnx", "{dir}"], "is a directory"),
    (["--model", "{dir}/m.npz"], "the following arguments are required: --onnx"),
])
def test_bad_export_command_lines_say_so_in_one_line(tmp_path, arguments, text):
    with nnfs.inference_network(nnfs.backend("cpu"), 2, [fc(2, "softmax")]) as network:
        nnfs.save(network, tmp_path / "m.npz")
    (tmp_path / "notes.txt").write_text("not a model\n")
    before = sorted(os.listdir(tmp_path))
    result = run_nnfs("export", *[a.format(dir=tmp_path) for a in arguments])
    assert result.returncode in (1, 2) and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and text in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == before


# --- refusals ------------------------------------------------------------------------------------

@pytest.fixture
def network():
    with nnfs.inference_network(nnfs.backend("cpu"), 3, [fc(4, "tanh"), fc(2, "softmax")]) as net:
        yield net


def test_what_is_not_a_network_or_not_a_path(tmp_path, network):
    with pytest.raises(nnfs.NnfsTypeError, match=r"network must be made by nnfs\.inference"):
        nnfs.export_onnx("model.npz", tmp_path / "m.onnx")
    with pytest.raises(nnfs.NnfsTypeError, match="path must be a file path, got int"):
        nnfs.export_onnx(network, 42)
    network.release()
    with pytest.raises(nnfs.ReleasedError, match="export_onnx: network"):
        nnfs.export_onnx(network, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_paths_that_cannot_be_written(tmp_path, network):
    with pytest.raises(nnfs.NnfsFileNotFoundError, match="does not exist"):
        nnfs.export_onnx(network, tmp_path / "no" / "m.onnx")
    with pytest.raises(nnfs.NnfsValueError, match="is a directory"):
        nnfs.export_onnx(network, tmp_path)

    def refuse(*args, **kwargs):  # as the system refuses (root may write anywhere)
        raise PermissionError(13, "Permission denied")

    with mock.patch("tempfile.mkstemp", refuse), \
            pytest.raises(nnfs.NnfsPermissionError, match="cannot write in"):
        nnfs.export_onnx(network, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere, so chmod cannot stop it")
def test_a_directory_without_write_permission(tmp_path, network):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(nnfs.NnfsPermissionError):
            nnfs.export_onnx(network, locked / "m.onnx")
    finally:
        locked.chmod(0o700)


def test_the_file_is_written_whole_or_not_at_all(tmp_path, network):
    """Interrupted before the rename, the old file stays as it was and no temporary file is
    left (the atomic write of nnfs.save)."""
    path = tmp_path / "m.onnx"
    path.write_bytes(b"the old model")
    with mock.patch("os.replace", side_effect=KeyboardInterrupt), \
            pytest.raises(KeyboardInterrupt):
        nnfs.export_onnx(network, path)
    assert path.read_bytes() == b"the old model" and os.listdir(tmp_path) == ["m.onnx"]
    nnfs.export_onnx(network, path)
    assert onnx.load(str(path)).graph.node[0].op_type == "Gemm"


def test_a_network_onnx_cannot_express_is_refused_before_writing(tmp_path, network,
                                                                monkeypatch):
    """Every activation nnfs has today has an operator, so the refusal is tried on a table
    without tanh, and on a protocol-buffer limit smaller than the network."""
    without_tanh = {k: v for k, v in export.ACTIVATION_OPERATORS.items() if k != "tanh"}
    monkeypatch.setattr(export, "ACTIVATION_OPERATORS", without_tanh)
    with pytest.raises(nnfs.UnsupportedOperation,
                       match="layer 1 has the activation 'tanh', which has no ONNX operator"):
        nnfs.export_onnx(network, tmp_path / "m.onnx")
    monkeypatch.undo()
    monkeypatch.setattr(export, "PROTOBUF_LIMIT", 1 << 20)
    monkeypatch.setattr(export, "_HEADROOM", (1 << 20) - 64)  # 64 bytes: less than 26 floats
    with pytest.raises(nnfs.UnsupportedOperation, match="104 bytes of parameters, more than "
                                                        "one ONNX file holds"):
        nnfs.export_onnx(network, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_every_nnfs_activation_has_an_operator():
    from nnfs.activations import ACTIVATIONS as ALL

    assert set(ALL) == set(export.ACTIVATION_OPERATORS)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_without_the_onnx_package_the_error_names_the_extra(tmp_path):
    result = _python(
        "import sys; sys.modules['onnx'] = None\n"
        "import nnfs\n"
        "network = nnfs.inference_network(nnfs.backend('cpu'), 2, "
        "[nnfs.fully_connected(2, 'softmax')])\n"
        "try:\n"
        f"    nnfs.export_onnx(network, {str(tmp_path / 'm.onnx')!r})\n"
        "except ImportError as error:\n"
        "    print(type(error).__name__, isinstance(error, nnfs.NnfsError), error)")
    assert result.stdout.strip() == (
        "MissingDependency True exporting to ONNX needs the onnx package, which is not "
        "installed: pip install 'nnfs-core[onnx]'"), result.stderr
    assert list(tmp_path.iterdir()) == []


def test_import_nnfs_imports_no_onnx():
    result = _python("import sys, nnfs; nnfs.export_onnx; print([m for m in sys.modules "
                     "if m.split('.')[0] in ('onnx', 'onnxruntime')])")
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


# --- the user guide ------------------------------------------------------------------------------

def test_the_guide_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "guide" / "formats.md").read_text(encoding="utf-8")
    example = text.split("## ONNX export", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "formats.md", "exec"), namespace)
    assert (tmp_path / "digits.onnx").exists()
    np.testing.assert_allclose(namespace["outputs"], namespace["expected"], rtol=1e-5,
                               atol=1e-5)
