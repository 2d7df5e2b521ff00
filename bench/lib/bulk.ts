/**
 * The bulk path of `npm run generate -- --bulk`: copies the demo patients (the models) straight
 * into a PostgreSQL database, many resources per SQL statement, for populations far too large to
 * load through the API in reasonable time (2.5 million resources).
 *
 * It writes exactly what the API would have stored for a copy of a model patient, so that search,
 * _include, the access rules and the plan Bundle work on the copies as on API-loaded patients:
 * - the models are the demo patients' resources as stored: their Patient and everything in their
 *   patient compartment (consents, relatives, plan, conditions, goals, measures, care team,
 *   check-ins, flags, tasks, provenance), plus the Provenance records outside any compartment that
 *   point at them (a Provenance keeps only its targets among the copied resources);
 * - each copy gets fresh ids (uuid), every reference between copied resources is rewritten to the
 *   new ids (versioned ones to `_history/1`), references to shared resources (Practitioner,
 *   Organization, PractitionerRole, …) stay as they are; the new Patient has the n-th synthetic
 *   fødselsnummer, name and birth date of `person(n)` (gender from the fødselsnummer);
 * - rows as the write pipeline makes them: version 1, lastUpdated now, the originals' meta.tag and
 *   meta.profile, content by `serialize`, index rows and compartments by `extractIndex`, a history
 *   row, and `published_version` 1 where the original is published (as `$publish` leaves it);
 *   stored by `ResourceStore.insertMany` (one statement per batch: versions, history rows, index
 *   rows), with each patient's time of last plan change (`plan_changes`, for the status check) in
 *   the same transaction.
 *
 * Validation is skipped: the copies are of validated resources, only ids and the national id (with
 * name, birth date and gender) change. To stay fast, each model's resources are extracted once per
 * batch with placeholder ids, and each copy's content and index rows are the placeholders' rows
 * with the new ids put in; the first copy of each model in every batch is checked against
 * `serialize` and `extractIndex` run on the copy itself, and the run stops if they differ. At start, the index
 * rows `extractIndex` computes for the models are checked (counted per table) against those the
 * server stored for them.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Identifier, Patient, Provenance, Resource } from '@medplum/fhirtypes';
import { serialize } from '../../src/fhir/writer.js';
import { recordPlanChanges } from '../../src/plan/status.js';
import { extractIndex, type IndexRows } from '../../src/search/extract.js';
import { spHash } from '../../src/search/registry.js';
import type { Database, Queryable } from '../../src/store/db.js';
import { inCompartments } from '../../src/store/compartments.js';
import { openPostgres } from '../../src/store/postgres.js';
import { INDEX_TABLE_NAMES, type NewResource, ResourceStore } from '../../src/store/resources.js';
import { FNR } from './api.js';
import { person } from './population.js';

/** A resource of a model patient, as stored. */
interface StoredModelResource {
  rid: number;
  type: string;
  id: string;
  version: number;
  content: string;
  published_version: number | null;
}

export interface BulkModel {
  nin: string;
  patientId: string;
  resources: StoredModelResource[];
}

/** Placeholder ids of a template: uuid-shaped, so ids parse and index exactly as real ones. */
const PREFIX = '00000000-0000-4000-8000-';
const PLACEHOLDER = /00000000-0000-4000-8000-([0-9a-f]{12})/g;
const placeholder = (k: number) => `${PREFIX}${k.toString(16).padStart(12, '0')}`;

/** The model patients (by fødselsnummer) and what belongs to them, from the database. */
export async function loadBulkModels(q: Queryable, nins: readonly string[], baseUrl: string): Promise<BulkModel[]> {
  const models: BulkModel[] = [];
  const sp = spHash('Patient.identifier');
  for (const nin of nins) {
    const [patient] = await q.query<{ id: string }>(
      `SELECT r.id FROM idx_token t JOIN resources r ON r.rid = t.rid WHERE t.sp = $1 AND t.code = $2 AND t.system = $3 AND r.type = 'Patient' AND NOT r.deleted`,
      [sp, nin, FNR],
    );
    if (!patient) throw new Error(`no patient with fødselsnummer ${nin}: seed the database with the demo data first (start the server on it once with SEED_DEMO_DATA=true)`);
    const columns = 'r.rid, r.type, r.id, r.version, r.content, r.published_version';
    const own = await q.query<StoredModelResource>(`SELECT ${columns} FROM resources r WHERE ${inCompartments(String.raw, 'r.compartments', 'ARRAY[$1]::text[]')} AND NOT r.deleted`, [`Patient/${patient.id}`]);
    // Records about the patient's resources that are in no compartment themselves (Provenance).
    const about = await q.query<StoredModelResource>(
      `SELECT DISTINCT ${columns} FROM idx_reference x JOIN resources r ON r.rid = x.rid
        WHERE (x.target_type, x.target_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND r.compartments = '{}' AND NOT r.deleted`,
      [own.map((r) => r.type), own.map((r) => r.id)],
    );
    const resources = [...own, ...about.filter((a) => !own.some((o) => o.rid === a.rid))];
    if (!resources.some((r) => r.type === 'CarePlan')) throw new Error(`the model patient ${nin} has no plan`);
    models.push({ nin, patientId: patient.id, resources });
  }
  await checkExtraction(q, models, baseUrl);
  return models;
}

/** extractIndex here must compute what the server stored for the models: row counts per table and resource. */
async function checkExtraction(q: Queryable, models: readonly BulkModel[], baseUrl: string): Promise<void> {
  const all = models.flatMap((m) => m.resources);
  const rids = all.map((r) => r.rid);
  const stored = new Map<string, number>();
  for (const table of INDEX_TABLE_NAMES) {
    for (const row of await q.query<{ rid: number; n: number }>(`SELECT rid, count(*)::int AS n FROM ${table} WHERE rid = ANY($1::int8[]) GROUP BY rid`, [rids])) {
      stored.set(`${table} ${row.rid}`, row.n);
    }
  }
  for (const r of all) {
    const resource = JSON.parse(r.content) as Resource;
    if (serialize(resource) !== r.content) throw new Error(`${r.type}/${r.id}: serialize does not reproduce the stored content`);
    const { rows } = extractIndex(resource, baseUrl);
    for (const table of INDEX_TABLE_NAMES) {
      const computed = (rows[table.replace(/^idx_/, '') as keyof IndexRows] as unknown[]).length;
      const have = stored.get(`${table} ${r.rid}`) ?? 0;
      if (computed !== have) throw new Error(`${r.type}/${r.id}: ${table} has ${have} rows, extractIndex computes ${computed} (another BASE_URL? pass --base-url)`);
    }
  }
}

/** References between copied resources, to the new ids (versioned ones to version 1); others stay. */
function retarget(value: unknown, ids: ReadonlyMap<string, string>): unknown {
  if (Array.isArray(value)) return value.map((v) => retarget(v, ids));
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const m = k === 'reference' && typeof v === 'string' ? /^([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/[^/]+)?$/.exec(v) : null;
    const to = m ? ids.get(`${m[1]}/${m[2]}`) : undefined;
    out[k] = m && to ? `${m[1]}/${to}${m[3] ? '/_history/1' : ''}` : retarget(v, ids);
  }
  return out;
}

/** A model resource made into a new version 1 with the ids in `ids`. */
function copyOf(model: StoredModelResource, ids: ReadonlyMap<string, string>, lastUpdated: string): Resource {
  const { id: _id, meta, ...rest } = JSON.parse(model.content) as Resource;
  const { versionId: _v, lastUpdated: _l, ...keep } = meta ?? {};
  const body = retarget(rest, ids) as Record<string, unknown>;
  if (model.type === 'Provenance') {
    // Only what was copied: the rest (other patients' resources) is not this patient's.
    body.target = ((body as unknown as Provenance).target ?? []).filter((t) => {
      const m = /^([A-Za-z]+)\/([^/]+)/.exec(t.reference ?? '');
      return m && [...ids.values()].includes(m[2] as string);
    });
  }
  return { ...body, id: ids.get(`${model.type}/${model.id}`), meta: { ...keep, versionId: '1', lastUpdated } } as Resource;
}

/** One copy of a model's resource, with placeholders for the ids: content and index rows to fill in. */
interface Template {
  type: string;
  content: string;
  index: IndexRows;
  compartments: string[];
  published: boolean;
}

interface Templates {
  model: BulkModel;
  resources: Template[];
  /** Position of the Patient in `resources`. */
  patient: number;
}

function templates(model: BulkModel, lastUpdated: string, baseUrl: string): Templates {
  const ids = new Map(model.resources.map((r, k) => [`${r.type}/${r.id}`, placeholder(k)]));
  const resources = model.resources.map((r): Template => {
    const copy = copyOf(r, ids, lastUpdated);
    const { rows, compartments } = extractIndex(copy, baseUrl);
    return { type: r.type, content: serialize(copy), index: rows, compartments, published: r.published_version !== null };
  });
  const dropped = resources.findIndex((t) => t.type === 'Provenance' && !(JSON.parse(t.content) as Provenance).target.length);
  if (dropped >= 0) throw new Error('a model Provenance has no target among the copied resources');
  return { model, resources, patient: model.resources.findIndex((r) => r.type === 'Patient' && r.id === model.patientId) };
}

const fill = (text: string, ids: readonly string[]) => (text.includes(PREFIX) ? text.replace(PLACEHOLDER, (_, k: string) => ids[parseInt(k, 16)] as string) : text);

function fillRows(rows: IndexRows, ids: readonly string[]): IndexRows {
  const out = {} as Record<string, unknown[][]>;
  for (const [key, list] of Object.entries(rows) as Array<[string, unknown[][]]>) {
    out[key] = list.map((row) => (row.some((v) => typeof v === 'string' && v.includes(PREFIX)) ? row.map((v) => (typeof v === 'string' ? fill(v, ids) : v)) : row));
  }
  return out as unknown as IndexRows;
}

/** The model's Patient as patient `n`: their fødselsnummer, name, birth date and gender. */
function newPatient(template: string, n: number): Patient {
  const p = person(n);
  const patient = JSON.parse(template) as Patient;
  const others = (patient.identifier ?? []).filter((i: Identifier) => i.system !== FNR);
  patient.identifier = [{ system: FNR, value: p.nin }, ...others];
  patient.name = [{ use: 'official', family: p.family, given: [p.given] }];
  patient.birthDate = p.birthDate;
  // The third digit of the individual number: odd for men, even for women.
  patient.gender = Number(p.nin[8]) % 2 ? 'male' : 'female';
  return patient;
}

/** Rows for patient `n`, copied from `t`; `check` also recomputes them the slow way and compares. */
function copyPatient(t: Templates, n: number, lastUpdated: string, baseUrl: string, check: boolean): NewResource[] {
  const ids = t.resources.map(() => crypto.randomUUID());
  return t.resources.map((r, k): NewResource => {
    let content: string;
    let index: IndexRows;
    let compartments: string[];
    if (k === t.patient) {
      const patient = newPatient(fill(r.content, ids), n);
      content = serialize(patient);
      ({ rows: index, compartments } = extractIndex(patient, baseUrl));
    } else {
      content = fill(r.content, ids);
      index = fillRows(r.index, ids);
      compartments = r.compartments.map((c) => fill(c, ids));
      if (check) {
        const resource = JSON.parse(content) as Resource;
        const direct = extractIndex(resource, baseUrl);
        if (serialize(resource) !== content || !isDeepStrictEqual(direct.rows, index) || !isDeepStrictEqual(direct.compartments, compartments)) {
          throw new Error(`the copy of ${r.type} (model ${t.model.nin}) differs from what serialize/extractIndex make of it`);
        }
      }
    }
    return { type: r.type, id: ids[k] as string, version: 1, lastUpdated, method: 'POST', content, compartments, index, publishedVersion: r.published ? 1 : null };
  });
}

export interface BulkCopyOptions {
  /** The models' fødselsnummer. */
  modelNins: readonly string[];
  from: number;
  to: number;
  /** Patients per statement. */
  batch: number;
  /** Statements in flight (connections). */
  concurrency: number;
  /** The server's BASE_URL (absolute references to it index as local ones). */
  baseUrl: string;
  /**
   * Drop the tables' secondary indexes (all but primary keys and unique constraints) before loading
   * and build them again from their definitions after: much faster for large loads (PostgreSQL's
   * "Populating a Database" advice), but searches scan tables until it is done — not while a
   * server serves the database.
   */
  rebuildIndexes?: boolean;
  /** Start no batch after this time (epoch ms): a load that must fit a time budget stops early (see `patients`). */
  stopAt?: number;
  onProgress?: (patients: number, resources: number, seconds: number) => void;
  log?: (line: string) => void;
}

export interface BulkOptions extends BulkCopyOptions {
  databaseUrl: string;
}

export interface BulkResult {
  patients: number;
  resources: number;
  /** Wall time of the whole load, with the index rebuild if any. */
  seconds: number;
  resourcesPerSecond: number;
  /** Of `seconds`, building the indexes again (with rebuildIndexes). */
  indexSeconds?: number;
}

const LOADED_TABLES = ['resources', 'resource_versions', ...INDEX_TABLE_NAMES];

/** Drops the secondary indexes of the tables the bulk path writes; returns their definitions. */
async function dropIndexes(q: Queryable): Promise<Array<{ name: string; def: string }>> {
  const indexes = await q.query<{ name: string; def: string }>(
    `SELECT i.indexname AS name, i.indexdef AS def FROM pg_indexes i
      WHERE i.schemaname = current_schema() AND i.tablename = ANY($1::text[])
        AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.connamespace = current_schema()::regnamespace)
      ORDER BY i.tablename, i.indexname`,
    [LOADED_TABLES],
  );
  for (const { name } of indexes) await q.query(`DROP INDEX IF EXISTS "${name}"`);
  return indexes;
}

/** Builds indexes again from their definitions, with room to sort in memory. */
async function createIndexes(db: Database, indexes: ReadonlyArray<{ name: string; def: string }>, log?: (line: string) => void): Promise<void> {
  for (const { name, def } of indexes) {
    const started = performance.now();
    await db.transaction(async (tx) => {
      await tx.query(`SET LOCAL maintenance_work_mem = '1GB'`);
      await tx.query(def.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX IF NOT EXISTS '));
    });
    log?.(`index ${name}: ${Math.round((performance.now() - started) / 100) / 10} s`);
  }
}

/** `bulkCopy` into the PostgreSQL database at `databaseUrl`, with a connection for each statement in flight. */
export async function bulkLoad(options: BulkOptions): Promise<BulkResult> {
  const db: Database = await openPostgres(options.databaseUrl, { max: options.concurrency, connectTimeout: 30 });
  try {
    return await bulkCopy(db, options);
  } finally {
    await db.close();
  }
}

/**
 * Copies the models into patients `from`..`to`-1 (round-robin over the models), `batch` patients
 * per statement, into `db` (either driver: the tests give the planner a population this way).
 */
export async function bulkCopy(db: Database, options: BulkCopyOptions): Promise<BulkResult> {
  const models = await loadBulkModels(db, options.modelNins, options.baseUrl);
  const sp = spHash('Patient.identifier');
  const clash = await db.query(`SELECT 1 FROM idx_token WHERE sp = $1 AND system = $2 AND code = ANY($3::text[]) LIMIT 1`, [
    sp,
    FNR,
    [person(options.from).nin, person(options.to - 1).nin],
  ]);
  if (clash.length) throw new Error(`patients ${options.from}..${options.to - 1} (or some of them) are there already: choose another --from`);
  const store = new ResourceStore();
  const started = performance.now();
  const dropped = options.rebuildIndexes ? await dropIndexes(db) : [];
  if (dropped.length) options.log?.(`dropped ${dropped.length} indexes; they are built again after the load`);
  let next = options.from;
  let patients = 0;
  let resources = 0;
  const loading = Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (next < options.to && Date.now() < (options.stopAt ?? Infinity)) {
        const first = next;
        const last = Math.min(options.to, first + options.batch);
        next = last;
        const lastUpdated = new Date().toISOString();
        const made = models.map((m) => templates(m, lastUpdated, options.baseUrl));
        const rows: NewResource[] = [];
        for (let n = first; n < last; n++) rows.push(...copyPatient(made[n % made.length] as Templates, n, lastUpdated, options.baseUrl, n - first < made.length));
        // With the patients' "last changed" for the status check, which the write pipeline keeps for the API's writes.
        const inserted = await db.transaction(async (tx) => {
          const n = await store.insertMany(tx, rows);
          await recordPlanChanges(tx, rows);
          return n;
        });
        if (inserted !== rows.length) throw new Error(`inserted ${inserted} of ${rows.length} resources`);
        patients += last - first;
        resources += inserted;
        options.onProgress?.(patients, resources, (performance.now() - started) / 1000);
      }
    }),
  );
  // Whatever happens to the load, the indexes come back.
  const indexStarted = await loading.then(
    () => performance.now(),
    async (err: unknown) => {
      await createIndexes(db, dropped, options.log);
      throw err;
    },
  );
  await createIndexes(db, dropped, options.log);
  // The planner's statistics for what was loaded, as autovacuum would give them a minute or so
  // later: until then a search may take the wrong index (docs/performance.md, night of 27 November).
  await db.query('ANALYZE');
  const seconds = (performance.now() - started) / 1000;
  const indexSeconds = (performance.now() - indexStarted) / 1000;
  return {
    patients,
    resources,
    seconds: Math.round(seconds * 10) / 10,
    resourcesPerSecond: Math.round(resources / seconds),
    ...(dropped.length ? { indexSeconds: Math.round(indexSeconds * 10) / 10 } : {}),
  };
}
