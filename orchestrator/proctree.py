"""Process trees: who a recorded process is, what runs below it, and killing all of it.

A pid alone is not an identity: pids are reused, so a process is named by its pid and the create
time recorded when it started, and nothing is signalled unless both still match.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping

import psutil

CREATE_TIME_TOLERANCE = 0.05
"""Seconds two create times of one process may differ by (psutil derives them from clock ticks)."""


def create_time_of(pid: int) -> float | None:
    """The create time of `pid`, None when there is no such process (any more)."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_alive(pid: int, create_time: float) -> bool:
    """True when `pid` exists, is not a zombie, and is the process started at `create_time`, so a
    recycled pid is never mistaken for ours."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - create_time) <= CREATE_TIME_TOLERANCE
    except psutil.Error:
        return False


def wait_gone(pid: int, create_time: float, *, timeout: float) -> bool:
    """Wait until the process started at `create_time` has exited (up to `timeout` seconds);
    True when it is gone. Another process that reused the pid does not count as it."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > CREATE_TIME_TOLERANCE:
            return True
        proc.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        return not is_alive(pid, create_time)
    except psutil.Error:
        pass
    return True


def tree_processes(pid: int) -> list[psutil.Process]:
    """`pid` (first) and every process below it now, whatever process group or session each is
    in; empty when `pid` is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def descendants(pid: int) -> dict[int, float]:
    """The processes below `pid` now, pid -> create time; ones that exit while we look are left out."""
    found: dict[int, float] = {}
    for child in tree_processes(pid)[1:]:
        try:
            found[child.pid] = child.create_time()
        except psutil.Error:
            continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (gone ones count as 0)."""
    total = 0.0
    for proc in tree_processes(pid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system + getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
        except psutil.Error:
            continue
    return total


def signal_group(pgid: int, signum: int) -> bool:
    """Signal a whole process group; False when it is already gone (or no longer ours)."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_verified(pids: Mapping[int, float]) -> list[int]:
    """SIGKILL each pid whose create time still matches and wait (up to 2 s) until they are gone;
    returns the pids signalled."""
    procs: list[psutil.Process] = []
    for pid, created in pids.items():
        if not is_alive(pid, created):
            continue
        try:
            proc = psutil.Process(pid)
            proc.kill()
            procs.append(proc)
        except psutil.Error:
            continue
    # Not our children, so not ours to reap: a zombie counts as dead.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(is_alive(p.pid, pids[p.pid]) for p in procs):
        time.sleep(0.02)
    return [proc.pid for proc in procs]


def kill_tree_now(pid: int, create_time: float) -> list[int]:
    """SIGKILL `pid` and every process below it, whatever process group or session each one is
    in (agents and hooks run in sessions of their own). For the second Ctrl-C: no grace, and
    nothing signalled unless `pid` still has `create_time`. Returns the descendants it found, each
    of them signalled (through its group, or on its own by kill_verified)."""
    if not is_alive(pid, create_time):
        return []
    tree = descendants(pid)
    groups = set()
    for member in (pid, *tree):
        try:
            groups.add(os.getpgid(member))
        except ProcessLookupError:
            continue
    groups.discard(os.getpgrp())  # never our own
    # The root first, so it starts nothing new while its children go; then each group, which
    # also takes whatever a child forked after we looked.
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for group in groups:
        signal_group(group, signal.SIGKILL)
    # Those the group kill already ended are skipped here: which ones depends on timing, so the
    # answer is the tree as found, not what this last pass still had to signal.
    kill_verified(tree)
    return list(tree)
