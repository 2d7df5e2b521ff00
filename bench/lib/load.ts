/**
 * One load run with autocannon on loopback: a warm-up, then a fixed duration with N connections,
 * reporting throughput, latency percentiles (p50/p95/p99 from every response's time), errors and
 * non-2xx answers, the server's memory while it ran and its CPU time per request.
 */
import autocannon from 'autocannon';
import type { Running } from './server.js';
import { type MachineLoad, measureDatabase, measureMachine } from './machine.js';

export type LoadRequest = autocannon.Request;

export interface Scenario {
  name: string;
  /** Requests cycled through by each connection, each starting at its own place in the list. */
  requests: LoadRequest[];
  /**
   * Requests of the n-th connection of a run, when connections must not share state (autocannon
   * clears its per-connection context at every turn of the list, so state lives in these closures).
   */
  perConnection?: (n: number) => LoadRequest[];
  /** Runs before each run (warm-up and measured), e.g. to learn state the previous run changed. */
  prepare?: () => Promise<void>;
  /** Answers that count as success (default 2xx). */
  ok?: (status: number) => boolean;
}

export interface LoadOptions {
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
}

export interface LoadResult {
  scenario: string;
  requests: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  failures: number;
  /** Answers that were not a success, by status. */
  failedStatuses: Record<string, number>;
  peakMemoryMb: number;
  /**
   * Server CPU time per request in ms: what a request costs the server, independent of how busy
   * the machine is with the database and the load generator.
   */
  cpuPerRequestMs: number;
  /**
   * The local PostgreSQL server's CPU time per request in ms (all its processes: bench/lib/machine.ts),
   * 0 with the embedded database or a remote one.
   */
  databaseCpuPerRequestMs: number;
  /** The whole machine during the measured run (bench/lib/machine.ts). */
  machine: MachineLoad;
}

function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return 0;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round((sorted[Math.max(0, i)] as number) * 100) / 100;
}

const perRequest = (ms: number, requests: number) => (requests ? Math.round((ms / requests) * 1000) / 1000 : 0);

/** The list from its i-th request on, then its beginning: where one connection starts. */
function startingAt<T>(list: readonly T[], i: number): T[] {
  return [...list.slice(i), ...list.slice(0, i)];
}

async function fire(url: string, scenario: Scenario, connections: number, durationSeconds: number, record: boolean) {
  await scenario.prepare?.();
  const times: number[] = [];
  const failed: Record<string, number> = {};
  let connection = 0;
  const ok = scenario.ok ?? ((s: number) => s >= 200 && s < 300);
  const result = await autocannon({
    url,
    connections,
    duration: durationSeconds,
    requests: scenario.requests,
    timeout: 10,
    setupClient: (client) => {
      const n = connection++;
      if (scenario.perConnection) client.setRequests(scenario.perConnection(n));
      // Each connection starts at its own place in the list: all starting at the first request,
      // they went through it in step, so the mixed workload's 32 connections updated one Goal
      // at a time and waited on its row lock (16–19 ms per lock, 64–153 µs spread out).
      else client.setRequests(startingAt(scenario.requests, Math.floor((n * scenario.requests.length) / connections)));
      client.on('response', (status: number, _bytes: number, responseTime: number) => {
        if (!record) return;
        times.push(responseTime);
        if (!ok(status)) failed[status] = (failed[status] ?? 0) + 1;
      });
    },
  });
  return { result, times, failed };
}

export async function runLoad(server: Running, scenario: Scenario, options: LoadOptions): Promise<LoadResult> {
  if (options.warmupSeconds > 0) await fire(server.url, scenario, options.connections, options.warmupSeconds, false);
  const stopSampling = server.sampleMemory();
  const cpuBefore = server.cpuMs();
  const database = measureDatabase();
  const machine = measureMachine();
  const { result, times, failed } = await fire(server.url, scenario, options.connections, options.durationSeconds, true);
  const cpu = server.cpuMs() - cpuBefore;
  const databaseCpu = database();
  const machineLoad = machine();
  const memory = stopSampling();
  const sorted = Float64Array.from(times).sort();
  return {
    scenario: scenario.name,
    requests: times.length,
    rps: Math.round(times.length / options.durationSeconds),
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    errors: result.errors + result.timeouts,
    failures: Object.values(failed).reduce((a, b) => a + b, 0),
    failedStatuses: failed,
    peakMemoryMb: memory.peakMb,
    cpuPerRequestMs: perRequest(cpu, times.length),
    databaseCpuPerRequestMs: perRequest(databaseCpu, times.length),
    machine: machineLoad,
  };
}
