"""nnfs: a small neural-network training framework whose core runs on any backend.

The API follows "Deep Learning from Scratch to GPU, part 12: A Simple Neural Network Training
API"::

    import nnfs
    from nnfs import fully_connected, sigmoid, tanh

    factory = nnfs.backend("cpu")
    x = factory.matrix(2, 2, [[0.3, 0.3], [0.9, 0.9]])   # rows: features, columns: samples
    y = factory.matrix(1, 2, [[0.5, 0.5]])
    inference = nnfs.inference_network(factory, 2, [fully_connected(4, tanh),
                                                    fully_connected(1, sigmoid)])
    training = nnfs.training_network(inference, x)
    cost = nnfs.sgd(training, y, nnfs.quadratic_cost, 20, 0.05)
    print(nnfs.transfer(inference(x)))

Backends are separate distributions (nnfs-cpu, nnfs-opencl, nnfs-cuda, or your own) found
through the entry-point group ``nnfs``; importing nnfs loads none of them. What a backend
author needs is in :mod:`nnfs.backend_api`.
"""

from __future__ import annotations

from typing import Any

from . import (
    mpi,  # data-parallel training; imports no mpi4py until nnfs.mpi.world()
    optimizers,
    registry as _registry,
    schedules,
)
from ._version import __version__ as __version__
from .activations import Activation, linear, relu, sigmoid, softmax, tanh
from .arrays import Matrix, Vector
from .callbacks import EarlyStopping
from .costs import Cost, cross_entropy_cost, quadratic_cost
from .errors import (
    BackendMismatch,
    BackendNotFound,
    BackendUnavailable,
    DataFileError,
    DataParallelError,
    DeviceError,
    DTypeMismatch,
    InUseError,
    MissingDependency,
    ModelFileError,
    MpiUnavailable,
    NnfsError,
    NnfsFileNotFoundError,
    NnfsOSError,
    NnfsPermissionError,
    NnfsTypeError,
    NnfsValueError,
    OutOfDeviceMemory,
    PluginError,
    ReleasedError,
    ShapeError,
    TrainingDiverged,
    UnsupportedOperation,
)
from .export import export_onnx  # imports onnx only when a model is exported
from .factory import Factory, MemoryStats, transfer
from .fit import History, fit, predict
from .io import load, save
from .network import (
    FullyConnected,
    InferenceNetwork,
    MemoryPlan,
    fully_connected,
    inference_network,
    plan_memory,
)
from .registry import BackendInfo
from .sgd import sgd
from .training import TrainingNetwork, TrainingStep, training_network

#: This is nnfs-core's package ``nnfs``, not the unrelated PyPI distribution's (see _clash.py).
_is_nnfs_core = True

def backend(name: str | None = None, dtype: object = "float32", **options: Any) -> Factory:
    """The factory of the backend ``name`` for ``dtype`` ("float32" or "float64").

    ``name`` may carry options as text, ``"opencl:gemm=clblast,device=1"``, as everywhere a
    backend is named (the command line's ``--backend``, ``NNFS_BACKEND``); ``options`` give them
    as Python values (``device=1``), checked against what the backend declares (``nnfs
    backends`` lists them). With no name, the backend named by the environment variable
    ``NNFS_BACKEND`` is used, else the best available installed backend: the one of the
    highest priority its plugin declares (cuda, then opencl on a GPU, then cpu), ``cpu`` among
    equals. Asking twice for the same backend, dtype and options gives the same factory until
    it is released.

    Raises :class:`BackendNotFound` when no installed backend has the name, and
    :class:`BackendUnavailable` when it is installed but cannot run here (no device, a plugin
    that failed to load), with the reason.
    """
    return _registry.default().backend(name, dtype, **options)


def backends() -> list[BackendInfo]:
    """Every installed backend (and every plugin that failed to load), with availability,
    devices, dtypes and, when unavailable, the reason."""
    return _registry.default().infos()


def __getattr__(name: str) -> Any:
    """``nnfs.sklearn``, imported when first used: ``import nnfs`` never imports scikit-learn."""
    if name == "sklearn":
        from importlib import import_module

        return import_module(".sklearn", __name__)
    raise AttributeError(f"module 'nnfs' has no attribute {name!r}")


__all__ = [
    "Activation",
    "BackendInfo",
    "BackendMismatch",
    "BackendNotFound",
    "BackendUnavailable",
    "Cost",
    "DTypeMismatch",
    "DataFileError",
    "DataParallelError",
    "DeviceError",
    "EarlyStopping",
    "Factory",
    "FullyConnected",
    "History",
    "InUseError",
    "InferenceNetwork",
    "Matrix",
    "MemoryPlan",
    "MemoryStats",
    "MissingDependency",
    "ModelFileError",
    "MpiUnavailable",
    "NnfsError",
    "NnfsFileNotFoundError",
    "NnfsOSError",
    "NnfsPermissionError",
    "NnfsTypeError",
    "NnfsValueError",
    "OutOfDeviceMemory",
    "PluginError",
    "ReleasedError",
    "ShapeError",
    "TrainingDiverged",
    "TrainingNetwork",
    "TrainingStep",
    "UnsupportedOperation",
    "Vector",
    "backend",
    "backends",
    "cross_entropy_cost",
    "export_onnx",
    "fit",
    "fully_connected",
    "inference_network",
    "linear",
    "load",
    "mpi",
    "optimizers",
    "plan_memory",
    "predict",
    "quadratic_cost",
    "relu",
    "save",
    "schedules",
    "sgd",
    "sigmoid",
    "softmax",
    "tanh",
    "training_network",
    "transfer",
]
