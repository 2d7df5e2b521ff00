/** Bundles written as text (src/fhir/bundles.ts): stored resources spliced in, the rest valid JSON. */
import { describe, expect, it } from 'vitest';
import { bundleText, SEARCH_INCLUDE, SEARCH_MATCH } from '../../src/fhir/bundles.js';
import { type StoredText, textOf } from '../../src/store/db.js';

describe('bundleText', () => {
  // Stored text comes as strings (PGlite) or as the bytes PostgreSQL sent: the Bundle is the same JSON.
  it.each([
    ['strings', (t: string): StoredText => t, 'string'],
    ['bytes', (t: string): StoredText => Buffer.from(t), 'object'],
    ['strings and bytes', (t: string): StoredText => (t.includes('Patient') ? t : Buffer.from(t)), 'object'],
  ])('splices each resource in as stored (%s) and serialises the other members of an entry', (_, as, kind) => {
    const stored = '{"resourceType":"Goal","id":"g1","description":{"text":"Gå – hver dag 🚶"}}';
    const result = bundleText('searchset', {
      total: 1,
      link: [{ relation: 'self', url: 'http://x/fhir/Goal' }],
      entries: [
        { fullUrl: 'http://x/fhir/Goal/g1', resource: as(stored), extra: SEARCH_MATCH },
        { fullUrl: 'http://x/fhir/Patient/p"1', resource: as('{"resourceType":"Patient","id":"p1"}'), extra: SEARCH_INCLUDE },
        { resource: as('{"resourceType":"OperationOutcome"}'), extra: { search: { mode: 'outcome' }, note: undefined } },
        { extra: { response: { status: '204 No Content' } } },
        { fullUrl: 'urn:uuid:1' },
        {},
        { resource: as('{"resourceType":"Basic"}') },
      ],
    });
    // Bytes in, bytes out: nothing decoded.
    expect(typeof result).toBe(kind);
    const text = textOf(result);
    expect(text).toContain(`"resource":${stored}`);
    const bundle = JSON.parse(text);
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 1 });
    expect(bundle.entry).toEqual([
      { fullUrl: 'http://x/fhir/Goal/g1', resource: JSON.parse(stored), search: { mode: 'match' } },
      { fullUrl: 'http://x/fhir/Patient/p"1', resource: { resourceType: 'Patient', id: 'p1' }, search: { mode: 'include' } },
      { resource: { resourceType: 'OperationOutcome' }, search: { mode: 'outcome' } },
      { response: { status: '204 No Content' } },
      { fullUrl: 'urn:uuid:1' },
      {},
      { resource: { resourceType: 'Basic' } },
    ]);
  });

  it('has no entry member when there are no entries', () => {
    expect(JSON.parse(textOf(bundleText('history', { entries: [] })))).not.toHaveProperty('entry');
  });

  it('serialises a changed entry member afresh (only frozen ones are kept)', () => {
    const extra: Record<string, unknown> = { search: { mode: 'match' } };
    const first = JSON.parse(textOf(bundleText('searchset', { entries: [{ extra }] })));
    extra.search = { mode: 'include' };
    const second = JSON.parse(textOf(bundleText('searchset', { entries: [{ extra }] })));
    expect([first.entry[0].search.mode, second.entry[0].search.mode]).toEqual(['match', 'include']);
  });
});
