/**
 * What the patient sees. A clinician's changes reach the patient when the plan is published
 * (`CarePlan/{id}/$publish`): the plan and its parts (conditions, goals, measures, care team) are
 * marked with the version the patient is served, and stay so while the next version is drafted.
 * What the patient writes themself (own goals, check-ins, comments), and the patient's own record
 * and settings, are theirs to see at once.
 */
import type { CarePlan } from '@medplum/fhirtypes';
import type { WriteHook } from '../fhir/writer.js';
import { parseLocalReference } from '../fhir/references.js';
import type { Queryable } from '../store/db.js';

const ALWAYS_VISIBLE = new Set(['Patient', 'Consent']);

/** Marks the current versions of these resources as the ones the patient sees. */
export async function publish(q: Queryable, refs: ReadonlyArray<{ type: string; id: string }>): Promise<number> {
  if (!refs.length) return 0;
  const rows = await q.query(
    `UPDATE resources SET published_version = version
      WHERE NOT deleted AND (type, id) IN (SELECT * FROM unnest($1::text[], $2::text[])) RETURNING rid`,
    [refs.map((r) => r.type), refs.map((r) => r.id)],
  );
  return rows.length;
}

/** The plan and what it is made of, as local references. */
export function planParts(plan: CarePlan): Array<{ type: string; id: string }> {
  const refs = [
    ...(plan.addresses ?? []),
    ...(plan.goal ?? []),
    ...(plan.careTeam ?? []),
    ...(plan.activity ?? []).map((a) => a.reference ?? {}),
  ].flatMap((r) => {
    const local = r.reference ? parseLocalReference(r.reference) : undefined;
    return local ? [{ type: local.type, id: local.id }] : [];
  });
  return [{ type: 'CarePlan', id: plan.id as string }, ...refs];
}

/** Publishes at once what the patient writes, and the patient's own record and settings. */
export const publication: WriteHook = {
  async stored(w) {
    if (!w.next) return;
    if (w.ctx.principal?.kind === 'citizen' || ALWAYS_VISIBLE.has(w.type)) await publish(w.q, [{ type: w.type, id: w.id }]);
  },
};
