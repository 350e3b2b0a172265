"""The exceptions nnfs raises.

Every error nnfs raises on purpose is an :class:`NnfsError`. Where a built-in exception has the
same meaning, the nnfs error is also that built-in (``ShapeError`` is a ``ValueError``,
``BackendNotFound`` a ``LookupError``...), so code written against the standard exceptions keeps
working and code that wants to catch "anything nnfs refused" catches ``NnfsError``.
"""

from __future__ import annotations


class NnfsError(Exception):
    """Base class of every error that nnfs raises on purpose."""


# --- backends and plugins -------------------------------------------------------------------


class BackendNotFound(NnfsError, LookupError):
    """No installed backend has the requested name."""


class BackendUnavailable(NnfsError, RuntimeError):
    """The backend is installed but cannot be used here (no device, a broken plugin...)."""


class PluginError(NnfsError, RuntimeError):
    """A plugin was refused: it failed to import, its hook failed, or it breaks the contract."""


class UnsupportedOperation(NnfsError, NotImplementedError):
    """The backend declared that it does not provide this operation or dtype."""


# --- arguments ------------------------------------------------------------------------------


class NnfsValueError(NnfsError, ValueError):
    """An argument has the right type but a wrong value."""


class NnfsTypeError(NnfsError, TypeError):
    """An argument has the wrong type."""


class ShapeError(NnfsValueError):
    """Matrix or vector dimensions do not fit together."""


class DTypeMismatch(NnfsTypeError):
    """Data of one dtype was given where another dtype is required."""


class BackendMismatch(NnfsValueError):
    """A matrix or vector belongs to another factory (another backend, device or dtype)."""


class ReleasedError(NnfsValueError):
    """A matrix, vector, network or factory was used after ``release()``."""


# --- devices and training -------------------------------------------------------------------


class OutOfDeviceMemory(NnfsError, MemoryError):
    """The memory asked for does not fit on the device.

    ``requested`` and ``available`` hold the two numbers of bytes when they are known.
    """

    def __init__(self, message: str, requested: int | None = None, available: int | None = None):
        super().__init__(message)
        self.requested = requested
        self.available = available


class InUseError(NnfsError, RuntimeError):
    """A network was given to a second thread while another thread trains it or predicts
    with it. Training and inference on one network do not interleave: use one network per
    thread (networks on one factory take turns, a step at a time)."""


class DeviceError(NnfsError, RuntimeError):
    """The device failed while running work nnfs gave it: a kernel's fault, a failing library
    call (cuBLAS, NCCL), a copy the driver refused. The message names the operation that
    reported it and the device. Devices that run work asynchronously report a fault at a later
    call than the one that caused it, and the message says so."""


class TrainingDiverged(NnfsError, FloatingPointError):
    """The cost became NaN or infinite during training.

    ``epoch`` is the epoch (counted from 1 within the call) whose cost was not finite and
    ``eta`` the learning rate in use. The weights are put back to those of the last epoch
    (for ``fit``: the last mini-batch) whose cost was finite, or left as they were when
    training was called if there was none.
    """

    def __init__(self, message: str, epoch: int, eta: float):
        super().__init__(message)
        self.epoch = epoch
        self.eta = eta


# --- data-parallel training ------------------------------------------------------------------


class MpiUnavailable(NnfsError, ImportError):
    """Data-parallel training was asked for, but mpi4py or an MPI library cannot be loaded.
    The message names the extra that brings both: ``pip install 'nnfs-core[mpi]'``."""


class MissingDependency(NnfsError, ImportError):
    """A part of nnfs that needs an optional library (scikit-learn for ``nnfs.sklearn``, onnx
    for ``nnfs.export_onnx``) was used without it. The message names the extra to install."""


class DataParallelError(NnfsError, RuntimeError):
    """The processes of a data-parallel job disagree (network shapes, dtypes, data, weights),
    or one of them failed where all of them must succeed together. Raised on every rank,
    with the same message; ``ranks`` lists the ranks at fault."""

    def __init__(self, message: str, ranks: list[int] | tuple[int, ...] = ()):
        super().__init__(message)
        self.ranks = tuple(ranks)


# --- files ----------------------------------------------------------------------------------


class ModelFileError(NnfsValueError):
    """A model file is not a valid nnfs model, or does not fit the network it is loaded into."""


class DataFileError(NnfsValueError):
    """A data file (CSV, npz, IDX) cannot be read as training data."""


class NnfsFileNotFoundError(NnfsError, FileNotFoundError):
    """A file that nnfs was asked to read does not exist."""


class NnfsPermissionError(NnfsError, PermissionError):
    """A file cannot be read or written for lack of permission."""


class NnfsOSError(NnfsError, OSError):
    """A file cannot be written or read for a reason of the system: the disk is full, the
    filesystem is read-only, the process's file-size limit is reached. ``errno`` is the
    system's error number when there is one."""


__all__ = [
    "BackendMismatch",
    "BackendNotFound",
    "BackendUnavailable",
    "DTypeMismatch",
    "DataFileError",
    "DataParallelError",
    "DeviceError",
    "InUseError",
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
    "UnsupportedOperation",
]
