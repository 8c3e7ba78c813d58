// Is a process still the one a state file names? Pids are reused, so a live pid only counts when
// its start time matches the `create_time` the orchestrator recorded (psutil's: boot time plus the
// process's start in clock ticks, from /proc on Linux).
import { readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux this runs on
const CREATE_TIME_TOLERANCE_SECONDS = 1;

export type PidCheck = (pid: number, createTime: number | null | undefined) => boolean;

export const isProcessAlive: PidCheck = (pid, createTime) => {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (createTime == null) return true;
  const started = linuxStartTime(pid);
  return started === null || Math.abs(started - createTime) <= CREATE_TIME_TOLERANCE_SECONDS;
};

/** Seconds since the epoch when `pid` started, or null where /proc cannot tell. */
function linuxStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[19]); // field 22 overall
    const bootLine = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('btime '));
    if (!bootLine || !Number.isFinite(startTicks)) return null;
    return Number(bootLine.split(' ')[1]) + startTicks / CLOCK_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}
