"""`--max-parallel auto` reads the machine it is on: fake /proc and /sys/fs/cgroup trees of real
files stand in for a container with cgroup v2 or v1 limits, nested cgroups, and no cgroups at all."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from orchestrator.cli.main import main
from orchestrator.config.machine import detect, memory_available, parse_max_parallel, resolve_max_parallel
from orchestrator.config.settings import cli_overrides, resolve_settings
from orchestrator.errors import InputError

GiB = 2**30
V1_NO_LIMIT = "9223372036854771712"  # what cgroup v1 shows for "no limit"


def build(root: Path, files: dict[str, str], *, cpus: int = 8, host_available: int = 16 * GiB,
          cpu_flags: str = "fpu sse2 avx") -> Path:
    """A machine under `root`: 8 CPUs, 16 GiB available, a non-virtualised CPU, plus `files`."""
    base = {
        "proc/self/status": f"Name:\tpython\nCpus_allowed_list:\t0-{cpus - 1}\n",
        "proc/meminfo": f"MemTotal: 33554432 kB\nMemAvailable: {host_available // 1024} kB\n",
        "proc/cpuinfo": f"processor\t: 0\nflags\t\t: {cpu_flags}\n",
    }
    for name, text in {**base, **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(autouse=True)
def _no_container_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("container", raising=False)


def v2(path: str = "/", **files: str) -> dict[str, str]:
    """A pure cgroup v2 machine with the process in `path`; `files` by cgroup-relative path."""
    tree = {"proc/self/cgroup": f"0::{path}\n", "sys/fs/cgroup/cgroup.controllers": "cpu memory\n"}
    tree.update({f"sys/fs/cgroup/{name}": text for name, text in files.items()})
    return tree


def test_v2_cpu_quota_decides(tmp_path: Path) -> None:
    root = build(tmp_path, v2(**{"cpu.max": "200000 100000\n", "memory.max": "max\n"}))
    machine = detect(root)
    assert (machine.cpus, machine.cpu_source) == (2.0, "cgroup cpu.max")
    assert machine.memory_limit is None and machine.memory_available == 16 * GiB
    assert (machine.parallel, machine.bound) == (4, "cpu")


def test_v2_max_means_no_quota(tmp_path: Path) -> None:
    root = build(tmp_path, v2(**{"cpu.max": "max 100000\n", "memory.max": "max\n"}))
    machine = detect(root)
    assert (machine.cpus, machine.cpu_source) == (8.0, "affinity")
    # 16 CPUs' worth of agents, but 16 GiB holds only 10 at 1.5 GiB each.
    assert (machine.parallel, machine.bound) == (10, "memory")


def test_v2_fractional_quota_and_memory_limit_below_host(tmp_path: Path) -> None:
    root = build(tmp_path, v2(**{"cpu.max": "150000 100000\n", "memory.max": str(4 * GiB),
                                 "memory.current": str(GiB), "memory.stat": f"anon 1\ninactive_file {GiB // 2}\n"}))
    machine = detect(root)
    assert machine.cpus == 1.5
    assert machine.memory_limit == 4 * GiB
    # Inactive page cache is reclaimable: in use is 0.5 GiB, so 3.5 GiB are left, room for 2 agents.
    assert machine.memory_available == 4 * GiB - GiB // 2
    assert (machine.parallel, machine.bound) == (2, "memory")
    assert memory_available(root) == machine.memory_available  # what the admission check counts


def test_memory_left_under_the_limit_is_capped_by_the_host(tmp_path: Path) -> None:
    root = build(tmp_path, v2(**{"memory.max": str(8 * GiB), "memory.current": "0"}), host_available=3 * GiB)
    machine = detect(root)
    assert machine.memory_limit == 8 * GiB
    assert machine.memory_available == 3 * GiB
    assert (machine.parallel, machine.bound) == (2, "memory")


def test_v1_quota_and_memory_limit(tmp_path: Path) -> None:
    group = "/docker/abc"
    root = build(tmp_path, {
        "proc/self/cgroup": f"5:memory:{group}\n4:cpu,cpuacct:{group}\n3:name=systemd:{group}\n",
        f"sys/fs/cgroup/cpu,cpuacct{group}/cpu.cfs_quota_us": "100000\n",
        f"sys/fs/cgroup/cpu,cpuacct{group}/cpu.cfs_period_us": "100000\n",
        f"sys/fs/cgroup/memory{group}/memory.limit_in_bytes": str(6 * GiB),
        f"sys/fs/cgroup/memory{group}/memory.usage_in_bytes": str(2 * GiB),
        f"sys/fs/cgroup/memory{group}/memory.stat": f"cache 5\ntotal_inactive_file {GiB}\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": V1_NO_LIMIT,
    })
    machine = detect(root)
    assert (machine.cpus, machine.cpu_source) == (1.0, "cgroup cpu.cfs_quota_us")
    assert (machine.memory_limit, machine.memory_available) == (6 * GiB, 5 * GiB)
    assert (machine.parallel, machine.bound) == (2, "cpu")


def test_v1_without_limits(tmp_path: Path) -> None:
    root = build(tmp_path, {
        "proc/self/cgroup": "5:memory:/\n4:cpu,cpuacct:/\n",
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": V1_NO_LIMIT,
        "sys/fs/cgroup/memory/memory.usage_in_bytes": str(30 * GiB),
    }, cpus=10, host_available=64 * GiB)
    machine = detect(root)
    assert (machine.cpus, machine.cpu_source, machine.memory_limit) == (10.0, "affinity", None)
    assert machine.memory_available == 64 * GiB
    assert (machine.parallel, machine.bound) == (16, "cap")


def test_nested_cgroup_limits_from_parents_apply(tmp_path: Path) -> None:
    root = build(tmp_path, v2("/outer/inner", **{
        "outer/cpu.max": "100000 100000\n",
        "outer/memory.max": str(3 * GiB),
        "outer/memory.current": str(GiB),
        "outer/inner/cpu.max": "max 100000\n",
        "outer/inner/memory.max": str(8 * GiB),
        "outer/inner/memory.current": str(GiB // 2),
        "sibling/cpu.max": "10000 100000\n",  # not an ancestor: does not apply
    }))
    machine = detect(root)
    assert machine.cpus == 1.0
    assert machine.memory_limit == 3 * GiB
    assert machine.memory_available == 2 * GiB
    assert (machine.parallel, machine.bound) == (1, "memory")


def test_mount_table_finds_a_container_cgroup_without_its_own_namespace(tmp_path: Path) -> None:
    # The process sees its host path, /docker/abc/job, while the mount starts at /docker/abc.
    root = build(tmp_path, {
        "proc/self/cgroup": "0::/docker/abc/job\n",
        "proc/self/mountinfo": "30 23 0:26 /docker/abc /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        "sys/fs/cgroup/cpu.max": "400000 100000\n",
        "sys/fs/cgroup/job/cpu.max": "300000 100000\n",
    })
    assert detect(root).cpus == 3.0


def test_mount_table_of_a_hybrid_host(tmp_path: Path) -> None:
    mountinfo = ("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                 "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
                 "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                 "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n")
    root = build(tmp_path, {
        "proc/self/cgroup": "4:memory:/job/7\n1:cpu:/\n0::/\n",
        "proc/self/mountinfo": mountinfo,
        "sys/fs/cgroup/unified/cgroup.procs": "",
        "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "200000\n",
        "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
        "sys/fs/cgroup/memory/job/7/memory.limit_in_bytes": str(5 * GiB),
        "sys/fs/cgroup/memory/job/7/memory.usage_in_bytes": "0",
    })
    machine = detect(root)
    assert (machine.cpus, machine.memory_limit) == (2.0, 5 * GiB)


def test_no_cgroup_at_all(tmp_path: Path) -> None:
    root = build(tmp_path, {}, cpus=2, host_available=16 * GiB)
    machine = detect(root)
    assert (machine.cpus, machine.cpu_source, machine.memory_limit) == (2.0, "affinity", None)
    assert machine.memory_available == 16 * GiB
    assert (machine.parallel, machine.bound) == (4, "cpu")


def test_memory_bound_never_goes_below_one(tmp_path: Path) -> None:
    root = build(tmp_path, v2(**{"memory.max": str(GiB), "memory.current": str(GiB)}))
    machine = detect(root)
    assert (machine.memory_available, machine.parallel, machine.bound) == (0, 1, "memory")


@pytest.mark.parametrize(
    ("files", "flags", "kind", "evidence"),
    [
        ({".dockerenv": ""}, "fpu", "container", "/.dockerenv"),
        ({"run/.containerenv": ""}, "fpu hypervisor", "container", "/run/.containerenv"),
        ({"proc/1/cgroup": "12:cpu:/kubepods/besteffort/pod1\n"}, "fpu", "container", "/proc/1/cgroup mentions kubepods"),
        ({"proc/self/cgroup": "0::/\n", "proc/1/cgroup": "0::/\n"}, "fpu", "container", "own cgroup namespace"),
        ({"proc/self/cgroup": "0::/user.slice\n", "proc/1/cgroup": "0::/init.scope\n"}, "fpu", "bare metal",
         "no container or hypervisor sign"),
        ({"sys/class/dmi/id/product_name": "KVM\n"}, "fpu", "vm", "product_name KVM"),
        ({"sys/class/dmi/id/sys_vendor": "QEMU\n"}, "fpu", "vm", "sys_vendor QEMU"),
        ({}, "fpu sse2 hypervisor", "vm", "cpu flag hypervisor"),
        ({"sys/class/dmi/id/product_name": "PowerEdge R740\n"}, "", "bare metal", "no container or hypervisor sign"),
    ],
)
def test_kind(tmp_path: Path, files: dict[str, str], flags: str, kind: str, evidence: str) -> None:
    root = build(tmp_path, files, cpu_flags=flags)
    if not flags:
        (root / "proc/cpuinfo").write_text("processor\t: 0\n")
    machine = detect(root)
    assert (machine.kind, machine.evidence) == (kind, evidence)


def test_kind_unknown_when_nothing_tells(tmp_path: Path) -> None:
    root = build(tmp_path, {})
    (root / "proc/cpuinfo").write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # arm64: no flags line
    assert detect(root).kind == "unknown"


def test_container_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("container", "podman")
    machine = detect(build(tmp_path, {}))
    assert (machine.kind, machine.evidence) == ("container", "container=podman")


def test_describe(tmp_path: Path) -> None:
    root = build(tmp_path, {".dockerenv": "", **v2(**{"cpu.max": "200000 100000\n", "memory.max": str(13 * GiB // 2)})})
    assert detect(root).describe() == "container, 2 CPUs by cgroup cpu.max, 6.5 GiB memory limit; bound by cpu"
    bare = build(tmp_path / "bare", {}, cpus=1, host_available=6 * GiB)
    assert detect(bare).describe() == "bare metal, 1 CPU by affinity, 6.0 GiB memory available; bound by cpu"


def test_parse_max_parallel_auto_reads_the_tree(tmp_path: Path) -> None:
    root = build(tmp_path, v2(**{"cpu.max": "50000 100000\n"}))
    assert parse_max_parallel("auto", root) == 1
    assert parse_max_parallel(" AUTO ", build(tmp_path / "big", {}, host_available=64 * GiB)) == 16
    number, machine = resolve_max_parallel("auto", root)
    assert machine is not None and (number, machine.cpus) == (1, 0.5)
    assert resolve_max_parallel("3", root) == (3, None)


@pytest.mark.parametrize(("value", "message"), [("0", r"must be at least 1 \(got 0\)"), ("many", "not a number or 'auto'")])
def test_parse_max_parallel_refuses(value: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_max_parallel(value)


def test_settings_detect_once_and_keep_it_with_the_number(tmp_path: Path) -> None:
    kwargs = resolve_settings(tmp_path, {"max_parallel": "auto"}, {}).config_kwargs()
    assert kwargs["machine"] is not None and kwargs["max_parallel"] == kwargs["machine"].parallel
    assert resolve_settings(tmp_path, {"max_parallel": "3"}, {}).config_kwargs()["machine"] is None
    # A resumed run given `--max-parallel 3` drops what an earlier `auto` detected.
    assert cli_overrides(tmp_path, {"max_parallel": "3"}) == {"max_parallel": 3, "machine": None}
    assert "machine" not in cli_overrides(tmp_path, {"retries": "1"})


@pytest.fixture
def repo(make_repo, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    repo: Path = make_repo({"README.md": "# r\n", "prompts/a.md": "# Task A\nDo it.\n"})
    monkeypatch.chdir(repo)
    return repo


def test_plan_says_what_auto_detected(repo: Path) -> None:
    result = CliRunner().invoke(main, ["run", "a", "--dry-run", "--max-parallel", "auto"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("Max parallel"))
    machine = detect()  # this machine: its kind, CPUs and limits do not change between the two looks
    assert line.startswith(f"Max parallel {machine.parallel} (auto: {machine.kind}, {machine.cpus:g} CPU")
    assert f"by {machine.cpu_source}" in line and line.endswith(f"; bound by {machine.bound})")


def test_plan_json_has_the_machine(repo: Path) -> None:
    # `plan` takes no --max-parallel flag but reads the setting from the environment or config file.
    result = CliRunner(env={"GADUGI_MAX_PARALLEL": "auto"}).invoke(main, ["plan", "a", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)["machine"]
    machine = detect()
    assert {k: got[k] for k in ("kind", "cpus", "cpu_source", "memory_limit", "parallel")} == {
        "kind": machine.kind, "cpus": machine.cpus, "cpu_source": machine.cpu_source,
        "memory_limit": machine.memory_limit, "parallel": machine.parallel}
    assert got["bound"] in ("cpu", "memory", "cap") and got["memory_available"] > 0


def test_plan_with_a_number_says_nothing_detected(repo: Path) -> None:
    text = CliRunner().invoke(main, ["run", "a", "--dry-run", "--max-parallel", "3"], catch_exceptions=False).output
    assert "Plan: 1 task(s)" in text
    assert "Max parallel" not in text
    data = json.loads(CliRunner().invoke(main, ["plan", "a", "--json"], catch_exceptions=False).output)
    assert data["machine"] is None

