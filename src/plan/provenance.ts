/**
 * Who changed what, when and why. Every write by a person gets (1) `meta.tag`s naming the last
 * updater — user type, HPR number and name, role, point of care, legal entity — as NHN's pilot
 * API does, and (2) a Provenance resource in the same transaction: the versions written, the
 * activity, the agent and organisation, and the reason the client gave in the `X-Provenance`
 * header (FHIR's way of sending a Provenance with a write). One request is one act by one person
 * for one reason, so the versions a transaction writes share one Provenance per activity (create,
 * update, delete) with a target for each — written just before commit.
 */
import type { Coding, Meta, Provenance, Resource } from '@medplum/fhirtypes';
import { SYSTEM_ACCESS } from '../fhir/access.js';
import type { StoredWrite, WriteHook } from '../fhir/writer.js';
import { isObject } from '../fhir/validation/walk.js';
import type { Transaction } from '../store/db.js';
import { CODE_SYSTEM as NO } from '../no/codes.js';
import { OID } from '../no/identifiers.js';
import type { Principal } from '../security/principal.js';
import { LAST_UPDATED_BY, LAST_UPDATED_BY_PREFIX, USER_TYPE } from './conventions.js';

export { LAST_UPDATED_BY };

/** Writes that are records of other writes, not content. */
const NOT_RECORDED = new Set(['Provenance', 'AuditEvent', 'Subscription']);

function tagsFor(p: Principal): Coding[] {
  if (p.kind === 'personnel') {
    return [
      { system: LAST_UPDATED_BY.userType, ...USER_TYPE.personnel },
      { system: LAST_UPDATED_BY.hpr, code: p.hpr, ...(p.name ? { display: p.name } : {}) },
      { system: LAST_UPDATED_BY.role, code: p.role.code },
      { system: LAST_UPDATED_BY.organization, code: p.orgnrChild },
      { system: LAST_UPDATED_BY.legalEntity, code: p.orgnrParent },
    ];
  }
  if (p.kind === 'citizen') {
    const self = p.representation.basis === 'SEGSELV';
    return [
      { system: LAST_UPDATED_BY.userType, ...(self ? USER_TYPE.citizen : USER_TYPE.representative) },
      ...(p.name ? [{ system: LAST_UPDATED_BY.person, code: p.representation.basis, display: p.name }] : []),
    ];
  }
  return [];
}

const isOurTag = (t: Coding) => typeof t.system === 'string' && t.system.startsWith(LAST_UPDATED_BY_PREFIX);

/**
 * Whether `meta` is absent or an object whose `tag`, if any, is a list of objects. Hooks run
 * before validation: a malformed meta (a string, a `tag` that is not a list) is left as sent, for
 * the validator to refuse with a 400 — taking it apart here failed with a 500.
 */
function wellFormedMeta(meta: unknown): boolean {
  if (meta === undefined) return true;
  if (!isObject(meta)) return false;
  return meta.tag === undefined || (Array.isArray(meta.tag) && meta.tag.every(isObject));
}

/** The resource without the last-updated-by tags (they say who wrote it, not what it says). */
function withoutTags(resource: Resource): Resource {
  if (!wellFormedMeta(resource.meta)) return resource;
  const tags = resource.meta?.tag?.filter((t) => !isOurTag(t));
  if (!resource.meta?.tag || tags?.length === resource.meta.tag.length) return resource;
  const { tag: _tag, ...meta } = resource.meta;
  return { ...resource, meta: (tags?.length ? { ...meta, tag: tags } : meta) as Meta } as Resource;
}

const ACTIVITY: Record<StoredWrite['method'], string> = { POST: 'CREATE', PUT: 'UPDATE', PATCH: 'UPDATE', DELETE: 'DELETE' };

function provenanceFor(w: StoredWrite, p: Principal, targets: string[]): Provenance {
  const agent: Provenance['agent'] =
    p.kind === 'personnel'
      ? [
          {
            type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'author' }] },
            role: [{ coding: [{ system: NO.personnelCategory, code: p.role.code }] }],
            who: { identifier: { system: OID.hpr, value: p.hpr }, ...(p.name ? { display: p.name } : {}) },
            onBehalfOf: { identifier: { system: OID.orgnr, value: p.orgnrChild } },
          },
        ]
      : p.kind === 'citizen'
        ? [
            {
              type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'author' }] },
              who: { identifier: { system: OID.fnr, value: p.pid }, ...(p.name ? { display: p.name } : {}) },
            },
          ]
        : [{ who: { display: p.clientId } }];
  return {
    resourceType: 'Provenance',
    target: targets.map((reference) => ({ reference })),
    recorded: w.version.lastUpdated.toISOString(),
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: ACTIVITY[w.method] }] },
    ...(w.ctx.comment ? { reason: [{ text: w.ctx.comment }] } : {}),
    agent,
  };
}

const versionOf = (w: StoredWrite) => `${w.type}/${w.id}/_history/${w.version.version}`;

/** The transaction's pending Provenances, by activity, agent and reason: the first write (when) and every version's reference. */
const pending = new WeakMap<Transaction, Map<string, { first: StoredWrite; targets: string[] }>>();

export const provenance: WriteHook = {
  prepare(w) {
    const p = w.ctx.principal;
    if (!p || NOT_RECORDED.has(w.type)) return w.next;
    const tags = tagsFor(p);
    if (!tags.length || !wellFormedMeta(w.next.meta)) return w.next;
    const base = withoutTags(w.next);
    return { ...base, meta: { ...(base.meta ?? {}), tag: [...(base.meta?.tag ?? []), ...tags] } } as Resource;
  },
  comparable: withoutTags,
  async stored(w) {
    const p = w.ctx.principal;
    if (!p || NOT_RECORDED.has(w.type)) return;
    const record = (first: StoredWrite, targets: string[]) => first.writer.createRecord(first.q, { ...first.ctx, access: SYSTEM_ACCESS }, provenanceFor(first, p, targets));
    const tx = w.q as Partial<Transaction>;
    if (!tx.beforeCommit) return void (await record(w, [versionOf(w)]));
    let byActivity = pending.get(tx as Transaction);
    if (!byActivity) {
      const created = (byActivity = new Map());
      pending.set(tx as Transaction, created);
      tx.beforeCommit(async () => {
        for (const { first, targets } of created.values()) await record(first, targets);
      });
    }
    // In-process callers (seeding) may write for several people in one transaction: one record per who, why and activity.
    const key = JSON.stringify([ACTIVITY[w.method], w.ctx.comment ?? '', provenanceFor(w, p, []).agent]);
    const entry = byActivity.get(key);
    if (entry) entry.targets.push(versionOf(w));
    else byActivity.set(key, { first: w, targets: [versionOf(w)] });
  },
};
