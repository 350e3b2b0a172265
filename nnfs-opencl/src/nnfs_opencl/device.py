"""Finding OpenCL devices and choosing one.

Devices are numbered across all platforms, platform by platform, in the order the OpenCL
loader reports them. Which one a factory uses:

* the ``device`` option of ``nnfs.backend("opencl", device=...)``, else
* the environment variable ``NNFS_OPENCL_DEVICE``, else
* the first GPU, else the first device of any kind (PoCL's CPU device, say), that can
  build a program: a driver whose compiler does not know this processor (PoCL 3.0's wheel
  on an AMD Zen 5, say: "unknown target CPU 'generic'") is passed over, and named in the
  error when no device is left.

A device is named by its number (``1``), by ``platform:device`` numbers (``"0:1"``), or by a
piece of its name or its platform's name, case ignored (``"pthread"``, ``"nvidia"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import nnfs

#: Environment variable naming the OpenCL device when the ``device`` option is not given.
ENV_DEVICE = "NNFS_OPENCL_DEVICE"

INSTALL_HINT = (
    "install an OpenCL driver: pip install 'nnfs-opencl[pocl]' gives a CPU device on any "
    "machine, and your GPU vendor's OpenCL driver gives the GPU"
)


class NoPlatform(nnfs.BackendUnavailable):
    """No OpenCL platform (driver) is installed, or none has a device."""


@dataclass(frozen=True)
class Device:
    """One OpenCL device and where it sits in the numbering."""

    number: int
    platform_number: int
    device_number: int
    cl_device: Any
    platform_name: str

    @property
    def name(self) -> str:
        return self.cl_device.name.strip()

    @property
    def is_gpu(self) -> bool:
        import pyopencl as cl

        return bool(self.cl_device.type & cl.device_type.GPU)

    @property
    def is_cpu(self) -> bool:
        import pyopencl as cl

        return bool(self.cl_device.type & cl.device_type.CPU)

    @property
    def supports_float64(self) -> bool:
        return supports_float64(self.cl_device)

    @property
    def dtypes(self) -> tuple[str, ...]:
        return ("float32", "float64") if self.supports_float64 else ("float32",)

    def describe(self) -> str:
        kind = "GPU" if self.is_gpu else "CPU" if self.is_cpu else "accelerator"
        memory = self.cl_device.global_mem_size / 2**30
        return (f"{self.number} ({self.platform_number}:{self.device_number}) {self.name} "
                f"[{kind}, {self.platform_name}, {memory:.1f} GiB]")


def supports_float64(cl_device: Any) -> bool:
    """True if the device does double precision (cl_khr_fp64, or a double config)."""
    try:
        if cl_device.double_fp_config:
            return True
    except Exception:  # an old driver without CL_DEVICE_DOUBLE_FP_CONFIG
        pass
    return "cl_khr_fp64" in cl_device.extensions.split()


def all_devices() -> list[Device]:
    """Every device of every platform, numbered; raises :class:`NoPlatform` if there is none."""
    import pyopencl as cl

    try:
        platforms = cl.get_platforms()
    except cl.Error as error:  # PLATFORM_NOT_FOUND_KHR from the loader when no driver exists
        raise NoPlatform(f"no OpenCL platform found ({error}); {INSTALL_HINT}") from None
    devices: list[Device] = []
    for p, platform in enumerate(platforms):
        try:
            found = platform.get_devices()
        except cl.Error:  # DEVICE_NOT_FOUND: a platform with no device
            found = []
        for d, cl_device in enumerate(found):
            devices.append(Device(len(devices), p, d, cl_device, platform.name.strip()))
    if not devices:
        names = ", ".join(p.name.strip() for p in platforms) or "none"
        raise NoPlatform(f"no OpenCL device found (platforms: {names}); {INSTALL_HINT}")
    return devices


#: A kernel every OpenCL compiler builds: whether a device can build programs at all.
_PROBE_KERNEL = "__kernel void nnfs_probe(__global float *x) { x[get_global_id(0)] = 1.0f; }"

#: Per device (platform and device name): None when it builds programs, else the reason.
_BUILDS: dict[tuple[str, str], str | None] = {}


def build_failure(device: Device) -> str | None:
    """Why ``device`` cannot build a program (its compiler's first words), or None when it
    can. Built once per device and process."""
    key = (device.platform_name, device.name)
    if key not in _BUILDS:
        import pyopencl as cl

        try:
            context = cl.Context([device.cl_device])
            cl.Program(context, _PROBE_KERNEL).build()
            _BUILDS[key] = None
        except cl.Error as error:
            log = " ".join(str(error).split())
            _BUILDS[key] = log[:300] + ("..." if len(log) > 300 else "")
    return _BUILDS[key]


def requested_device(option: object) -> tuple[object, str]:
    """The device asked for and where it came from. The only reader of NNFS_OPENCL_DEVICE."""
    if option is not None:
        return option, f"device={option!r}"
    from_env = os.environ.get(ENV_DEVICE, "").strip()
    if from_env:
        return from_env, f"the environment variable {ENV_DEVICE}={from_env!r}"
    return None, "the default (first GPU, else first device)"


def select_device(option: object = None) -> Device:
    """The device named by ``option`` (see the module docstring), or the default one."""
    wanted, source = requested_device(option)
    devices = all_devices()
    if wanted is None:
        return _default(devices)
    return _match(wanted, source, devices)


def _default(devices: list[Device]) -> Device:
    """The first GPU, else the first device, that can build a program."""
    ordered = [d for d in devices if d.is_gpu] + [d for d in devices if not d.is_gpu]
    failures = []
    for device in ordered:
        failure = build_failure(device)
        if failure is None:
            return device
        failures.append(f"{device.describe()}: {failure}")
    raise NoPlatform(
        "no OpenCL device can build a program: " + "; ".join(failures) + f"; {INSTALL_HINT} "
        "(on a processor newer than PoCL's wheel knows, Debian's or conda's PoCL may work: "
        "apt-get install pocl-opencl-icd)")


def _listing(devices: list[Device]) -> str:
    return "; ".join(device.describe() for device in devices)


def _match(wanted: object, source: str, devices: list[Device]) -> Device:
    if isinstance(wanted, bool) or not isinstance(wanted, (int, str)):
        raise nnfs.NnfsTypeError(
            f"{source}: an OpenCL device is named by a number, 'platform:device' or part of its "
            f"name, got {type(wanted).__name__}; the devices: {_listing(devices)}")
    text = str(wanted).strip()
    if text.isdigit():
        number = int(text)
        if number < len(devices):
            return devices[number]
        raise nnfs.NnfsValueError(
            f"{source}: there is no OpenCL device {number}; the devices: {_listing(devices)}")
    if ":" in text:
        platform, _, device = text.partition(":")
        if platform.strip().isdigit() and device.strip().isdigit():
            for candidate in devices:
                if (candidate.platform_number, candidate.device_number) == (
                        int(platform), int(device)):
                    return candidate
            raise nnfs.NnfsValueError(
                f"{source}: there is no OpenCL device {text}; the devices: {_listing(devices)}")
    lowered = text.lower()
    for candidate in devices:
        if lowered in candidate.name.lower() or lowered in candidate.platform_name.lower():
            return candidate
    raise nnfs.NnfsValueError(
        f"{source}: no OpenCL device or platform name contains {text!r}; "
        f"the devices: {_listing(devices)}")
