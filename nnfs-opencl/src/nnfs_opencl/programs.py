"""Building the OpenCL programs of the backend, with work-groups that every kernel allows.

A device's ``CL_DEVICE_MAX_WORK_GROUP_SIZE`` is an upper bound, not a promise: a kernel that
needs many registers or much local memory may allow fewer work-items per group
(``CL_KERNEL_WORK_GROUP_SIZE``, known only once the kernel is built), and launching it with more
fails with ``CL_INVALID_WORK_GROUP_SIZE`` or ``CL_OUT_OF_RESOURCES``. So each program is built
for the work-group its caller would like, every kernel of it is asked what it allows, and where
one allows less the program is built again for the largest work-group that fits, with a
:class:`SmallerWorkGroupWarning` that says so. A compiler's refusal is an
:class:`nnfs.DeviceError` with the compiler's log, never a raw pyopencl error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import nnfs


class SmallerWorkGroupWarning(UserWarning):
    """A kernel allows fewer work-items per group than its program was built for: it was
    rebuilt for a smaller work-group (or tile), which is correct but may be slower."""


@dataclass(frozen=True)
class WorkGroupLimit:
    """What every kernel of a program allows: the largest work-group all of them take
    (the least ``CL_KERNEL_WORK_GROUP_SIZE``) and the work-group multiple they prefer (the
    largest ``CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE``; 32 on NVIDIA, 64 on AMD)."""

    size: int
    multiple: int


def kernel_source(name: str) -> str:
    """The text of ``kernels/NAME`` (package data)."""
    return resources.files("nnfs_opencl").joinpath("kernels", name).read_text(encoding="utf-8")


def kernel_work_group(kernel: Any, cl_device: Any) -> tuple[int, int]:
    """``(CL_KERNEL_WORK_GROUP_SIZE, CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE)`` of one
    built kernel on ``cl_device`` (the tests replace this function to play a stricter device)."""
    import pyopencl as cl

    info = cl.kernel_work_group_info
    return (int(kernel.get_work_group_info(info.WORK_GROUP_SIZE, cl_device)),
            int(kernel.get_work_group_info(info.PREFERRED_WORK_GROUP_SIZE_MULTIPLE, cl_device)))


def work_group_limit(program: Any, cl_device: Any) -> WorkGroupLimit:
    """What every kernel of the built ``program`` allows on ``cl_device``."""
    limits = [kernel_work_group(kernel, cl_device) for kernel in program.all_kernels()]
    return WorkGroupLimit(min(size for size, _ in limits),
                          max(multiple for _, multiple in limits))


def build(context: Any, device_name: str, source: str, options: Sequence[str]) -> Any:
    """``kernels/SOURCE`` built with ``options``; a failure is an :class:`nnfs.DeviceError`
    naming the program, the device and the options, with the compiler's log."""
    import pyopencl as cl

    try:
        return cl.Program(context, kernel_source(source)).build(list(options))
    except cl.Error as error:
        log = " ".join(str(error).split())
        raise nnfs.DeviceError(
            f"building kernels/{source} for {device_name} failed (options "
            f"{' '.join(options)}): {log[:2000]}") from None


def build_fitting(context: Any, cl_device: Any, device_name: str, source: str,
                  options: Callable[[int], Sequence[str]], needed: Callable[[int], int],
                  limit: int, what: str) -> tuple[Any, int, WorkGroupLimit]:
    """Build ``source`` for the largest work-group that its kernels allow.

    ``options(limit)`` gives the build options for work-groups of at most ``limit`` items and
    ``needed(limit)`` the work-group those options launch; ``limit`` starts at what the caller
    would like (the device's maximum, or less). After each build, if some kernel allows fewer
    than ``needed``, the limit becomes what the kernels allow and the program is built again,
    with a :class:`SmallerWorkGroupWarning`. Returns the program, the limit it was built for
    and what its kernels allow."""
    import warnings

    while True:
        program = build(context, device_name, source, options(limit))
        allowed = work_group_limit(program, cl_device)
        wanted = needed(limit)
        if wanted <= allowed.size:
            return program, limit, allowed
        smaller = needed(allowed.size)
        if smaller >= wanted or smaller < 1:
            raise nnfs.DeviceError(
                f"{what} on {device_name}: its kernels allow work-groups of {allowed.size} "
                f"items (CL_KERNEL_WORK_GROUP_SIZE), and no smaller {what} fits")
        note = (f"; the device prefers multiples of {allowed.multiple}, so this may be slow"
                if smaller % max(1, allowed.multiple) else "")
        warnings.warn(SmallerWorkGroupWarning(
            f"{what} on {device_name}: a kernel of kernels/{source} allows work-groups of "
            f"{allowed.size} items (CL_KERNEL_WORK_GROUP_SIZE), fewer than the {wanted} it was "
            f"built for; built again for {smaller}{note}"), stacklevel=3)
        limit = allowed.size
