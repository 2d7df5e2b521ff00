/** The bounded map behind the in-memory caches (tokens, principals, privacy settings, statements, page tokens), and the numbers their keys give objects. */
import { describe, expect, it } from 'vitest';
import { BoundedMap, numbering } from '../src/bounded-map.js';

describe('BoundedMap', () => {
  it('holds at most its limit, forgetting the oldest and saying so', () => {
    const evicted: Array<[string, number]> = [];
    const map = new BoundedMap<string, number>(3, (key, value) => evicted.push([key, value]));
    for (const [i, key] of ['a', 'b', 'c', 'd', 'e'].entries()) map.set(key, i);
    expect([...map]).toEqual([['c', 2], ['d', 3], ['e', 4]]);
    expect(evicted).toEqual([['a', 0], ['b', 1]]);
  });

  it('makes a key set again the newest, without forgetting anything for it', () => {
    const evicted: string[] = [];
    const map = new BoundedMap<string, number>(3, (key) => evicted.push(key));
    map.set('a', 1).set('b', 2).set('c', 3);
    map.set('a', 10);
    expect(evicted).toEqual([]);
    map.set('d', 4);
    expect([...map.keys()]).toEqual(['c', 'a', 'd']);
    expect(evicted).toEqual(['b']);
    expect(map.get('a')).toBe(10);
  });
});

describe('numbering', () => {
  it('gives each object its own number, the same every time it is asked', () => {
    const number = numbering<object>();
    const [a, b] = [{}, {}];
    expect(number(a)).toBe(1);
    expect(number(b)).toBe(2);
    expect(number(a)).toBe(1);
    // Equal content is not the same object: a token verified again is a new one.
    expect(number({})).toBe(3);
  });
});
