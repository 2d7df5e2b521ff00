/**
 * How busy the whole machine was during a measured run, from /proc/stat: what the server,
 * PostgreSQL and the load generator used together, and what the hypervisor took (steal). A run
 * with high steal was measured on a host busy with someone else's work; its throughput says
 * little, while its CPU per request still says what a request costs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

export interface MachineLoad {
  /** CPU used by everything on the machine, in % of one core (200 is two cores full). */
  busyPercent: number;
  /** CPU time the hypervisor gave to other guests while ours wanted it, in % of one core. */
  stealPercent: number;
}

function totals(): number[] | undefined {
  try {
    // cpu  user nice system idle iowait irq softirq steal ...
    return readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1, 9).map(Number);
  } catch {
    return undefined;
  }
}

/** Starts measuring; the function returned gives the load since then (zeros where /proc is missing). */
export function measureMachine(): () => MachineLoad {
  const before = totals();
  return () => {
    const after = totals();
    if (!before || !after) return { busyPercent: 0, stealPercent: 0 };
    const d = after.map((v, i) => v - (before[i] ?? 0));
    // Idle and iowait (fields 4 and 5) count only in the total.
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = d;
    const total = d.reduce((a, b) => a + b, 0);
    if (total <= 0) return { busyPercent: 0, stealPercent: 0 };
    const allCores = os.cpus().length * 100;
    return {
      busyPercent: Math.round(((user + nice + system + irq + softirq) / total) * allCores),
      stealPercent: Math.round((steal / total) * allCores),
    };
  };
}

// utime and stime (fields 14 and 15 of /proc/<pid>/stat) are in clock ticks, 100 per second on Linux.
const TICK_MS = 10;

/** The CPU time one process has used, in ms (0 where /proc is missing or the process is gone). */
export function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; the fields after its closing parenthesis are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/** The CPU time each of this machine's PostgreSQL processes (backends, WAL writer, checkpointer, …) has used, in ms, by pid. */
function databaseProcesses(): Map<number, number> {
  const used = new Map<number, number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return used;
  }
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') used.set(Number(pid), cpuOf(Number(pid)));
    } catch {
      // gone since the listing
    }
  }
  return used;
}

/**
 * Starts measuring the database server's side of a run: the function returned gives the CPU time
 * (ms) this machine's PostgreSQL processes have used since — 0 with the embedded database (it
 * runs in the server's process) or a database on another machine. A process started since counts
 * whole; one that exits before the end takes its time with it (the server's pool keeps its
 * connections open), so the figure never runs backwards.
 */
export function measureDatabase(): () => number {
  const before = databaseProcesses();
  return () => {
    let total = 0;
    for (const [pid, used] of databaseProcesses()) total += used - (before.get(pid) ?? 0);
    return total;
  };
}
