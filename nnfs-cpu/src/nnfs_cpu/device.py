"""The CPU backend's device: this machine's cores and the memory this process may still use.

Memory. A network is refused before anything is allocated when it does not fit (nnfs checks
``memory_limits()`` first), so the figure must be what the process can really take before the
kernel's out-of-memory killer ends it:

* the system's ``MemAvailable`` (``/proc/meminfo``), which counts reclaimable page cache;
* and, in a container or a batch job (Docker, Kubernetes, Slurm, systemd), the memory cgroup's
  limit less what the cgroup already uses — for cgroup v2 ``memory.max`` less
  ``memory.current``, for cgroup v1 ``memory.limit_in_bytes`` less ``memory.usage_in_bytes``,
  of this process's cgroup and of every cgroup above it, each less the inactive file cache it
  could reclaim (``inactive_file`` in ``memory.stat``).

The smallest of these is what is available. Anything unreadable is left out, never guessed.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: Where the cgroup file systems are mounted (tests point it elsewhere).
CGROUP_ROOT = Path("/sys/fs/cgroup")

#: What a cgroup v1 ``memory.limit_in_bytes`` says when there is no limit (about 2⁶³).
_UNLIMITED = 1 << 62


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= _UNLIMITED else value


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    return 0


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _own_cgroups(proc_cgroup: Path = Path("/proc/self/cgroup")) -> dict[str, str]:
    """This process's cgroup paths: ``{"v2": "/a/b"}`` and/or ``{"memory": "/a/b"}`` (v1)."""
    found: dict[str, str] = {}
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            found["v2"] = path
        elif "memory" in controllers.split(","):
            found["memory"] = path
    return found


def _ancestors(base: Path, path: str) -> list[Path]:
    """``base/path`` and every directory above it up to ``base``, innermost first."""
    parts = [part for part in path.split("/") if part]
    return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def cgroup_available(root: Path | None = None,
                     proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """Bytes this process's memory cgroups still allow (the tightest of them), or None when
    no limit applies or none can be read."""
    root = CGROUP_ROOT if root is None else root
    own = _own_cgroups(proc_cgroup)
    room: list[int] = []
    if "v2" in own:
        for folder in _ancestors(root, own["v2"]):
            limit = _read_int(folder / "memory.max")
            used = _read_int(folder / "memory.current")
            if limit is not None and used is not None:
                room.append(limit - used + _stat(folder / "memory.stat", "inactive_file"))
    if "memory" in own:
        base = root / "memory"
        for folder in _ancestors(base, own["memory"]):
            limit = _read_int(folder / "memory.limit_in_bytes")
            used = _read_int(folder / "memory.usage_in_bytes")
            if limit is not None and used is not None:
                inactive = _stat(folder / "memory.stat", "total_inactive_file")
                room.append(limit - used + inactive)
    return max(0, min(room)) if room else None


def available_memory() -> int | None:
    """Bytes of memory this process can still take: the system's ``MemAvailable`` or its
    cgroups' room, whichever is smaller; None if neither can be read."""
    known = [value for value in (_meminfo_available(), cgroup_available()) if value is not None]
    return min(known) if known else None


def cpu_vendor() -> str:
    """The processor's vendor as it names itself ("GenuineIntel", "AuthenticAMD"...), or ""
    when it does not say (read from /proc/cpuinfo, else from the platform's description)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    described = platform.processor()
    for vendor in ("GenuineIntel", "AuthenticAMD"):
        if vendor in described:
            return vendor
    return ""


def mkl_is_fast_here() -> bool:
    """Whether Intel MKL is the faster BLAS on this processor: on Intel's, yes; elsewhere its
    products take its generic code paths (measured on an AMD EPYC Zen 5: 1.3 to 3.4 times
    OpenBLAS's time), so ``blas="auto"`` leaves them to numpy's BLAS."""
    return cpu_vendor() == "GenuineIntel"
