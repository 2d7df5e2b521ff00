/**
 * The patient's daily check-in: "which zone am I in today", with optional measurements. A check-in
 * in the yellow or red zone — as the patient says, or as their measurements show against the
 * plan's thresholds, whichever is worse — raises a Flag on the patient and a follow-up Task for
 * the care team, in the same transaction, so it shows up for clinicians at once. Thresholds may
 * be absolute, relative to a personal baseline (peak flow under 80 % of best), or a change over a
 * period measured against the patient's earlier check-ins (weight up more than 2 kg in 3 days).
 */
import type { CarePlan, Coding, Duration, Extension, Flag, Observation, Quantity, Task } from '@medplum/fhirtypes';
import { SYSTEM_ACCESS } from '../fhir/access.js';
import { parseLocalReference } from '../fhir/references.js';
import type { StoredWrite, WriteHook } from '../fhir/writer.js';
import { executeSearch } from '../search/execute.js';
import { escapeSearchValue, parseSearch } from '../search/parse.js';
import type { Queryable } from '../store/db.js';
import type { ResourceStore } from '../store/resources.js';
import { CHECK_IN_CODE, CODE_SYSTEM, EXTENSION, FLAG_CODE, TASK_CODE, ZONE_DISPLAY, type ZoneLevel } from './conventions.js';

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

/** An earlier measurement of the patient's (from a check-in), for thresholds on a change over time. */
export interface Measured {
  at: number;
  code: Coding[] | undefined;
  value: number;
}

const UNIT_MS: Record<string, number> = { min: 60_000, h: 3_600_000, d: 86_400_000, wk: 604_800_000, mo: 2_629_800_000, a: 31_557_600_000 };

function durationMs(d: Duration | undefined): number | undefined {
  const unit = UNIT_MS[d?.code ?? ''];
  return unit !== undefined && d?.value !== undefined ? d.value * unit : undefined;
}

const round = (n: number) => Math.round(n * 10) / 10;

/**
 * The change a threshold on "a change over a period" looks at: from the first earlier value in
 * the period to now. Undefined when there is no earlier value in the period.
 */
function changeOver(history: readonly Measured[], code: Coding[] | undefined, value: number, at: number, periodMs: number): number | undefined {
  const earlier = history.filter((h) => h.at < at && h.at >= at - periodMs && sameMeasurement(h.code, code)).sort((a, b) => a.at - b.at)[0];
  return earlier ? value - earlier.value : undefined;
}

/** When a check-in was made: its effective time, else now. */
const madeAt = (check: Observation): number => Date.parse(check.effectiveDateTime ?? '') || Date.now();

/** Which zone's thresholds the measurements cross (the worst), with why. `history` holds the patient's earlier measurements. */
export function zoneFromMeasurements(plan: CarePlan, check: Observation, history: readonly Measured[] = []): { level: ZoneLevel; reason: string } | undefined {
  let worst: { level: ZoneLevel; reason: string } | undefined;
  const at = madeAt(check);
  for (const zone of plan.extension?.filter((e) => e.url === EXTENSION.zone) ?? []) {
    const level = one(zone, 'level')?.valueCode as ZoneLevel | undefined;
    if (!level || level === 'green') continue;
    for (const threshold of sub(zone, 'threshold')) {
      const measurement = one(threshold, 'measurement')?.valueCodeableConcept;
      const comparator = one(threshold, 'comparator')?.valueCode;
      if (!measurement || !comparator) continue;
      const period = durationMs(one(threshold, 'changeOver')?.valueDuration);
      if (period !== undefined) {
        const limit = one(threshold, 'value')?.valueQuantity;
        if (limit?.value === undefined) continue;
        for (const c of check.component ?? []) {
          const value = c.valueQuantity?.value;
          if (value === undefined || !sameMeasurement(c.code?.coding, measurement.coding)) continue;
          const change = changeOver(history, measurement.coding, value, at, period);
          if (change !== undefined && compare(change, comparator, limit.value) && (!worst || RANK[level] > RANK[worst.level])) {
            const name = measurement.text ?? c.code?.text ?? measurement.coding?.[0]?.display ?? 'Målingen';
            const over = one(threshold, 'changeOver')?.valueDuration;
            worst = { level, reason: `${name} har endret seg ${change > 0 ? '+' : ''}${round(change)} ${limit.unit ?? ''} på ${over?.value} ${over?.unit ?? ''}, grensen er ${comparator} ${limit.value} ${limit.unit ?? ''}`.replace(/\s+/g, ' ').trim() };
          }
        }
        continue;
      }
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

/** A measurement a change-over threshold of the plan compares with its earlier values, and over how long. */
interface LookBack {
  coding: Coding[];
  periodMs: number;
}

/**
 * The plan's change-over thresholds that the check-in has a value for: only those need earlier
 * check-ins. Once each: a yellow and a red zone often look at the same change over the same days.
 */
function lookBacks(plan: CarePlan, check: Observation): LookBack[] {
  const measured = (check.component ?? []).filter((c) => c.valueQuantity?.value !== undefined);
  const looks = new Map<string, LookBack>();
  for (const t of (plan.extension ?? []).filter((e) => e.url === EXTENSION.zone).flatMap((z) => sub(z, 'threshold'))) {
    const coding = one(t, 'measurement')?.valueCodeableConcept?.coding;
    const periodMs = durationMs(one(t, 'changeOver')?.valueDuration);
    if (coding?.length && periodMs !== undefined && measured.some((c) => sameMeasurement(c.code?.coding, coding))) {
      looks.set(JSON.stringify([coding.map((c) => [c.system, c.code]), periodMs]), { coding, periodMs });
    }
  }
  return [...looks.values()];
}

/** Check-ins read a page at a time, earliest first, until one has a value of the measurement. */
const PAGE = 10;

/**
 * The patient's first measurement of `look.coding` from a check-in in the period before `at`
 * (found with the search engine, as a search would): the only earlier value a change over that
 * period is measured from. A patient whose device sends a check-in every quarter of an hour has
 * hundreds in three days; they are read in date order and only until the first with a value.
 */
async function firstMeasurement(q: Queryable, patient: string, look: LookBack, at: number, baseUrl: string): Promise<Measured | undefined> {
  const codes = look.coding.filter((c) => c.code).map((c) => (c.system ? `${escapeSearchValue(c.system)}|${escapeSearchValue(c.code as string)}` : escapeSearchValue(c.code as string)));
  if (!codes.length) return undefined;
  let query = parseSearch(
    'Observation',
    [
      ['subject', patient],
      ['code', `${CHECK_IN_CODE.system}|${CHECK_IN_CODE.code}`],
      ['component-code', codes.join(',')],
      ['date', `ge${new Date(at - look.periodMs).toISOString()}`],
      ['date', `lt${new Date(at).toISOString()}`],
      ['_sort', 'date'],
      ['_count', String(PAGE)],
      ['_total', 'none'],
    ],
    { strict: true, baseUrl },
  );
  for (;;) {
    const result = await executeSearch(q, query, undefined);
    for (const row of result.matches) {
      const o = JSON.parse(row.content as string) as Observation;
      const when = Date.parse(o.effectiveDateTime ?? '');
      const value = (o.component ?? []).find((c) => c.valueQuantity?.value !== undefined && sameMeasurement(c.code?.coding, look.coding))?.valueQuantity?.value;
      if (value !== undefined && when < at && when >= at - look.periodMs) return { at: when, code: look.coding, value };
    }
    if (!result.next) return undefined;
    query = { ...query, cursor: result.next };
  }
}

async function followUp(store: ResourceStore, w: StoredWrite, check: Observation): Promise<void> {
  const reported = reportedZone(check);
  const planRef = check.basedOn?.map((b) => (b.reference ? parseLocalReference(b.reference) : undefined)).find((r) => r?.type === 'CarePlan');
  const planRow = planRef ? await store.read(w.q, 'CarePlan', planRef.id) : undefined;
  const plan = planRow?.content ? (JSON.parse(planRow.content) as CarePlan) : undefined;
  const patient = check.subject?.reference;
  const at = madeAt(check);
  const history: Measured[] = [];
  for (const look of plan && patient ? lookBacks(plan, check) : []) {
    const first = await firstMeasurement(w.q, patient as string, look, at, w.ctx.baseUrl);
    if (first) history.push(first);
  }
  const measured = plan ? zoneFromMeasurements(plan, check, history) : undefined;
  const level = [reported, measured?.level].filter((z): z is ZoneLevel => !!z).sort((a, b) => RANK[b] - RANK[a])[0];
  if (!level || level === 'green') return;
  const said = reported ? `Pasienten melder ${ZONE_DISPLAY[reported].toLowerCase()}` : 'Pasienten har sendt inn målinger';
  const why = measured && RANK[measured.level] >= RANK[reported ?? 'green'] ? `; målingene viser ${ZONE_DISPLAY[measured.level].toLowerCase()} (${measured.reason})` : '';
  const text = `${said}${why}.`;
  // Written by Samplan itself, for the care team: not by the patient, and not published to them.
  const { principal: _principal, ...request } = w.ctx;
  const ctx = { ...request, access: SYSTEM_ACCESS };
  const zoneCode = { ...FLAG_CODE[level] };
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
    code: { coding: [{ ...TASK_CODE.checkInFollowUp }] },
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
      // A new check-in (by POST, or by PUT to a new id); corrections of an old one raise nothing again.
      if (w.type !== 'Observation' || w.previous || !w.next || !isCheckIn(w.next as Observation)) return;
      await followUp(store, w, w.next as Observation);
    },
  };
}
