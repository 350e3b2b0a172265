"""What Python knows about ``kernels.cu``: its source, each kernel's parameters, its constants.

Everything here is read from the ``.cu`` file itself, so the Python side and the CUDA side cannot
drift apart: a kernel's parameters come from its ``__global__`` line, the activation and cost
codes from its enums, the block size from ``THREADS``. :func:`arguments` checks and converts the
arguments of a launch against those parameters (a device array of the right dtype for a
pointer, a numpy int32 for ``int``, a numpy int64 for ``long long``...), for the real device
layer and for the test suite's stand-in alike.

No CuPy here: this module is plain Python and is tested without a GPU.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

import numpy as np

#: The C++ name of each dtype nnfs-cuda instantiates the kernels for.
CTYPES = {"float32": "float", "float64": "double"}

#: The options nnfs-cuda gives NVRTC (CuPy adds the architecture and ``-ftz=true``).
NVRTC_OPTIONS = ("-std=c++17",)

_KERNEL = re.compile(r"^template <typename T>\n__global__ void (\w+)\(([^)]*)\)", re.MULTILINE)
_ENUM = re.compile(r"^enum (\w+) \{([^}]*)\};", re.MULTILINE)
_CONSTANT = re.compile(r"^constexpr int (\w+) = (\d+);", re.MULTILINE)
_PARAMETER_TYPES = ("const T*", "T*", "T", "int", "long long", "double", "double*",
                    "const long long*")


@functools.cache
def source() -> str:
    """The text of kernels.cu (package data)."""
    return resources.files(__package__).joinpath("kernels.cu").read_text(encoding="utf-8")


@functools.cache
def signatures() -> dict[str, tuple[tuple[str, str], ...]]:
    """Each kernel's parameters as (type, name) pairs, in order."""
    found = {}
    for name, parameters in _KERNEL.findall(source()):
        pairs = []
        for parameter in parameters.split(","):
            kind, _, pname = parameter.strip().rpartition(" ")
            kind = kind.replace(" *", "*")
            if kind not in _PARAMETER_TYPES:
                raise ValueError(f"kernels.cu: {name}({parameter.strip()}): unknown parameter type")
            pairs.append((kind, pname))
        found[name] = tuple(pairs)
    return found


@functools.cache
def enum(name: str) -> dict[str, int]:
    """The members of ``enum name`` in kernels.cu, as {"SIGMOID": 1, ...}."""
    for enum_name, body in _ENUM.findall(source()):
        if enum_name == name:
            members = {}
            for item in body.split(","):
                member, _, value = item.partition("=")
                members[member.strip()] = int(value)
            return members
    raise KeyError(f"kernels.cu has no enum {name}")


@functools.cache
def constant(name: str) -> int:
    """The value of ``constexpr int name`` in kernels.cu."""
    for constant_name, value in _CONSTANT.findall(source()):
        if constant_name == name:
            return int(value)
    raise KeyError(f"kernels.cu has no constant {name}")


def name_expressions(dtype: str) -> list[str]:
    """The template instantiations to compile for ``dtype``: ``["fill<float>", ...]``."""
    return [f"{name}<{CTYPES[dtype]}>" for name in signatures()]


def activation_code(kind: str) -> int:
    """The code of an element-wise activation in kernels.cu's ``enum Activation`` ("tanh" → 2).

    softmax is not there: it normalises whole columns and has kernels of its own.
    """
    return enum("Activation")[kind.upper()]


def cost_code(kind: str) -> int:
    """The code of a cost in kernels.cu's ``enum Cost`` ("quadratic" → 0)."""
    return enum("Cost")[kind.upper()]


def optimizer_code(kind: str) -> int:
    """The code of an optimizer in kernels.cu's ``enum Optimizer`` ("adam" → 3)."""
    return enum("Optimizer")[kind.upper()]


def arguments(kernel: str, values: tuple, dtype: str) -> tuple:
    """``values`` converted to the exact types of ``kernel``'s parameters for ``dtype``.

    Pointers must be one-dimensional arrays of the parameter's dtype (T, double or long long);
    ints must
    fit their C type. A mismatch is a bug in nnfs-cuda, reported as ``TypeError`` naming the
    kernel and the parameter, before anything is launched.
    """
    parameters = signatures().get(kernel)
    if parameters is None:
        raise TypeError(f"kernels.cu has no kernel {kernel!r}")
    if len(values) != len(parameters):
        raise TypeError(f"kernel {kernel} takes {len(parameters)} arguments "
                        f"({', '.join(n for _, n in parameters)}), got {len(values)}")
    real = np.dtype(dtype)
    converted = []
    for (kind, pname), value in zip(parameters, values, strict=True):
        where = f"kernel {kernel}, parameter {kind} {pname}"
        if kind.endswith("*"):
            want = {"double*": np.dtype(np.float64),
                    "const long long*": np.dtype(np.int64)}.get(kind, real)
            if getattr(value, "dtype", None) != want or getattr(value, "ndim", None) != 1:
                raise TypeError(f"{where}: expected a 1-D array of {want}, got {value!r:.80}")
            converted.append(value)
        elif kind in ("int", "long long"):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{where}: expected an integer, got {value!r}")
            c_type = np.int32 if kind == "int" else np.int64
            limits = np.iinfo(c_type)
            if not limits.min <= int(value) <= limits.max:
                raise TypeError(f"{where}: {value} does not fit in {kind}")
            converted.append(c_type(value))
        else:  # T or double
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise TypeError(f"{where}: expected a real number, got {value!r}")
            converted.append((np.float64 if kind == "double" else real.type)(value))
    return tuple(converted)
