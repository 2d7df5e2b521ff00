/**
 * How busy the whole machine was during a measured run, from /proc/stat: what the server,
 * PostgreSQL and the load generator used together, and what the hypervisor took (steal). A run
 * with high steal was measured on a host busy with someone else's work; its throughput says
 * little, while its CPU per request still says what a request costs.
 */
import { readFileSync } from 'node:fs';
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
