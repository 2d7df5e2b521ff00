/** read, vread, create, update, delete, history: status codes, headers and versioning. */
import type { Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE, startTestServer, type TestServer } from '../support/app.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => t?.close());

const patient = (family = 'Nordmann'): Patient => ({ resourceType: 'Patient', name: [{ family, given: ['Kari'] }], gender: 'female' });

describe('create', () => {
  it('assigns an id, version 1, lastUpdated, and answers 201 with Location, ETag and Last-Modified', async () => {
    const res = await t.request<Patient>('POST', 'Patient', { body: patient() });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    expect(id).toMatch(/^[A-Za-z0-9\-.]{1,64}$/);
    expect(res.body.meta?.versionId).toBe('1');
    expect(Date.parse(res.body.meta?.lastUpdated as string)).toBeGreaterThan(Date.now() - 60_000);
    expect(res.headers.location).toBe(`${BASE}/Patient/${id}/_history/1`);
    expect(res.headers.etag).toBe('W/"1"');
    expect(new Date(res.headers['last-modified'] as string).getTime()).toBeGreaterThan(0);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
  });

  it('ignores an id in the body: the server assigns ids', async () => {
    const res = await t.request<Patient>('POST', 'Patient', { body: { ...patient(), id: 'client-chosen' } });
    expect(res.status).toBe(201);
    expect(res.body.id).not.toBe('client-chosen');
  });

  it('accepts application/json as well as application/fhir+json', async () => {
    const res = await t.request('POST', 'Patient', { body: patient(), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(201);
  });

  it('keeps client meta (tags, profiles) but replaces versionId and lastUpdated', async () => {
    const body = { ...patient(), meta: { versionId: '77', lastUpdated: '2001-01-01T00:00:00Z', tag: [{ system: 'urn:t', code: 'x' }] } };
    const res = await t.request<Patient>('POST', 'Patient', { body });
    expect(res.body.meta?.versionId).toBe('1');
    expect(res.body.meta?.lastUpdated).not.toBe('2001-01-01T00:00:00Z');
    expect(res.body.meta?.tag).toEqual([{ system: 'urn:t', code: 'x' }]);
  });

  it.each([
    ['minimal', undefined],
    ['representation', 'Patient'],
    ['OperationOutcome', 'OperationOutcome'],
  ])('honours Prefer: return=%s', async (prefer, resourceType) => {
    const res = await t.request<{ resourceType?: string }>('POST', 'Patient', { body: patient(), headers: { prefer: `return=${prefer}` } });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBeDefined();
    expect(res.body.resourceType).toBe(resourceType);
    if (prefer === 'minimal') expect(res.text).toBe('');
  });
});

describe('read and vread', () => {
  it('returns the stored resource exactly, with ETag and Last-Modified', async () => {
    const created = await t.create(patient('Lesbar'));
    const res = await t.request<Patient>('GET', `Patient/${created.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(created);
    expect(res.headers.etag).toBe('W/"1"');
    expect(res.headers['last-modified']).toBe(new Date(created.meta?.lastUpdated as string).toUTCString());
  });

  // On PostgreSQL the stored text travels as the bytes the database sent (never decoded and
  // encoded again), on PGlite as a string: every path must serve it unchanged either way.
  it('serves the stored text unchanged on every read path: read, vread, search, history, batch', async () => {
    const body = { ...patient('Ærø – Šťastný 🚶 "sitat" \\ 中文\u2028'), name: [{ family: 'Ærø – Šťastný 🚶 "sitat" \\ 中文\u2028', given: ['Åse'] }] };
    const created = await t.request<Patient>('POST', 'Patient', { body, headers: { prefer: 'return=representation' } });
    const stored = created.text;
    const id = created.body.id as string;
    const read = await t.request('GET', `Patient/${id}`);
    expect(read.text).toBe(stored);
    expect(Number(read.headers['content-length'])).toBe(Buffer.byteLength(stored));
    expect((await t.request('GET', `Patient/${id}/_history/1`)).text).toBe(stored);
    for (const path of [`Patient?_id=${id}`, `Patient/${id}/_history`]) {
      const bundle = await t.request<{ entry: Array<{ resource: Patient }> }>('GET', path);
      expect(bundle.text).toContain(`"resource":${stored}`);
      expect(bundle.body.entry[0]?.resource).toEqual(created.body);
    }
    const batch = await t.request<{ entry: Array<{ resource: Patient }> }>('POST', '', {
      body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `Patient/${id}` } }] },
    });
    expect(batch.text).toContain(`"resource":${stored}`);
    expect((await t.request('GET', `Patient/${id}?_pretty=true`)).body).toEqual(created.body);
    expect((await t.request<Patient>('GET', `Patient/${id}?_elements=name`)).body.name).toEqual(created.body.name);
  });

  // Answers of many statements share the driver's socket reads: each read must carry its own
  // resource's text, also when they run at the same time and one is still being sent.
  it('serves each of many concurrent reads its own stored text', async () => {
    const stored = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      const res = await t.request<Patient>('POST', 'Patient', { body: patient(`Samtidig ${i} – ${'æøå'.repeat(i * 40)}`), headers: { prefer: 'return=representation' } });
      stored.set(res.body.id as string, res.text);
    }
    const ids = [...stored.keys()];
    for (let round = 0; round < 5; round++) {
      const reads = await Promise.all(ids.flatMap((id) => [t.request('GET', `Patient/${id}`), t.request('GET', `Patient?_id=${id}`)]));
      reads.forEach((res, i) => {
        const text = stored.get(ids[Math.floor(i / 2)] as string) as string;
        if (i % 2 === 0) expect(res.text).toBe(text);
        else expect(res.text).toContain(`"resource":${text}`);
      });
    }
  });

  it('answers 404 with an OperationOutcome for an unknown id', async () => {
    const res = await t.request<{ resourceType: string; issue: Array<{ code: string }> }>('GET', 'Patient/does-not-exist');
    expect(res.status).toBe(404);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0]?.code).toBe('not-found');
  });

  it('answers 304 to If-None-Match with the current ETag and 200 to an older one', async () => {
    const created = await t.create(patient());
    expect((await t.request('GET', `Patient/${created.id}`, { headers: { 'if-none-match': 'W/"1"' } })).status).toBe(304);
    expect((await t.request('GET', `Patient/${created.id}`, { headers: { 'if-none-match': 'W/"2"' } })).status).toBe(200);
  });

  it('answers 304 to If-Modified-Since at or after the last change', async () => {
    const created = await t.create(patient());
    const later = new Date(Date.now() + 60_000).toUTCString();
    const earlier = new Date(Date.now() - 3_600_000).toUTCString();
    expect((await t.request('GET', `Patient/${created.id}`, { headers: { 'if-modified-since': later } })).status).toBe(304);
    expect((await t.request('GET', `Patient/${created.id}`, { headers: { 'if-modified-since': earlier } })).status).toBe(200);
  });

  it('reads every version with vread', async () => {
    const v1 = await t.create(patient('En'));
    await t.request('PUT', `Patient/${v1.id}`, { body: { ...v1, name: [{ family: 'To' }] } });
    const r1 = await t.request<Patient>('GET', `Patient/${v1.id}/_history/1`);
    const r2 = await t.request<Patient>('GET', `Patient/${v1.id}/_history/2`);
    expect(r1.body.name?.[0]?.family).toBe('En');
    expect(r2.body.name?.[0]?.family).toBe('To');
    expect(r2.headers.etag).toBe('W/"2"');
    expect((await t.request('GET', `Patient/${v1.id}/_history/3`)).status).toBe(404);
    expect((await t.request('GET', `Patient/${v1.id}/_history/abc`)).status).toBe(404);
  });

  it('supports _summary and _elements on read, marking the result SUBSETTED', async () => {
    const created = await t.create({ ...patient(), text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Kari</div>' } });
    const res = await t.request<Patient>('GET', `Patient/${created.id}?_elements=gender`);
    expect(res.body.gender).toBe('female');
    expect(res.body.name).toBeUndefined();
    expect(res.body.meta?.tag?.some((c) => c.code === 'SUBSETTED')).toBe(true);
    const text = await t.request<Patient>('GET', `Patient/${created.id}?_summary=text`);
    expect(text.body.text?.div).toContain('Kari');
    expect(text.body.gender).toBeUndefined();
  });
});

describe('update', () => {
  it('makes version 2 and answers 200 with the new ETag', async () => {
    const created = await t.create(patient());
    const res = await t.request<Patient>('PUT', `Patient/${created.id}`, { body: { ...created, gender: 'male' } });
    expect(res.status).toBe(200);
    expect(res.body.meta?.versionId).toBe('2');
    expect(res.headers.etag).toBe('W/"2"');
    expect(res.headers.location).toBe(`${BASE}/Patient/${created.id}/_history/2`);
    expect(Date.parse(res.body.meta?.lastUpdated as string)).toBeGreaterThan(Date.parse(created.meta?.lastUpdated as string));
  });

  it('creates with a client-chosen id (update as create) and answers 201', async () => {
    const res = await t.request<Patient>('PUT', 'Patient/client-id-1', { body: { ...patient(), id: 'client-id-1' } });
    expect(res.status).toBe(201);
    expect(res.body.meta?.versionId).toBe('1');
    expect((await t.request('GET', 'Patient/client-id-1')).status).toBe(200);
  });

  it('makes no new version when nothing changed', async () => {
    const created = await t.create(patient());
    const res = await t.request<Patient>('PUT', `Patient/${created.id}`, { body: { ...created } });
    expect(res.status).toBe(200);
    expect(res.body.meta?.versionId).toBe('1');
    expect(res.body.meta?.lastUpdated).toBe(created.meta?.lastUpdated);
    const hist = await t.request<{ total: number }>('GET', `Patient/${created.id}/_history`);
    expect(hist.body.total).toBe(1);
  });

  it('checks If-Match: the current version wins, a stale one gets 412', async () => {
    const created = await t.create(patient());
    const ok = await t.request('PUT', `Patient/${created.id}`, { body: { ...created, gender: 'male' }, headers: { 'if-match': 'W/"1"' } });
    expect(ok.status).toBe(200);
    const stale = await t.request<{ issue: Array<{ code: string; details: { coding: Array<{ code: string }> } }> }>(
      'PUT',
      `Patient/${created.id}`,
      { body: { ...created, gender: 'other' }, headers: { 'if-match': 'W/"1"' } },
    );
    expect(stale.status).toBe(412);
    expect(stale.body.issue[0]?.details.coding[0]?.code).toBe('VERSION_CONFLICT');
    expect((await t.request<Patient>('GET', `Patient/${created.id}`)).body.gender).toBe('male');
  });

  it('refuses an id mismatch between URL and body, and a missing id', async () => {
    const created = await t.create(patient());
    expect((await t.request('PUT', `Patient/${created.id}`, { body: { ...created, id: 'other' } })).status).toBe(400);
    const { id: _id, ...noId } = created;
    expect((await t.request('PUT', `Patient/${created.id}`, { body: noId })).status).toBe(400);
  });
});

describe('delete', () => {
  it('deletes logically: 204, then 410 Gone on read, history kept', async () => {
    const created = await t.create(patient());
    const del = await t.request('DELETE', `Patient/${created.id}`);
    expect(del.status).toBe(204);
    expect(del.headers.etag).toBe('W/"2"');
    const read = await t.request<{ issue: Array<{ code: string }> }>('GET', `Patient/${created.id}`);
    expect(read.status).toBe(410);
    expect(read.body.issue[0]?.code).toBe('deleted');
    expect((await t.request('GET', `Patient/${created.id}/_history/1`)).status).toBe(200);
    expect((await t.request('GET', `Patient/${created.id}/_history/2`)).status).toBe(410);
    const hist = await t.request<{ entry: Array<{ request: { method: string }; resource?: unknown }> }>('GET', `Patient/${created.id}/_history`);
    expect(hist.body.entry.map((e) => e.request.method)).toEqual(['DELETE', 'POST']);
    expect(hist.body.entry[0]?.resource).toBeUndefined();
  });

  it('is idempotent: deleting again or deleting what never existed succeeds without a new version', async () => {
    const created = await t.create(patient());
    await t.request('DELETE', `Patient/${created.id}`);
    expect((await t.request('DELETE', `Patient/${created.id}`)).status).toBe(204);
    expect((await t.request('DELETE', 'Patient/never-was')).status).toBe(204);
    const hist = await t.request<{ total: number }>('GET', `Patient/${created.id}/_history`);
    expect(hist.body.total).toBe(2);
  });

  it('honours If-Match on delete', async () => {
    const created = await t.create(patient());
    expect((await t.request('DELETE', `Patient/${created.id}`, { headers: { 'if-match': 'W/"5"' } })).status).toBe(412);
    expect((await t.request('DELETE', `Patient/${created.id}`, { headers: { 'if-match': 'W/"1"' } })).status).toBe(204);
  });

  it('lets a deleted resource come back with PUT, continuing its version numbers', async () => {
    const created = await t.create(patient());
    await t.request('DELETE', `Patient/${created.id}`);
    const res = await t.request<Patient>('PUT', `Patient/${created.id}`, { body: created });
    expect(res.status).toBe(201);
    expect(res.body.meta?.versionId).toBe('3');
  });

  it('removes deleted resources from search results', async () => {
    const created = await t.create(patient('Slettesen'));
    expect((await t.request<{ total: number }>('GET', 'Patient?family=Slettesen')).body.total).toBe(1);
    await t.request('DELETE', `Patient/${created.id}`);
    expect((await t.request<{ total: number }>('GET', 'Patient?family=Slettesen')).body.total).toBe(0);
  });
});

describe('history', () => {
  it('lists instance versions newest first, with request and response details', async () => {
    const created = await t.create(patient('Historikk'));
    await t.request('PUT', `Patient/${created.id}`, { body: { ...created, gender: 'male' } });
    await t.request('PUT', `Patient/${created.id}`, { body: { ...created, gender: 'other' } });
    const res = await t.request<{
      type: string;
      total: number;
      entry: Array<{ fullUrl: string; resource: Patient; request: { method: string; url: string }; response: { etag: string; status: string } }>;
    }>('GET', `Patient/${created.id}/_history`);
    expect(res.body.type).toBe('history');
    expect(res.body.total).toBe(3);
    expect(res.body.entry.map((e) => e.resource.meta?.versionId)).toEqual(['3', '2', '1']);
    expect(res.body.entry.map((e) => e.request.method)).toEqual(['PUT', 'PUT', 'POST']);
    expect(res.body.entry[0]?.response.etag).toBe('W/"3"');
    expect(res.body.entry[2]?.response.status).toBe('201 Created');
    expect(res.body.entry[0]?.fullUrl).toBe(`${BASE}/Patient/${created.id}`);
  });

  it('pages with _count and next links, and filters with _since', async () => {
    const created = await t.create(patient());
    for (const g of ['male', 'other', 'unknown', 'female']) {
      await t.request('PUT', `Patient/${created.id}`, { body: { ...created, gender: g } });
    }
    const first = await t.request<{ entry: Array<{ resource: Patient }>; link: Array<{ relation: string; url: string }> }>(
      'GET',
      `Patient/${created.id}/_history?_count=2`,
    );
    expect(first.body.entry.map((e) => e.resource.meta?.versionId)).toEqual(['5', '4']);
    const next = first.body.link.find((l) => l.relation === 'next')?.url as string;
    const second = await t.request<{ entry: Array<{ resource: Patient }>; link: Array<{ relation: string; url: string }> }>(
      'GET',
      next.replace(BASE, '/fhir'),
    );
    expect(second.body.entry.map((e) => e.resource.meta?.versionId)).toEqual(['3', '2']);
    const v3 = second.body.entry[0]?.resource.meta?.lastUpdated as string;
    const since = await t.request<{ entry: Array<{ resource: Patient }> }>(
      'GET',
      `Patient/${created.id}/_history?_since=${encodeURIComponent(v3)}`,
    );
    expect(since.body.entry.map((e) => e.resource.meta?.versionId)).toEqual(['5', '4', '3']);
    // A resource that is there has a history even when the page has no versions: 200, not 404.
    for (const query of ['_since=2999-01-01T00:00:00Z', '_count=0']) {
      const empty = await t.request<{ resourceType: string; entry?: unknown[] }>('GET', `Patient/${created.id}/_history?${query}`);
      expect(empty.status, query).toBe(200);
      expect(empty.body.entry ?? [], query).toEqual([]);
    }
    expect((await t.request('GET', `Patient/nope/_history?_count=0`)).status).toBe(404);
  });

  it('lists type and system history', async () => {
    const org = await t.create({ resourceType: 'Organization', name: 'Legekontoret' });
    const typeHistory = await t.request<{ entry: Array<{ resource: { id: string } }> }>('GET', 'Organization/_history');
    expect(typeHistory.body.entry.some((e) => e.resource.id === org.id)).toBe(true);
    const system = await t.request<{ entry: Array<{ resource: { id: string; resourceType: string } }> }>('GET', '_history?_count=5');
    expect(system.body.entry[0]?.resource.id).toBe(org.id);
    expect(system.body.entry.length).toBe(5);
  });

  it('answers 404 for the history of an unknown resource and 400 for a bad _since', async () => {
    expect((await t.request('GET', 'Patient/nope/_history')).status).toBe(404);
    expect((await t.request('GET', 'Patient/_history?_since=yesterday')).status).toBe(400);
  });
});
