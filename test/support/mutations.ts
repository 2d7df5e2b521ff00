/**
 * Mistakes a client makes in FHIR JSON, made at random (seeded, so that a failure can be
 * reproduced) in copies of valid resources: for holding a fast path against the slow, sure one.
 */
type Json = Record<string, unknown>;

/** A small seeded generator, so that a failure can be reproduced. */
export function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every object inside `value`, itself included. */
function objectsIn(value: unknown, out: Json[] = []): Json[] {
  if (Array.isArray(value)) for (const v of value) objectsIn(v, out);
  else if (value && typeof value === 'object') {
    out.push(value as Json);
    for (const v of Object.values(value)) objectsIn(v, out);
  }
  return out;
}

const REPLACEMENTS: unknown[] = [null, '', ' ', 0, -1, 1.5, 2, true, false, 'x  y', ' lead', 'a b', '2026-13-45', '2026-11-27T25:00:00Z', 'urn:uuid:nope', 'Patient/1', {}, [], [null], ['a'], [{}], { foo: 1 }, { reference: 'Observation/1' }, { reference: 'Basic?x=1' }, { reference: '#nowhere' }, { reference: 'http://other.example/fhir/Patient/1' }, { text: 'x' }, { value: 'x' }, { resourceType: 'Nope' }, { resourceType: 'Patient' }, '\u0001', '#', '#x', { url: 'http://x' }, [{ url: 'http://x', valueString: 'y' }], [{ resourceType: 'Practitioner', id: 'x' }]];

/** One mistake, somewhere in a copy of `resource`. */
export function mutate(resource: Json, rnd: () => number): Json {
  const copy = structuredClone(resource);
  const objects = objectsIn(copy);
  const target = objects[Math.floor(rnd() * objects.length)] as Json;
  const keys = Object.keys(target);
  const key = keys[Math.floor(rnd() * keys.length)];
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)] as T;
  const op = Math.floor(rnd() * 9);
  if (key === undefined || op === 0) target[pick(['foo', '_foo', 'resourceType', 'valueString', 'valueBoolean', 'valueFoo', 'value', 'extension', 'id', 'text', 'reference', '_reference', 'url', 'contained'])] = pick(REPLACEMENTS);
  else if (op === 1) delete target[key];
  else if (op === 2) target[`_${key}`] = pick([{ extension: [{ url: 'http://x', valueString: 'y' }] }, [null], {}, { id: 'a' }]);
  else if (op === 3) target[key] = Array.isArray(target[key]) ? (target[key] as unknown[])[0] : [target[key]];
  else if (op === 4) {
    // The same choice element twice, or with a type it does not have.
    const m = /^([a-z]+)([A-Z]\w*)$/.exec(key);
    target[m ? `${m[1]}${pick(['String', 'Boolean', 'Quantity', 'Foo', 'DateTime', 'Reference', 'Integer'])}` : `${key}X`] = target[key];
  } else if (op === 5 && Array.isArray(target[key])) (target[key] as unknown[]).push(pick(REPLACEMENTS));
  else if (op === 6) target[key] = typeof target[key] === 'string' ? `${target[key] as string}${pick([' ', '  x', '\t', 'Ø', '/x', '?', '#'])}` : pick(REPLACEMENTS);
  else target[key] = pick(REPLACEMENTS);
  return copy;
}

