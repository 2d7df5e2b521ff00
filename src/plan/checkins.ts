/**
 * The patient's daily check-in: "which zone am I in today", with optional measurements. A check-in
 * in the yellow or red zone — as the patient says, or as their measurements show against the
 * plan's thresholds, whichever is worse — raises a Flag on the patient and a follow-up Task for
 * the care team, in the same transaction, so it shows up for clinicians at once.
 */
import type { CarePlan, Coding, Extension, Flag, Observation, Quantity, Task } from '@medplum/fhirtypes';
import { SYSTEM_ACCESS } from '../fhir/access.js';
import { parseLocalReference } from '../fhir/references.js';
import type { StoredWrite, WriteHook } from '../fhir/writer.js';
import type { ResourceStore } from '../store/resources.js';
import { CHECK_IN_CODE, CODE_SYSTEM, EXTENSION, ZONE_DISPLAY, type ZoneLevel } from './conventions.js';

const RANK: Record<ZoneLevel, number> = { green: 0, yellow: 1, red: 2 };

const sub = (ext: Extension, url: string) => ext.extension?.filter((e) => e.url === url) ?? [];
const one = (ext: Extension, url: string) => sub(ext, url)[0];

function isCheckIn(o: Observation): boolean {
  return o.code?.coding?.some((c) => c.system === CHECK_IN_CODE.system && c.code === CHECK_IN_CODE.code) ?? false;
}

function reportedZone(o: Observation): ZoneLevel | undefined {
  const code = o.valueCodeableConcept?.coding?.find((c) => c.system === CODE_SYSTEM.zone)?.code;
  return code === 'green' || code === 'yellow' || code === 'red' ? code : undefined;
}

function sameMeasurement(a: Coding[] | undefined, b: Coding[] | undefined): boolean {
  return (a ?? []).some((x) => (b ?? []).some((y) => x.system === y.system && x.code === y.code));
}

function compare(value: number, comparator: string, limit: number): boolean {
  switch (comparator) {
    case '<':
      return value < limit;
    case '<=':
      return value <= limit;
    case '>':
      return value > limit;
    case '>=':
      return value >= limit;
    default:
      return false;
  }
}

/** Which zone's thresholds the measurements cross (the worst), with why. */
export function zoneFromMeasurements(plan: CarePlan, check: Observation): { level: ZoneLevel; reason: string } | undefined {
  let worst: { level: ZoneLevel; reason: string } | undefined;
  for (const zone of plan.extension?.filter((e) => e.url === EXTENSION.zone) ?? []) {
    const level = one(zone, 'level')?.valueCode as ZoneLevel | undefined;
    if (!level || level === 'green') continue;
    for (const threshold of sub(zone, 'threshold')) {
      const measurement = one(threshold, 'measurement')?.valueCodeableConcept;
      const comparator = one(threshold, 'comparator')?.valueCode;
      if (!measurement || !comparator || one(threshold, 'changeOver')) continue; // changes over days need the series
      let limit: Quantity | undefined = one(threshold, 'value')?.valueQuantity;
      const percent = one(threshold, 'percentOfBaseline')?.valueDecimal;
      const baseline = one(threshold, 'baseline')?.valueQuantity;
      if (percent !== undefined && baseline?.value !== undefined) limit = { ...baseline, value: (baseline.value * percent) / 100 };
      if (limit?.value === undefined) continue;
      for (const c of check.component ?? []) {
        const value = c.valueQuantity?.value;
        if (value === undefined || !sameMeasurement(c.code?.coding, measurement.coding)) continue;
        if (compare(value, comparator, limit.value) && (!worst || RANK[level] > RANK[worst.level])) {
          const name = measurement.text ?? c.code?.text ?? measurement.coding?.[0]?.display ?? 'Målingen';
          worst = { level, reason: `${name} ${value} ${c.valueQuantity?.unit ?? ''} er ${comparator} ${Math.round(limit.value * 10) / 10} ${limit.unit ?? ''}`.replace(/\s+/g, ' ').trim() };
        }
      }
    }
  }
  return worst;
}

async function followUp(store: ResourceStore, w: StoredWrite, check: Observation): Promise<void> {
  const reported = reportedZone(check);
  const planRef = check.basedOn?.map((b) => (b.reference ? parseLocalReference(b.reference) : undefined)).find((r) => r?.type === 'CarePlan');
  const planRow = planRef ? await store.read(w.q, 'CarePlan', planRef.id) : undefined;
  const plan = planRow?.content ? (JSON.parse(planRow.content) as CarePlan) : undefined;
  const measured = plan ? zoneFromMeasurements(plan, check) : undefined;
  const level = [reported, measured?.level].filter((z): z is ZoneLevel => !!z).sort((a, b) => RANK[b] - RANK[a])[0];
  if (!level || level === 'green') return;
  const said = reported ? `Pasienten melder ${ZONE_DISPLAY[reported].toLowerCase()}` : 'Pasienten har sendt inn målinger';
  const why = measured && RANK[measured.level] >= RANK[reported ?? 'green'] ? `; målingene viser ${ZONE_DISPLAY[measured.level].toLowerCase()} (${measured.reason})` : '';
  const text = `${said}${why}.`;
  const ctx = { ...w.ctx, access: SYSTEM_ACCESS };
  const zoneCode = { system: CODE_SYSTEM.flag, code: `zone-${level}`, display: `Pasienten er i ${ZONE_DISPLAY[level].toLowerCase()}` };
  const flag: Flag = {
    resourceType: 'Flag',
    status: 'active',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'clinical', display: 'Clinical' }] }],
    code: { coding: [zoneCode], text },
    subject: check.subject as Flag['subject'],
    period: { start: check.effectiveDateTime ?? w.version.lastUpdated.toISOString() },
  };
  await w.writer.create(w.q, ctx, flag);
  const careTeam = plan?.careTeam?.[0];
  const task: Task = {
    resourceType: 'Task',
    status: 'requested',
    intent: 'order',
    priority: level === 'red' ? 'stat' : 'urgent',
    code: { coding: [{ system: CODE_SYSTEM.task, code: 'check-in-follow-up', display: 'Følg opp egenvurdering' }] },
    description: `${text} Følg opp etter egenbehandlingsplanen.`,
    focus: { reference: `Observation/${w.id}` },
    for: check.subject as Task['for'],
    ...(planRef ? { basedOn: [{ reference: `CarePlan/${planRef.id}` }] } : {}),
    authoredOn: w.version.lastUpdated.toISOString(),
    ...(careTeam ? { owner: careTeam } : {}),
  };
  await w.writer.create(w.q, ctx, task);
}

export function checkIns(store: ResourceStore): WriteHook {
  return {
    async stored(w) {
      if (w.type !== 'Observation' || w.method !== 'POST' || !w.next || !isCheckIn(w.next as Observation)) return;
      await followUp(store, w, w.next as Observation);
    },
  };
}
