/**
 * Who changed what, when and why. Every write by a person gets (1) `meta.tag`s naming the last
 * updater — user type, HPR number and name, role, point of care, legal entity — as NHN's pilot
 * API does, and (2) a Provenance resource in the same transaction: the version written, the
 * activity, the agent and organisation, and the reason the client gave in the `X-Provenance`
 * header (FHIR's way of sending a Provenance with a write).
 */
import type { Coding, Meta, Provenance, Resource } from '@medplum/fhirtypes';
import { SYSTEM_ACCESS } from '../fhir/access.js';
import type { StoredWrite, WriteHook } from '../fhir/writer.js';
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

const isOurTag = (t: Coding) => t.system?.startsWith(LAST_UPDATED_BY_PREFIX) ?? false;

/** The resource without the last-updated-by tags (they say who wrote it, not what it says). */
function withoutTags(resource: Resource): Resource {
  const tags = resource.meta?.tag?.filter((t) => !isOurTag(t));
  if (!resource.meta?.tag || tags?.length === resource.meta.tag.length) return resource;
  const { tag: _tag, ...meta } = resource.meta;
  return { ...resource, meta: (tags?.length ? { ...meta, tag: tags } : meta) as Meta } as Resource;
}

const ACTIVITY: Record<StoredWrite['method'], string> = { POST: 'CREATE', PUT: 'UPDATE', PATCH: 'UPDATE', DELETE: 'DELETE' };

function provenanceFor(w: StoredWrite, p: Principal): Provenance {
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
    target: [{ reference: `${w.type}/${w.id}/_history/${w.version.version}` }],
    recorded: w.version.lastUpdated.toISOString(),
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: ACTIVITY[w.method] }] },
    ...(w.ctx.comment ? { reason: [{ text: w.ctx.comment }] } : {}),
    agent,
  };
}

export const provenance: WriteHook = {
  prepare(w) {
    const p = w.ctx.principal;
    if (!p || NOT_RECORDED.has(w.type)) return w.next;
    const tags = tagsFor(p);
    if (!tags.length) return w.next;
    const base = withoutTags(w.next);
    return { ...base, meta: { ...(base.meta ?? {}), tag: [...(base.meta?.tag ?? []), ...tags] } } as Resource;
  },
  comparable: withoutTags,
  async stored(w) {
    const p = w.ctx.principal;
    if (!p || NOT_RECORDED.has(w.type)) return;
    await w.writer.create(w.q, { ...w.ctx, access: SYSTEM_ACCESS }, provenanceFor(w, p));
  },
};
