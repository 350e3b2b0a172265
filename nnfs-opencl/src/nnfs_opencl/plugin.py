"""The nnfs plugin of the OpenCL backend: declares the backend ``opencl`` to nnfs.

nnfs finds this module through the entry point ``opencl`` of group ``nnfs`` in nnfs-opencl's
``pyproject.toml``. Importing it imports neither pyopencl nor touches a device: the probe and
the factory do that when they are called.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import nnfs
from nnfs import backend_api as api

#: What the backend can do on some device; the probe says what the selected device does.
DTYPES = ("float32", "float64")

#: The default backend's rank with a GPU; with a CPU device only (PoCL), it ranks below the
#: cpu backend, which is faster there.
PRIORITY, CPU_ONLY_PRIORITY = 20, 5

#: The options of ``nnfs.backend("opencl", ...)`` (or ``opencl:device=1,gemm=clblast``).
OPTIONS = (
    api.BackendOption("device", (int, str), "a number, 'platform:device' or part of a name; "
                      "default: NNFS_OPENCL_DEVICE, else the first GPU, else the first device"),
    api.BackendOption("gemm", str, "the matrix product", ("auto", "blocked", "tiled", "clblast")),
)


def make_factory(dtype: object = "float32", device: object = None, gemm: str = "auto"):
    """Create an :class:`nnfs_opencl.backend.OpenclBackend` (see it for the options)."""
    from .backend import OpenclBackend

    return OpenclBackend(dtype=dtype, device=device, gemm=gemm)


def _icd_libraries() -> list[str]:
    """The driver libraries the OpenCL loader would open, from its vendor files (``.icd``,
    one library per file: the system's, ``OCL_ICD_VENDORS``', pyopencl's own), read without
    starting OpenCL."""
    folders: list[Path] = [Path("/etc/OpenCL/vendors")]
    vendors = os.environ.get("OCL_ICD_VENDORS")
    if vendors:
        folders.append(Path(vendors))
    spec = importlib.util.find_spec("pyopencl")
    for location in (spec.submodule_search_locations or []) if spec else []:
        folders.append(Path(location) / ".libs")
    libraries = [name for name in os.environ.get("OCL_ICD_FILENAMES", "").split(":") if name]
    for folder in folders:
        files = [folder] if folder.is_file() else sorted(folder.glob("*.icd"))
        for file in files:
            try:
                libraries.append(file.read_text(encoding="utf-8", errors="replace").strip())
            except OSError:
                continue
    return libraries


def rank() -> int:
    """The most this backend can rank here, for the default choice, without starting OpenCL
    (PoCL writes into ~/.cache when it starts): below the cpu backend when every OpenCL driver
    installed is PoCL's, a CPU device; the GPU rank otherwise, which the probe then confirms."""
    libraries = _icd_libraries()
    if all("pocl" in Path(library).name.lower() for library in libraries):
        return CPU_ONLY_PRIORITY
    return PRIORITY


def probe() -> api.BackendStatus:
    """List the OpenCL devices and mark the one a factory would use; never raises.

    With a GPU, the device a factory would use is found as the factory finds it (the first
    that builds a program). With only CPU devices (PoCL), the backend ranks below the cpu
    backend for the default, and no program is built to rank it: the factory finds its device
    when it is asked for."""
    try:
        import pyopencl  # noqa: F401
    except ImportError as error:
        return api.BackendStatus(False, f"pyopencl cannot be imported: {error}")
    from .device import ENV_DEVICE, all_devices, select_device

    try:
        devices = all_devices()
        if not any(device.is_gpu for device in devices) and not os.environ.get(ENV_DEVICE):
            names = tuple(device.describe() for device in devices)
            dtypes = tuple(dtype for dtype in DTYPES
                           if any(dtype in device.dtypes for device in devices))
            return api.BackendStatus(True, devices=names, dtypes=dtypes,
                                     priority=CPU_ONLY_PRIORITY)
        chosen = select_device()
    except nnfs.NnfsError as error:
        return api.BackendStatus(False, str(error))
    names = tuple(device.describe() + (" (selected)" if device.number == chosen.number else "")
                  for device in devices)
    return api.BackendStatus(True, devices=names, dtypes=chosen.dtypes,
                             priority=PRIORITY if chosen.is_gpu else CPU_ONLY_PRIORITY)


@api.hookimpl
def nnfs_backends() -> list[api.BackendSpec]:
    return [
        api.BackendSpec(
            name="opencl",
            factory=make_factory,
            api_version=2,
            dtypes=DTYPES,
            probe=probe,
            description="OpenCL kernels through pyopencl (GPUs, or the CPU with PoCL)",
            priority=PRIORITY,
            options=OPTIONS,
            rank=rank,
        )
    ]
