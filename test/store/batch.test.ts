/**
 * Group commit (src/store/batch.ts): what a caller of the audit trail and the DPoP replay check
 * relies on — its own answer, only once its write is done, in as few writes as the limit allows,
 * and a failure that reaches every caller it concerns without holding others back.
 */
import { describe, expect, it } from 'vitest';
import { Batcher } from '../../src/store/batch.js';

/** A write the test finishes by hand, recording each call's items. */
function manualWrite() {
  const calls: Array<{ items: number[]; done: (err?: Error) => void }> = [];
  const write = (items: number[]) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({ items, done: (err) => (err ? reject(err) : resolve(items.map((i) => `stored ${i}`))) });
    });
  return { calls, write };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('Batcher', () => {
  it('writes the items of one turn together and gives each caller its own result', async () => {
    const { calls, write } = manualWrite();
    const batcher = new Batcher(write);
    const results = [1, 2, 3].map((i) => batcher.add(i));
    await turn();
    expect(calls.map((c) => c.items)).toEqual([[1, 2, 3]]);
    calls[0]?.done();
    expect(await Promise.all(results)).toEqual(['stored 1', 'stored 2', 'stored 3']);
  });

  it('settles no caller before its write has finished', async () => {
    const { calls, write } = manualWrite();
    const batcher = new Batcher(write);
    let settled = false;
    const result = batcher.add(1).then(() => (settled = true));
    await turn();
    await turn();
    expect(settled).toBe(false);
    calls[0]?.done();
    await result;
    expect(settled).toBe(true);
  });

  it('without a limit, starts a write every turn', async () => {
    const { calls, write } = manualWrite();
    const batcher = new Batcher(write);
    void batcher.add(1);
    await turn();
    void batcher.add(2);
    await turn();
    expect(calls.map((c) => c.items)).toEqual([[1], [2]]);
  });

  it('with one write in flight, gathers everything added meanwhile into the next write', async () => {
    const { calls, write } = manualWrite();
    const batcher = new Batcher(write, { maxInFlight: 1 });
    const first = batcher.add(1);
    await turn();
    const later = [2, 3, 4].map((i) => batcher.add(i));
    await turn();
    const last = batcher.add(5);
    await turn();
    expect(calls.map((c) => c.items)).toEqual([[1]]);
    calls[0]?.done();
    expect(await first).toBe('stored 1');
    expect(calls.map((c) => c.items)).toEqual([[1], [2, 3, 4, 5]]);
    calls[1]?.done();
    expect(await Promise.all([...later, last])).toEqual(['stored 2', 'stored 3', 'stored 4', 'stored 5']);
  });

  it('splits what waits into writes of at most maxSize items', async () => {
    const { calls, write } = manualWrite();
    const batcher = new Batcher(write, { maxSize: 2, maxInFlight: 1 });
    const all = [1, 2, 3, 4, 5].map((i) => batcher.add(i));
    await turn();
    calls[0]?.done();
    await all[1];
    calls[1]?.done();
    await all[3];
    calls[2]?.done();
    expect(await Promise.all(all)).toEqual(['stored 1', 'stored 2', 'stored 3', 'stored 4', 'stored 5']);
    expect(calls.map((c) => c.items)).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('fails a failed write’s callers and those that waited for it, then writes again for new items', async () => {
    const { calls, write } = manualWrite();
    const batcher = new Batcher(write, { maxInFlight: 1 });
    const first = batcher.add(1);
    await turn();
    const waiting = batcher.add(2);
    await turn();
    calls[0]?.done(new Error('database unavailable'));
    await expect(first).rejects.toThrow('database unavailable');
    await expect(waiting).rejects.toThrow('database unavailable');
    expect(calls).toHaveLength(1);
    const next = batcher.add(3);
    await turn();
    calls[1]?.done();
    expect(await next).toBe('stored 3');
    expect(calls.map((c) => c.items)).toEqual([[1], [3]]);
  });

  it('without a limit, a failed write fails only its own callers', async () => {
    const { calls, write } = manualWrite();
    const batcher = new Batcher(write);
    const first = batcher.add(1);
    await turn();
    const second = batcher.add(2);
    await turn();
    calls[0]?.done(new Error('failed'));
    await expect(first).rejects.toThrow('failed');
    calls[1]?.done();
    expect(await second).toBe('stored 2');
  });
});
