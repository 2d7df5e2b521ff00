/**
 * postgres.js's connection queue as scripts/patch-postgres.mjs leaves it (fix 3). With every
 * connection of the pool busy, each query takes a busy connection from the front and puts it
 * back: the unpatched queue kept a dead slot per query, for as long as the load lasted, and
 * scanned them all on every move.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

// The ES module the server loads (postgres.js does not export its internals by name).
const driverDir = path.resolve(path.dirname(createRequire(import.meta.url).resolve('postgres')), '../..');
const { default: Queue } = (await import(pathToFileURL(path.join(driverDir, 'src', 'queue.js')).href)) as { default: unknown };

interface Q<T> {
  readonly length: number;
  push(x: T): T;
  shift(): T | undefined;
  remove(x: T): T | null;
}
const queue = <T>(initial: T[] = []): Q<T> => (Queue as (i: T[]) => Q<T>)(initial);

describe("postgres.js's connection queue", () => {
  it('is first in, first out, and removes from anywhere', () => {
    const q = queue<string>(['a', 'b', 'c']);
    q.push('d');
    expect(q.shift()).toBe('a');
    expect(q.remove('c')).toBe('c');
    expect(q.remove('a')).toBeNull();
    expect(q.length).toBe(2);
    expect([q.shift(), q.shift(), q.shift()]).toEqual(['b', 'd', undefined]);
    expect(q.length).toBe(0);
  });

  it('keeps no more than a few dead slots under sustained load, and keeps its order', () => {
    // The queue copies its initial array with slice(), which keeps the subclass: this one notes
    // the longest the queue's array gets (the unpatched queue: one slot per query).
    let longest = 0;
    class Watched<T> extends Array<T> {
      override push(...items: T[]): number {
        longest = Math.max(longest, super.push(...items));
        return this.length;
      }
    }
    const connections = Array.from({ length: 10 }, (_, i) => ({ i }));
    const busy = queue(Watched.from(connections));
    const served: number[] = [];
    for (let n = 0; n < 20_000; n++) {
      // The pool's go(busy.shift(), query) followed by move(c, busy).
      const c = busy.shift()!;
      served.push(c.i);
      busy.remove(c);
      busy.push(c);
      // Now and then a connection finishes and moves to the open queue, and comes back.
      if (n % 1000 === 999) busy.push(busy.remove(connections[n % 10]!)!);
    }
    expect(busy.length).toBe(10);
    expect(longest).toBeLessThan(100);
    expect(served.slice(0, 12)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    expect(new Set(served.slice(-10)).size).toBe(10);
  });
});
