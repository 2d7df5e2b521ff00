/**
 * A Map that holds at most `max` entries, for the server's in-memory caches: setting a key makes it
 * the newest, and past `max` the oldest is forgotten (`onEvict` hears of it). A cache that wants
 * its most used entries kept sets them again when it uses them.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(
    private readonly max: number,
    private readonly onEvict?: (key: K, value: V) => void,
  ) {
    super();
  }

  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    if (this.size > this.max) {
      const [oldest, old] = super.entries().next().value as [K, V];
      super.delete(oldest);
      this.onEvict?.(oldest, old);
    }
    return this;
  }
}

/**
 * A number for each object, given on first sight: for the key of a cache entry that belongs to an
 * object (a verified token, a caller's read rule) without the cache keeping the object alive.
 */
export function numbering<T extends object>(): (object: T) => number {
  const numbers = new WeakMap<T, number>();
  let seen = 0;
  return (object) => {
    let n = numbers.get(object);
    if (n === undefined) numbers.set(object, (n = ++seen));
    return n;
  };
}
