"""What machine this is and how much of it the run may use: `--max-parallel auto` and the
admission check both read it here, so a run's limit and its memory check agree.

Inside a container the host's CPU count and free memory say nothing about what the container may
use, so the process's own cgroup is read (v2 `cpu.max` / `memory.max`, v1 `cpu.cfs_quota_us` /
`memory.limit_in_bytes`), up through its parents as the kernel applies them. Every file is read
under `root` ("/" on a real machine), so another tree can stand in for `/proc` and `/sys`.

Standard library and psutil only: the CLI imports this before it parses arguments.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.errors import InputError

MEMORY_PER_AGENT = int(1.5 * 2**30)  # node + git + the task's tests
AGENTS_PER_CPU = 2  # agents mostly wait on the network
PARALLEL_CAP = 16
# Past this a "limit" means none: cgroup v1 writes 2**63 rounded down to a page for "no limit".
NO_LIMIT_ABOVE = 2**60

MachineKind = Literal["container", "vm", "bare metal", "unknown"]
Bound = Literal["cpu", "memory", "cap"]

CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")
CONTAINER_CGROUP_HINTS = ("docker", "kubepods", "containerd", "lxc", "libpod", "podman", "garden", "crio")
VM_VENDOR_HINTS = ("kvm", "qemu", "vmware", "virtualbox", "xen", "virtual machine", "hyper-v", "bochs",
                   "parallels", "bhyve", "amazon ec2", "google compute engine", "openstack", "cloud hypervisor",
                   "firecracker", "digitalocean", "hetzner vserver")


@dataclass(frozen=True)
class Machine:
    """What `--max-parallel auto` saw and decided."""

    kind: MachineKind
    evidence: str  # what told the kind, e.g. "/.dockerenv"; "" when nothing did
    cpus: float  # CPUs this process may use
    cpu_source: str  # "affinity", "cgroup cpu.max" or "cgroup cpu.cfs_quota_us"
    memory_limit: int | None  # bytes the cgroup may use; None when no cgroup limits it
    memory_available: int  # bytes: the host's available memory, or less under the cgroup limit
    parallel: int  # the resulting --max-parallel
    bound: Bound  # which bound decided it

    def describe(self) -> str:
        """`container, 2 CPUs by cgroup cpu.max, 3.5 GiB memory limit; bound by cpu`."""
        cpus = f"{self.cpus:g} CPU{'' if self.cpus == 1 else 's'} by {self.cpu_source}"
        memory = (f"{_gib(self.memory_limit)} memory limit" if self.memory_limit is not None
                  else f"{_gib(self.memory_available)} memory available")
        return f"{self.kind}, {cpus}, {memory}; bound by {self.bound}"


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def detect(root: str | os.PathLike[str] = "/") -> Machine:
    """The machine under `root` and the `--max-parallel auto` limit it allows."""
    base = Path(root)
    groups = _own_cgroups(base)
    kind, evidence = _kind(base, groups)
    cpus, cpu_source = _cpus(base, groups)
    limit, available = _memory(base, groups)
    by_cpu = max(1, math.floor(cpus * AGENTS_PER_CPU))
    by_memory = max(1, available // MEMORY_PER_AGENT)
    parallel = min(by_cpu, by_memory, PARALLEL_CAP)
    bound: Bound = "cpu" if parallel == by_cpu else "memory" if parallel == by_memory else "cap"
    return Machine(kind=kind, evidence=evidence, cpus=cpus, cpu_source=cpu_source, memory_limit=limit,
                   memory_available=available, parallel=parallel, bound=bound)


def auto_parallel(root: str | os.PathLike[str] = "/") -> int:
    """A limit from the hardware: two agents per CPU, no more than memory holds at ~1.5 GB each,
    never more than 16."""
    return detect(root).parallel


def resolve_max_parallel(value: str, root: str | os.PathLike[str] = "/") -> tuple[int, Machine | None]:
    """`--max-parallel` as a number, with what was detected when it was `auto`."""
    if value.strip().lower() == "auto":
        machine = detect(root)
        return machine.parallel, machine
    try:
        number = int(value)
    except ValueError:
        raise InputError(f"--max-parallel: {value!r} is not a number or 'auto'") from None
    if number < 1:
        raise InputError(f"--max-parallel must be at least 1 (got {number})")
    return number, None


def parse_max_parallel(value: str, root: str | os.PathLike[str] = "/") -> int:
    return resolve_max_parallel(value, root)[0]


def memory_available(root: str | os.PathLike[str] = "/") -> int:
    """Bytes a new agent can still get: the host's available memory, or less under a cgroup limit."""
    base = Path(root)
    return _memory(base, _own_cgroups(base))[1]


# -- cgroups ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Cgroup:
    """One cgroup hierarchy this process is in: the v2 one, or a v1 one with its controllers."""

    version: int
    controllers: frozenset[str]
    directory: Path  # the process's own cgroup directory
    top: Path  # the hierarchy's mount point: parents above it are not visible


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _own_cgroups(base: Path) -> list[_Cgroup]:
    """The cgroup directories of this process, from /proc/self/cgroup and the mount table."""
    text = _read(base / "proc/self/cgroup")
    if text is None:
        return []
    mounts = _cgroup_mounts(base)
    groups = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, names, path = parts
        controllers = frozenset(n for n in names.split(",") if n)
        version = 2 if hierarchy == "0" and not controllers else 1
        found = [(mount_root, point) for options, mount_root, point in mounts
                 if (version == 2) == (options is None) and (options is None or controllers <= options)]
        if not mounts:
            found = [("/", point) for point in _default_mounts(base, version, names)]
        if found:
            mount_root, point = found[0]
            groups.append(_Cgroup(version, controllers, _inside(point, mount_root, path), point))
    return groups


def _cgroup_mounts(base: Path) -> list[tuple[frozenset[str] | None, str, Path]]:
    """(v1 mount options or None for v2, root inside the hierarchy, mount point) from mountinfo."""
    mounts: list[tuple[frozenset[str] | None, str, Path]] = []
    for line in (_read(base / "proc/self/mountinfo") or "").splitlines():
        fields, _, tail = line.partition(" - ")
        before, after = fields.split(), tail.split()
        if len(before) < 5 or len(after) < 3 or after[0] not in ("cgroup", "cgroup2"):
            continue
        options = None if after[0] == "cgroup2" else frozenset(after[2].split(","))
        mounts.append((options, before[3], base / before[4].lstrip("/")))
    return mounts


def _default_mounts(base: Path, version: int, names: str) -> list[Path]:
    """Where cgroups are mounted when there is no mount table to say: systemd's layout."""
    cgroup = base / "sys/fs/cgroup"
    if version == 2:
        return [p for p in (cgroup, cgroup / "unified") if (p / "cgroup.controllers").exists()]
    return [p for p in (cgroup / names, *(cgroup / n for n in names.split(","))) if p.is_dir()]


def _inside(mount_point: Path, mount_root: str, path: str) -> Path:
    """The directory of cgroup `path` under a mount of the hierarchy's `mount_root`. A container
    without its own cgroup namespace sees its host path while its mount starts at its own cgroup."""
    relative = path
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root.rstrip("/") + "/")):
        relative = path[len(mount_root):]
    directory = mount_point / relative.lstrip("/")
    return directory if directory.is_dir() else mount_point


def _walk_up(group: _Cgroup) -> list[Path]:
    """The cgroup and its visible parents: a limit anywhere above applies too."""
    chain = [group.directory]
    while chain[-1] != group.top and group.top in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _for(groups: list[_Cgroup], controller: str) -> list[_Cgroup]:
    return [g for g in groups if g.version == 2 or controller in g.controllers]


# -- CPUs ----------------------------------------------------------------------------------------

def _cpus(base: Path, groups: list[_Cgroup]) -> tuple[float, str]:
    cpus, source = float(_affinity(base)), "affinity"
    for group in _for(groups, "cpu"):
        for directory in _walk_up(group):
            quota = _cpu_quota(directory, group.version)
            if quota is not None and quota < cpus:
                cpus = quota
                source = "cgroup cpu.max" if group.version == 2 else "cgroup cpu.cfs_quota_us"
    return cpus, source


def _affinity(base: Path) -> int:
    status = _read(base / "proc/self/status") or ""
    for line in status.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            count = _count_cpu_list(line.split(":", 1)[1])
            if count:
                return count
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _count_cpu_list(text: str) -> int:
    """`0-3,8,10-11` -> 7."""
    count = 0
    for part in text.strip().split(","):
        low, _, high = part.partition("-")
        try:
            count += int(high or low) - int(low) + 1
        except ValueError:
            return 0
    return count


def _cpu_quota(directory: Path, version: int) -> float | None:
    """CPUs a cgroup's CFS quota allows, or None without a quota."""
    if version == 2:
        text = _read(directory / "cpu.max")
        fields = text.split() if text else []
        if len(fields) != 2 or fields[0] == "max":
            return None
        quota, period = fields
    else:
        quota_text, period_text = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
        if quota_text is None or period_text is None:
            return None
        quota, period = quota_text.strip(), period_text.strip()
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


# -- memory --------------------------------------------------------------------------------------

def _memory(base: Path, groups: list[_Cgroup]) -> tuple[int | None, int]:
    """(the tightest cgroup memory limit, bytes available under every limit and on the host)."""
    available = _host_available(base)
    tightest: int | None = None
    for group in _for(groups, "memory"):
        for directory in _walk_up(group):
            limit, used = _memory_use(directory, group.version)
            if limit is None:
                continue
            tightest = limit if tightest is None else min(tightest, limit)
            available = min(available, max(0, limit - used))
    return tightest, available


def _memory_use(directory: Path, version: int) -> tuple[int | None, int]:
    """A cgroup's (limit, usage). Usage leaves out inactive page cache, which the kernel reclaims
    before it hits the limit (what `docker stats` and the kubelet count as in use)."""
    names = ("memory.max", "memory.current", "inactive_file") if version == 2 else \
        ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    limit = _number(_read(directory / names[0]))
    if limit is None or limit >= NO_LIMIT_ABOVE:
        return None, 0
    used = _number(_read(directory / names[1])) or 0
    inactive = _stat(_read(directory / "memory.stat"), names[2])
    return limit, max(0, used - inactive)


def _number(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None  # "max"


def _stat(text: str | None, key: str) -> int:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return _number(value) or 0
    return 0


def _host_available(base: Path) -> int:
    meminfo = _read(base / "proc/meminfo")
    for line in (meminfo or "").splitlines():
        if line.startswith("MemAvailable:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024
    import psutil  # where there is no /proc (macOS)

    return int(psutil.virtual_memory().available)


# -- kind ----------------------------------------------------------------------------------------

def _kind(base: Path, groups: list[_Cgroup]) -> tuple[MachineKind, str]:
    for marker in CONTAINER_MARKERS:
        if (base / marker.lstrip("/")).exists():
            return "container", marker
    if os.environ.get("container"):
        return "container", f"container={os.environ['container']}"
    init_groups = _read(base / "proc/1/cgroup") or ""
    for hint in CONTAINER_CGROUP_HINTS:
        if hint in init_groups:
            return "container", f"/proc/1/cgroup mentions {hint}"
    if _own_cgroup_namespace(base):
        return "container", "own cgroup namespace"
    dmi = base / "sys/class/dmi/id"
    for name in ("product_name", "sys_vendor"):
        text = (_read(dmi / name) or "").strip()
        if any(hint in text.lower() for hint in VM_VENDOR_HINTS):
            return "vm", f"{name} {text}"
    flags = _cpu_flags(base)
    if flags is not None and "hypervisor" in flags:
        return "vm", "cpu flag hypervisor"
    if flags is not None or (dmi / "product_name").exists():
        return "bare metal", "no container or hypervisor sign"
    return "unknown", ""


def _own_cgroup_namespace(base: Path) -> bool:
    """Both this process and PID 1 sit in the root of a cgroup v2 tree: what a cgroup namespace
    shows. On a host, systemd keeps itself in /init.scope and everything else in slices."""
    own = (_read(base / "proc/self/cgroup") or "").split()
    init = (_read(base / "proc/1/cgroup") or "").split()
    return own == ["0::/"] and init == ["0::/"]


def _cpu_flags(base: Path) -> set[str] | None:
    for line in (_read(base / "proc/cpuinfo") or "").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None
