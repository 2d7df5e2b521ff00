/**
 * docs/integration-guide.md is runnable, and this test runs it: a real Samplan (createApp, a fresh
 * test database, the embedded identity provider) listens on a free loopback port, and every
 * ```sh block of the guide runs, in order, in one bash session with `set -euo pipefail` — as a
 * reader would paste them into one terminal, so variables and functions carry from block to
 * block. Tokens come from `npm run -s token` through the real login and token endpoints.
 *
 * Conventions of the guide (stated in it too):
 * - ```sh blocks run; ```sh norun blocks are shown but not run (e.g. production settings);
 * - an ```output block right after a ```sh block lists lines its output must contain, in that
 *   order (other lines may come between); `…` in a line matches any text.
 *
 * The server runs with REQUIRE_DPOP_NONCE=true (and Bearer allowed, the default), so the guide's
 * DPoP example goes through the nonce challenge a production client meets.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { freePort } from '../idp/support.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const GUIDE = path.join(ROOT, 'docs/integration-guide.md');

export interface GuideBlock {
  /** 1-based number among the runnable blocks. */
  number: number;
  /** Line of the opening fence in the guide. */
  line: number;
  code: string;
  /** Lines the output must contain, in order (`…` matches anything). */
  expected?: string[];
}

/** The runnable ```sh blocks of a Markdown text, each with the ```output block that follows it. */
export function guideBlocks(markdown: string): GuideBlock[] {
  const lines = markdown.split('\n');
  const blocks: GuideBlock[] = [];
  let previous: { kind: 'sh' | 'other'; block?: GuideBlock } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})\s*(\S*)\s*(.*)$/.exec(lines[i] as string);
    if (!open) continue;
    const [, fence, lang, rest] = open as unknown as [string, string, string, string];
    const body: string[] = [];
    const start = i;
    for (i++; i < lines.length && !(lines[i] as string).startsWith(fence); i++) body.push(lines[i] as string);
    if (i >= lines.length) throw new Error(`the fenced block at line ${start + 1} is not closed`);
    if (lang === 'sh' && rest.trim() === '') {
      const block: GuideBlock = { number: blocks.length + 1, line: start + 1, code: body.join('\n') };
      blocks.push(block);
      previous = { kind: 'sh', block };
    } else if (lang === 'output') {
      if (previous?.kind !== 'sh' || !previous.block || previous.block.expected) {
        throw new Error(`the output block at line ${start + 1} does not follow a sh block`);
      }
      previous.block.expected = body.filter((l) => l.trim() !== '');
      previous = { kind: 'other' };
    } else if (lang === 'sh' && rest.trim() !== 'norun') {
      throw new Error(`line ${start + 1}: a sh block is either plain (run by the test) or "sh norun", not "sh ${rest.trim()}"`);
    } else previous = { kind: 'other' };
  }
  return blocks;
}

const pattern = (line: string) =>
  new RegExp(`^${line.trimEnd().split('…').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);

/** The expected lines not found in `output` in order, or [] when all are there. */
export function missingLines(expected: string[], output: string): string[] {
  const actual = output.split('\n').map((l) => l.trimEnd());
  let at = 0;
  for (const [k, line] of expected.entries()) {
    const re = pattern(line);
    while (at < actual.length && !re.test(actual[at] as string)) at++;
    if (at >= actual.length) return expected.slice(k);
    at++;
  }
  return [];
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Output of each block, by block number; absent for blocks that did not finish. */
  outputs: Map<number, string>;
  /** The block that started last (the one that failed, if the run failed). */
  last: number;
}

async function runGuide(blocks: GuideBlock[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Run> {
  const mark = `@@guide-${Math.random().toString(36).slice(2)}`;
  const script = [
    'set -euo pipefail',
    ...blocks.flatMap((b) => [`printf '\\n${mark} start ${b.number}\\n'`, b.code, `printf '\\n${mark} end ${b.number}\\n'`]),
  ].join('\n');
  // Its own process group, so whatever the guide starts in the background is stopped with it.
  const child: ChildProcess = spawn('bash', ['-c', script], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const killGroup = () => {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    stderr += `\n[test] the guide did not finish within ${timeoutMs} ms`;
    killGroup();
  }, timeoutMs);
  // When bash exits, stop what it left running (a receiver holding the pipes open), then read the rest.
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  killGroup();
  await closed;
  const outputs = new Map<number, string>();
  let last = 0;
  const re = new RegExp(`\\n?${mark} start (\\d+)\\n([\\s\\S]*?)\\n${mark} end \\1\\n`, 'g');
  for (const m of stdout.matchAll(re)) outputs.set(Number(m[1]), m[2] as string);
  for (const m of stdout.matchAll(new RegExp(`${mark} start (\\d+)`, 'g'))) last = Number(m[1]);
  return { code, stdout, stderr, outputs, last };
}

describe('docs/integration-guide.md', () => {
  const markdown = readFileSync(GUIDE, 'utf8');
  const blocks = guideBlocks(markdown);
  let database: TestDatabase;
  let app: App;
  let work: string;
  let run: Run;

  beforeAll(async () => {
    database = await openTestDatabase();
    const port = await freePort();
    const server = `http://127.0.0.1:${port}`;
    const config = loadConfig({
      PORT: String(port),
      HOST: '127.0.0.1',
      BASE_URL: `${server}/fhir`,
      DATA_DIR: database.dataDir,
      LOG_LEVEL: 'silent',
      REQUIRE_DPOP_NONCE: 'true',
    });
    app = await createApp(config, pino({ level: 'silent' }), { db: database.db });
    await app.server.listen({ port, host: '127.0.0.1' });
    work = mkdtempSync(path.join(os.tmpdir(), 'samplan-guide-'));
    run = await runGuide(blocks, { ...process.env, SERVER: server, DATA_DIR: database.dataDir, WORK: work }, 100_000);
  }, 150_000);

  afterAll(async () => {
    await app?.close();
    await database?.drop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('has runnable examples, and every output block follows one', () => {
    expect(blocks.length).toBeGreaterThan(20);
    expect(blocks.filter((b) => b.expected).length).toBeGreaterThan(15);
  });

  it('runs to the end without an error', () => {
    const failed = blocks.find((b) => b.number === run.last);
    const context = failed
      ? `block ${failed.number} (docs/integration-guide.md line ${failed.line}) failed with exit code ${run.code}:\n${failed.code}\n--- its output:\n${run.stdout.split(/@@guide-\S+ start \d+\n/).pop()}\n--- stderr (end):\n${run.stderr.slice(-3000)}`
      : run.stderr.slice(-3000);
    expect(run.code, context).toBe(0);
  });

  describe.each(blocks.map((b) => [`block ${b.number} (line ${b.line})`, b] as const))('%s', (_name, block) => {
    it('finishes and prints what the guide shows', () => {
      const output = run.outputs.get(block.number);
      expect(output, `block ${block.number} did not finish:\n${block.code}\n--- stderr (end):\n${run.stderr.slice(-2000)}`).toBeDefined();
      if (block.expected) {
        expect(missingLines(block.expected, output as string), `output of block ${block.number} (line ${block.line}):\n${output}`).toEqual([]);
      }
    });
  });
});

describe('the guide runner itself', () => {
  it('pairs sh blocks with the output block after them and skips norun blocks', () => {
    const md = ['# x', '```sh', 'echo a', '```', 'text', '```output', 'a', '```', '```sh norun', 'rm -rf /', '```', '```json', '{}', '```', '```sh', 'echo b', '```'].join('\n');
    expect(guideBlocks(md)).toEqual([
      { number: 1, line: 2, code: 'echo a', expected: ['a'] },
      { number: 2, line: 15, code: 'echo b' },
    ]);
    expect(() => guideBlocks('```json\n{}\n```\n```output\nx\n```')).toThrow(/does not follow/);
    expect(() => guideBlocks('```sh skip\nx\n```')).toThrow(/norun/);
  });

  it('matches expected lines in order, with … as a wildcard', () => {
    expect(missingLines(['201', '{"total":…}'], 'x\n201\ny\n{"total":3}\n')).toEqual([]);
    expect(missingLines(['{"total":…}', '201'], '201\n{"total":3}\n')).toEqual(['201']);
    expect(missingLines(['2.1'], '201\n')).toEqual(['2.1']);
  });
});
