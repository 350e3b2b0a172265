"""ONNX export: :func:`export_onnx` writes a network as an ONNX model, for ONNX Runtime and the
other runtimes that serve ONNX.

The graph takes one sample per **row**, as ``nnfs.predict`` does: input ``input``, of shape
``N × in_dim`` (N free), and output ``output``, ``N × out_dim``, both in the network's dtype
(ONNX ``float`` for float32, ``double`` for float64). Each layer is one ``Gemm`` node,
``Gemm(a, W, b, transB=1) = a·Wᵀ + b`` with the layer's weights (units × inputs) and bias as
initializers, followed by its activation:

==========  ===============================
nnfs        ONNX
==========  ===============================
linear      (nothing: the Gemm's output)
sigmoid     ``Sigmoid``
tanh        ``Tanh``
relu        ``Relu``
softmax     ``Softmax`` with ``axis=1``, over the features of each sample (row)
==========  ===============================

The model imports the default ONNX domain at **opset 13** (:data:`OPSET`), the first in which
``Softmax`` normalises one axis alone, with the lowest IR version that opset allows (7, of
ONNX 1.8), so that older runtimes can load it too. A model that ``nnfs train`` saved takes
raw features (the standardisation is folded into its first layer), and so does its export.

The file is written whole or not at all, like ``nnfs.save``. It needs the ``onnx`` package
(``pip install 'nnfs-core[onnx]'``), imported only when a model is exported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _checks as check
from .errors import MissingDependency, NnfsTypeError, UnsupportedOperation
from .io import check_writable, write_whole
from .network import InferenceNetwork

if TYPE_CHECKING:
    import argparse
    from types import ModuleType

    import onnx

#: The opset of the default ONNX domain that exported models import.
OPSET = 13

#: The ONNX operator of each activation (None: none, the Gemm's output as it is) and its
#: attributes.
ACTIVATION_OPERATORS: dict[str, tuple[str, dict[str, Any]] | None] = {
    "linear": None,
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "relu": ("Relu", {}),
    "softmax": ("Softmax", {"axis": 1}),
}

#: Protocol buffers, which ONNX files are, hold at most 2 GiB.
PROTOBUF_LIMIT = 2**31 - 1
#: Room left under the limit for the graph's other fields.
_HEADROOM = 1 << 20


def _onnx() -> ModuleType:
    try:
        import onnx
    except ImportError:
        raise MissingDependency("exporting to ONNX needs the onnx package, which is not "
                                "installed: pip install 'nnfs-core[onnx]'") from None
    return onnx


def describe(in_dim: int, layers: list[tuple[int, str]]) -> str:
    return f"{in_dim} → " + " → ".join(f"{units} {kind}" for units, kind in layers)


def check_expressible(in_dim: int, layers: list[tuple[int, str]], itemsize: int) -> None:
    """Raise :class:`nnfs.UnsupportedOperation` unless ONNX can express this network in one
    file: every activation must have an operator, and the parameters must fit a protocol
    buffer."""
    for number, (_, kind) in enumerate(layers, 1):
        if kind not in ACTIVATION_OPERATORS:
            raise UnsupportedOperation(
                f"export_onnx: layer {number} has the activation {kind!r}, which has no ONNX "
                f"operator here; exportable activations: {', '.join(ACTIVATION_OPERATORS)}")
    widths = [in_dim] + [units for units, _ in layers]
    nbytes = itemsize * sum(widths[i + 1] * (widths[i] + 1) for i in range(len(layers)))
    if nbytes > PROTOBUF_LIMIT - _HEADROOM:
        raise UnsupportedOperation(
            f"export_onnx: the network {describe(in_dim, layers)} has {nbytes} bytes of "
            f"parameters, more than one ONNX file holds ({PROTOBUF_LIMIT} bytes, the protocol "
            "buffer limit); ONNX's external data files are not supported by nnfs yet")


def model_proto(in_dim: int, layers: list[tuple[int, str]], weights: list[np.ndarray],
                biases: list[np.ndarray], dtype: str) -> onnx.ModelProto:
    """The ONNX model (an ``onnx.ModelProto``) of a network given as host arrays: for each
    layer, (units, activation kind), its weights (units × inputs) and its bias."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    from ._version import __version__

    numpy_dtype = np.dtype(dtype)
    element = TensorProto.FLOAT if numpy_dtype == np.float32 else TensorProto.DOUBLE
    check_expressible(in_dim, layers, numpy_dtype.itemsize)
    nodes, initializers, source = [], [], "input"
    for number, ((_, kind), w, b) in enumerate(zip(layers, weights, biases, strict=True), 1):
        last = number == len(layers)
        operator = ACTIVATION_OPERATORS[kind]
        product = "output" if last and operator is None else f"layer{number}_z"
        initializers += [numpy_helper.from_array(np.ascontiguousarray(w, numpy_dtype),
                                                 f"layer{number}_weights"),
                         numpy_helper.from_array(np.ascontiguousarray(b, numpy_dtype),
                                                 f"layer{number}_bias")]
        nodes.append(helper.make_node(  # z = a·Wᵀ + b, one sample per row
            "Gemm", [source, f"layer{number}_weights", f"layer{number}_bias"], [product],
            name=f"layer{number}_gemm", transB=1))
        source = product
        if operator is not None:
            name, attributes = operator
            activated = "output" if last else f"layer{number}_a"
            nodes.append(helper.make_node(name, [product], [activated],
                                          name=f"layer{number}_{kind}", **attributes))
            source = activated
    graph = helper.make_graph(
        nodes, "nnfs",
        [helper.make_tensor_value_info("input", element, ["N", in_dim])],
        [helper.make_tensor_value_info("output", element, ["N", layers[-1][0]])],
        initializers, doc_string=f"nnfs network {describe(in_dim, layers)}, {dtype}")
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="nnfs",
                              producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(model, {"nnfs_architecture": describe(in_dim, layers),
                                   "nnfs_dtype": dtype})
    onnx.checker.check_model(model)
    return model


def _path(path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise NnfsTypeError(f"export_onnx: path must be a file path, got {type(path).__name__}")
    return Path(path)


def write_model(model: onnx.ModelProto, path: Path) -> Path:
    """Write an ``onnx.ModelProto`` to ``path``, whole or not at all."""
    data = model.SerializeToString()
    write_whole(path, lambda file: file.write(data), "export_onnx")
    return path


def export_onnx(network: InferenceNetwork, path: object) -> Path:
    """Write ``network`` as an ONNX model (opset 13, :data:`OPSET`) to ``path``; returns the path.

    The model takes ``input``, one sample per row (``N × in_dim``), and gives ``output``
    (``N × out_dim``) in the network's dtype: what ``nnfs.predict(network, X)`` gives, to the
    rounding of the runtime (see the module docstring for the graph). The file is written
    whole or not at all.

    Raises :class:`nnfs.NnfsTypeError` for anything but an inference network or a path,
    :class:`nnfs.ReleasedError` for a released network, :class:`nnfs.UnsupportedOperation`
    for a network ONNX cannot express in one file, :class:`nnfs.MissingDependency` without
    the onnx package, and the errors of ``nnfs.save`` for a path that cannot be written;
    all before anything is written.
    """
    if not isinstance(network, InferenceNetwork):
        raise NnfsTypeError("export_onnx: network must be made by nnfs.inference_network "
                            f"(or loaded by nnfs.load), got {type(network).__name__}")
    check.live(network, "export_onnx: network")
    path = _path(path)
    check_writable(path, "export_onnx")
    layers = [(layer.out_dim, str(layer.activation.kind)) for layer in network.layers]
    check_expressible(network.in_dim, layers, network.factory.itemsize)
    factory = network.factory
    weights = [factory.to_host(layer.weights) for layer in network.layers]
    biases = [factory.to_host(layer.bias) for layer in network.layers]
    model = model_proto(network.in_dim, layers, weights, biases, factory.dtype)
    return write_model(model, path)


# --- nnfs export --------------------------------------------------------------------------------

def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model saved by nnfs train --save")
    parser.add_argument("--onnx", required=True, metavar="FILE",
                        help=f"the ONNX file to write (opset {OPSET})")
    parser.add_argument("--dtype", default=None, choices=["float32", "float64"],
                        help="the graph's dtype (default: the model file's)")


def run_export(args: argparse.Namespace) -> int:
    """``nnfs export --model m.npz --onnx m.onnx``: the model file as ONNX, through host
    arrays (no backend is needed)."""
    from .io import read_model

    path = Path(args.onnx)
    check_writable(path, "--onnx")
    _onnx()  # the missing package is named before the model is read
    in_dim, layers, parameters = read_model(args.model)
    dtype = args.dtype or _file_dtype(args.model)
    weights, biases, start, width = [], [], 0, in_dim
    for layer in layers:
        count = layer.units * width
        # each layer's weights column by column (units × inputs), then its bias
        weights.append(parameters[start:start + count].reshape(width, layer.units).T)
        biases.append(parameters[start + count:start + count + layer.units])
        start += count + layer.units
        width = layer.units
    shapes = [(layer.units, str(layer.activation.kind)) for layer in layers]
    too_large = np.abs(parameters) > np.finfo(dtype).max
    if too_large.any():
        raise UnsupportedOperation(f"--dtype {dtype}: parameter {int(np.argmax(too_large))} of "
                                   f"{args.model} is too large for {dtype}")
    write_model(model_proto(in_dim, shapes, weights, biases, dtype), path)
    print(f"exported: {args.onnx} (ONNX opset {OPSET}, {describe(in_dim, shapes)}, {dtype}, "
          "input 'input' of one sample per row, output 'output')")
    return 0


def _file_dtype(model: str) -> str:
    """The dtype a model file (already checked by read_model, of either format) was saved in."""
    from .io import inspect_model

    return inspect_model(model).dtype
