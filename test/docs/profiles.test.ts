/**
 * The documentation of the information model and the profiles (docs/information-model.md,
 * docs/profiles/*.md) checked against the real server, so the docs cannot drift from the code:
 *
 * - every ```json block is a whole FHIR resource that `$validate` passes — with the Samplan profile
 *   it claims in meta.profile, given as the `profile` parameter — without errors or warnings
 *   (a Bundle as a whole and each of its entries); plan resources claim their profile;
 *   (fragments that are not resources are written as ```jsonc);
 * - the transaction Bundles are accepted by the server (plan rules included: identifiers,
 *   references, one active plan), and the resources shown alone on the pages are the same as
 *   those entries and as what the server stored;
 * - the check-in example, posted, makes exactly the Flag and Task the check-in page shows;
 * - every Samplan profile, code system and value set the server serves has its page, and the
 *   generated tables on the pages are what the served definitions say (test/docs/profile-tables.ts);
 * - every Samplan canonical URL the docs mention resolves on the server;
 * - relative links between the pages point at files and headings that exist.
 */
import { profileFor } from '../../src/plan/rules.js';
import type { Bundle, Observation, Resource } from '@medplum/fhirtypes';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_IN_CODE, SAMPLAN } from '../../src/plan/conventions.js';
import { conformanceResources } from '../../src/plan/profiles/index.js';
import { startTestServer, type TestServer } from '../support/app.js';
import { type ConformanceResource, DOCS, docFiles, generatedSections, PROFILE_DOCS, render } from './profile-tables.js';

const ROOT = resolve(DOCS, '..');
const INFORMATION_MODEL = join(DOCS, 'information-model.md');
const CHECK_IN_PAGE = join(PROFILE_DOCS, 'samplan-checkin.md');
const TERMINOLOGY_PAGE = join(PROFILE_DOCS, 'terminology.md');
const PROFILE_INDEX = join(PROFILE_DOCS, 'README.md');

interface Page {
  file: string;
  name: string;
  text: string;
}

interface Example {
  page: Page;
  line: number;
  /** `docs/…md:line ResourceType/id`, for test names and messages. */
  name: string;
  resource: Resource;
}

const pages: Page[] = docFiles().map((file) => ({ file, name: relative(ROOT, file), text: readFileSync(file, 'utf8') }));

function examplesOf(page: Page): Example[] {
  const out: Example[] = [];
  const fence = /^```json\n([\s\S]*?)^```$/gm;
  for (const m of page.text.matchAll(fence)) {
    const line = page.text.slice(0, m.index).split('\n').length;
    let resource: Resource;
    try {
      resource = JSON.parse(m[1] as string) as Resource;
    } catch (err) {
      throw new Error(`${page.name}:${line}: a json block that is not JSON (${String(err)}); write fragments as jsonc`);
    }
    const label = `${resource.resourceType}${resource.id ? `/${resource.id}` : ''}`;
    out.push({ page, line, name: `${page.name}:${line} ${label}`, resource });
  }
  return out;
}

const examples = pages.flatMap(examplesOf);
const transactions = examples.filter((e) => e.resource.resourceType === 'Bundle' && (e.resource as Bundle).type === 'transaction');
const entriesOf = (e: Example): Resource[] => ((e.resource as Bundle).entry ?? []).map((x) => x.resource as Resource);
const key = (r: Resource) => `${r.resourceType}/${r.id}`;

/** Every resource to validate: each example, and each entry of each Bundle example. */
const toValidate: Array<[string, Resource]> = examples.flatMap((e) => [
  [e.name, e.resource] as [string, Resource],
  ...(e.resource.resourceType === 'Bundle' ? entriesOf(e).map((r, i) => [`${e.name} entry ${i} ${key(r)}`, r] as [string, Resource]) : []),
]);


function isCheckIn(o: Observation): boolean {
  return o.code?.coding?.some((c) => c.system === CHECK_IN_CODE.system && c.code === CHECK_IN_CODE.code) ?? false;
}

/** The resource without what the server sets (id aside): version, time and tags. */
function content(r: Resource): Resource {
  const { meta, ...rest } = r;
  return (meta?.profile ? { ...rest, meta: { profile: meta.profile } } : rest) as Resource;
}

let t: TestServer;

beforeAll(async () => {
  t = await startTestServer();
});

afterAll(async () => {
  await t?.close();
});

describe('the examples', () => {
  it('exist on every page that has a profile, and in the information model', () => {
    const withExamples = new Set(examples.map((e) => e.page.file));
    for (const page of pages) {
      if (page.file === PROFILE_INDEX || page.file === TERMINOLOGY_PAGE) continue;
      expect(withExamples.has(page.file), `${page.name} has no json example`).toBe(true);
    }
    expect(transactions.some((e) => e.page.file === INFORMATION_MODEL), 'the information model has no complete plan').toBe(true);
  });

  it.each(toValidate)('%s claims the profile the server holds it to', (_name, resource) => {
    const profile = profileFor(resource);
    if (profile) expect(resource.meta?.profile ?? []).toContain(profile);
    for (const p of resource.meta?.profile ?? []) expect(conformanceResources.map((r) => r.url)).toContain(p);
  });

  it.each(toValidate)('%s passes $validate with no errors or warnings', async (_name, resource) => {
    const claimed = (resource.meta?.profile ?? []).find((p) => p.startsWith(`${SAMPLAN}/`));
    const body = claimed
      ? { resourceType: 'Parameters', parameter: [{ name: 'resource', resource }, { name: 'profile', valueUri: claimed }] }
      : resource;
    // `Parameters/$validate` cannot take a Parameters resource (its body would be read as the
    // operation's parameters), so a Parameters example is validated inside a collection Bundle.
    const [type, payload] =
      resource.resourceType === 'Parameters' ? ['Bundle', { resourceType: 'Bundle', type: 'collection', entry: [{ resource }] }] : [resource.resourceType, body];
    const res = await t.request('POST', `${type}/$validate`, { body: payload });
    expect(res.status, res.text).toBe(200);
    const problems = (res.body.issue as Array<{ severity: string }>).filter((i) => i.severity !== 'information');
    expect(problems, JSON.stringify(problems, null, 1)).toEqual([]);
  });
});

describe('stored on the server', () => {
  // In document order: the information model's complete plan first. The tests below build on it.
  it('the transaction Bundles are accepted', async () => {
    expect(transactions.length).toBeGreaterThan(0);
    for (const e of transactions) {
      const res = await t.request('POST', '', { body: e.resource });
      expect(res.status, `${e.name}: ${res.text}`).toBe(200);
      for (const entry of res.body.entry as Array<{ response: { status: string } }>) expect(entry.response.status).toMatch(/^20[01]/);
    }
  });

  it('each resource shown alone is the same as in the transaction and as stored', async () => {
    const inBundles = new Map(transactions.flatMap(entriesOf).map((r) => [key(r), r]));
    const alone = examples.filter((e) => e.resource.id && inBundles.has(key(e.resource)));
    expect(alone.length).toBeGreaterThan(5);
    for (const e of alone) {
      const entry = inBundles.get(key(e.resource)) as Resource;
      expect(content(e.resource), `${e.name} differs from the transaction's ${key(entry)}`).toEqual(content(entry));
      const stored = await t.request('GET', key(e.resource));
      expect(stored.status).toBe(200);
      expect(content(stored.body as Resource), `${e.name} differs from what the server stored`).toEqual(content(e.resource));
    }
  });

  it("every resource a plan example refers to is in a transaction (references don't dangle)", () => {
    const known = new Set(transactions.flatMap(entriesOf).map(key));
    for (const e of examples) {
      const inTransaction = transactions.includes(e);
      if (inTransaction || !['CarePlan', 'Condition', 'Goal', 'ServiceRequest', 'CareTeam', 'Observation', 'Flag'].includes(e.resource.resourceType)) continue;
      if (e.resource.id && !known.has(key(e.resource))) continue; // a plan of its own (validated only)
      for (const ref of JSON.stringify(e.resource).matchAll(/"reference":"([A-Za-z]+\/[A-Za-z0-9\-.]+)"/g)) {
        const target = ref[1] as string;
        if (target.startsWith('Observation/')) continue; // the check-in the Task follows up is made in the test
        expect(known.has(target), `${e.name} refers to ${target}, which no transaction example creates`).toBe(true);
      }
    }
  });

  it('the check-in example makes the Flag and Task the check-in page shows', async () => {
    const onPage = examples.filter((e) => e.page.file === CHECK_IN_PAGE);
    const checkIn = onPage.find((e) => e.resource.resourceType === 'Observation' && isCheckIn(e.resource as Observation) && !e.resource.id);
    const flag = onPage.find((e) => e.resource.resourceType === 'Flag')?.resource;
    const task = onPage.find((e) => e.resource.resourceType === 'Task')?.resource as Record<string, unknown> | undefined;
    expect(checkIn && flag && task, 'the check-in page shows a check-in (without id), a Flag and a Task').toBeTruthy();
    const subject = (checkIn?.resource as Observation).subject?.reference as string;

    const created = await t.request('POST', 'Observation', { body: checkIn?.resource });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;

    const flags = await t.request('GET', `Flag?subject=${subject}`);
    expect(flags.body.entry).toHaveLength(1);
    const made = flags.body.entry[0].resource as Resource;
    const { id: _f, meta: _fm, ...madeFlag } = made;
    expect(madeFlag).toEqual(flag);

    const tasks = await t.request('GET', `Task?focus=Observation/${id}`);
    expect(tasks.body.entry).toHaveLength(1);
    const { id: _t, meta: _tm, authoredOn, focus, ...madeTask } = tasks.body.entry[0].resource as Record<string, unknown>;
    expect(focus).toEqual({ reference: `Observation/${id}` });
    expect(typeof authoredOn).toBe('string');
    const { authoredOn: _a, focus: _fo, ...shownTask } = task as Record<string, unknown>;
    expect(madeTask).toEqual(shownTask);
  });
});

describe('the profiles the server serves', () => {
  const served = new Map<string, ConformanceResource>();

  beforeAll(async () => {
    for (const type of ['StructureDefinition', 'CodeSystem', 'ValueSet']) {
      const res = await t.request('GET', `${type}?url:below=${encodeURIComponent(`${SAMPLAN}/`)}&_count=100`);
      expect(res.status).toBe(200);
      for (const e of (res.body.entry ?? []) as Array<{ resource: ConformanceResource }>) served.set(e.resource.url as string, e.resource);
    }
  });

  it('are exactly the conformance resources Samplan defines', () => {
    expect([...served.keys()].sort()).toEqual(conformanceResources.map((r) => r.url as string).sort());
  });

  it('each have their page, listed in the profile index', () => {
    const index = readFileSync(PROFILE_INDEX, 'utf8');
    for (const [url, r] of served) {
      expect(index, `docs/profiles/README.md does not list ${url}`).toContain(url);
      const file = r.resourceType === 'StructureDefinition' ? join(PROFILE_DOCS, `${r.id}.md`) : TERMINOLOGY_PAGE;
      expect(existsSync(file), `${url} has no page ${relative(ROOT, file)}`).toBe(true);
      expect(readFileSync(file, 'utf8'), `${relative(ROOT, file)} does not name ${url}`).toContain(url);
      if (r.resourceType === 'StructureDefinition') expect(index).toContain(`(${r.id}.md)`);
    }
  });

  it('each have their generated tables on their page', () => {
    const sections = pages.flatMap((p) => generatedSections(p.file, p.text));
    for (const [url, r] of served) {
      const kinds = sections.filter((s) => s.url === url).map((s) => s.kind).sort();
      const expected = r.resourceType !== 'StructureDefinition' ? ['concepts'] : (r as { type?: string }).type === 'Extension' ? ['extension'] : ['elements', 'invariants'];
      expect(kinds, `the tables of ${url}`).toEqual(expected);
    }
  });

  it('say what the generated tables on the pages say', () => {
    const sections = pages.flatMap((p) => generatedSections(p.file, p.text));
    expect(sections.length).toBeGreaterThan(10);
    for (const s of sections) {
      const resource = served.get(s.url);
      expect(resource, `${relative(ROOT, s.file)}: ${s.url} is not served`).toBeDefined();
      expect(s.content, `${relative(ROOT, s.file)}: the ${s.kind} table of ${s.url} is out of date; run npx tsx test/docs/profile-tables.ts --write`).toBe(
        render(s.kind, resource as ConformanceResource),
      );
    }
  });
});

describe('canonical URLs and links in the docs', () => {
  const TYPES = ['StructureDefinition', 'CodeSystem', 'ValueSet', 'PlanDefinition', 'ActivityDefinition', 'OperationDefinition', 'NamingSystem', 'SubscriptionTopic'];
  const pattern = new RegExp(`${SAMPLAN.replace(/[.]/g, '\\.')}/(${TYPES.join('|')})/([A-Za-z0-9][A-Za-z0-9\\-.]*[A-Za-z0-9])`, 'g');
  const mentioned = new Map<string, { type: string; pages: Set<string> }>();
  for (const p of pages) {
    for (const m of p.text.matchAll(pattern)) {
      const url = `${SAMPLAN}/${m[1]}/${m[2]}`;
      const entry = mentioned.get(url) ?? { type: m[1] as string, pages: new Set<string>() };
      entry.pages.add(p.name);
      mentioned.set(url, entry);
    }
  }

  it.each([...mentioned].map(([url, m]) => [url, m] as const))('%s resolves on the server', async (url, m) => {
    // An R4 NamingSystem has no canonical url: it is found by its unique id.
    const res = await t.request('GET', `${m.type}?${m.type === 'NamingSystem' ? 'value' : 'url'}=${encodeURIComponent(url)}&_summary=count`);
    expect(res.status).toBe(200);
    expect(res.body.total, `${url} (in ${[...m.pages].join(', ')}) is not served`).toBe(1);
  });

  /** GitHub's heading anchors. */
  const slug = (heading: string) =>
    heading
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
  const anchors = (file: string) =>
    new Set(
      readFileSync(file, 'utf8')
        .replace(/^```[\s\S]*?^```$/gm, '')
        .split('\n')
        .filter((l) => /^#{1,6} /.test(l))
        .map((l) => slug(l.replace(/^#+ /, ''))),
    );

  it.each(pages.map((p) => [p.name, p] as const))('the relative links of %s resolve', (_name, page) => {
    const text = page.text.replace(/^```[\s\S]*?^```$/gm, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1] as string;
      if (/^[a-z]+:/.test(link)) continue; // https:, mailto:
      const [path, anchor] = link.split('#', 2) as [string, string?];
      const target = path ? resolve(dirname(page.file), path) : page.file;
      expect(existsSync(target), `${page.name}: ${link} does not exist`).toBe(true);
      if (anchor && target.endsWith('.md')) expect(anchors(target).has(anchor), `${page.name}: no heading #${anchor} in ${relative(ROOT, target)}`).toBe(true);
    }
  });

  it('show a resource the same way wherever they show it', () => {
    const ids = examples.flatMap((e) => (e.resource.resourceType === 'Bundle' ? entriesOf(e) : [e.resource])).filter((r) => r.id);
    const byKey = new Map<string, Resource>();
    for (const r of ids) {
      const seen = byKey.get(key(r));
      if (seen) expect(isDeepStrictEqual(content(seen), content(r)), `${key(r)} is shown with different content`).toBe(true);
      byKey.set(key(r), r);
    }
  });
});
