/**
 * A Samplan server (or the ceiling) as a child process on loopback, as it runs in production
 * (`node dist/main.js`), with its memory sampled from /proc while a benchmark runs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpuOf } from './machine.js';

export interface Running {
  url: string;
  port: number;
  pid: number;
  /** Resident memory now, in MB. */
  rssMb(): number;
  /** CPU time the process has used so far (user + system), in ms. */
  cpuMs(): number;
  /** Starts sampling memory every `ms`; returns a function that stops and gives the peak and last sample. */
  sampleMemory(ms?: number): () => { peakMb: number; lastMb: number };
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL: a crash) and waits for the process to be gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** The last of what the process wrote to stdout and stderr. */
  output(): string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return Math.round(kb / 1024);
  } catch {
    return 0;
  }
}

async function waitUntilReady(url: string, child: ChildProcess, output: () => string, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`the process exited (${child.exitCode}) before it was ready:\n${output()}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`not ready after ${timeoutMs} ms:\n${output()}`);
}

/**
 * How `npm start` runs the server (package.json's start script): its Node options (e.g. the heap
 * limit that keeps its memory in bounds) and the environment it sets for the process (glibc's
 * malloc arenas), so that the benchmark and the reliability tests measure the server as it runs.
 */
export function productionCommand(): { args: string[]; env: Record<string, string> } {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } };
  return serverCommand(pkg.scripts.start);
}

/** The variables set for `node … dist/main.js` in a shell command (`A=1 node --x dist/main.js`), and its Node options. */
export function serverCommand(command: string): { args: string[]; env: Record<string, string> } {
  const [, assignments = '', flags = ''] = /((?:\b[A-Z_]+=\S+\s+)*)\bnode((?:\s+--\S+)*)\s+dist\/main\.js/.exec(command) ?? [];
  const env = Object.fromEntries(assignments.split(/\s+/).filter(Boolean).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
  return { args: flags.split(/\s+/).filter(Boolean), env };
}

/** Starts `node <script>` with `env`, waits for `readyPath` to answer 2xx. */
export async function startProcess(script: string, env: Record<string, string>, readyPath = '/readyz', args: string[] = []): Promise<Running> {
  const port = Number(env.PORT ?? (await freePort()));
  const child = spawn(process.execPath, [...args, script], {
    env: { ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(`${url}${readyPath}`, child, () => log);
  const pid = child.pid as number;
  return {
    url,
    port,
    pid,
    rssMb: () => rssOf(pid),
    cpuMs: () => cpuOf(pid),
    sampleMemory(ms = 250) {
      let peak = rssOf(pid);
      let last = peak;
      const timer = setInterval(() => {
        last = rssOf(pid);
        peak = Math.max(peak, last);
      }, ms);
      return () => {
        clearInterval(timer);
        last = rssOf(pid) || last;
        return { peakMb: Math.max(peak, last), lastMb: last };
      };
    },
    output: () => log,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill(signal);
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timeout = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timeout);
    },
  };
}
