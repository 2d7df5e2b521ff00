/**
 * The mapping between Samplan's plan and NHN's zone-based plan JSON ("Planer": clinical_content
 * {title, description, zones[{condition, action, level}]}). NHN's zone is three strings; Samplan's
 * zone extension holds the same as `level`, `criteria` and `action`, plus structure NHN has no
 * place for (symptoms, thresholds, medication, contacts, emergency). The mapping is lossless both
 * ways: NHN → Samplan → NHN gives back the same strings, and Samplan → NHN → Samplan gives back the
 * same zones, because each NHN zone also carries Samplan's zone as `samplan_zone` (ignored by
 * NHN, used on the way back while it still agrees with the strings).
 */
import type { CarePlan, Extension } from '@medplum/fhirtypes';
import { isDeepStrictEqual } from 'node:util';
import { EXTENSION, type ZoneLevel } from './conventions.js';

export interface NhnZone {
  condition: string;
  action: string;
  level: ZoneLevel;
  samplan_zone?: Extension;
}

export interface NhnClinicalContent {
  title: string;
  description?: string;
  zones: NhnZone[];
}

const values = (zone: Extension, url: string) => (zone.extension ?? []).filter((e) => e.url === url);
const COMPARATOR_TEXT: Record<string, string> = { '<': 'under', '<=': 'høyst', '>': 'over', '>=': 'minst' };

/** When the zone applies, in words: its criteria text, or its symptoms and thresholds written out. */
export function conditionText(zone: Extension): string {
  const criteria = values(zone, 'criteria')[0]?.valueString;
  if (criteria) return criteria;
  const symptoms = values(zone, 'symptom').map((s) => s.valueString).filter(Boolean) as string[];
  const thresholds = values(zone, 'threshold').map((t) => {
    const part = (url: string) => (t.extension ?? []).find((e) => e.url === url);
    const what = part('measurement')?.valueCodeableConcept?.text ?? part('measurement')?.valueCodeableConcept?.coding?.[0]?.display ?? 'Måling';
    const cmp = COMPARATOR_TEXT[part('comparator')?.valueCode ?? ''] ?? part('comparator')?.valueCode ?? '';
    const percent = part('percentOfBaseline')?.valueDecimal;
    const value = part('value')?.valueQuantity;
    const over = part('changeOver')?.valueDuration;
    if (percent !== undefined) return `${what} ${cmp} ${percent} % av beste verdi`;
    if (value && over) return `${what} endret ${cmp} ${value.value} ${value.unit ?? ''} på ${over.value} ${over.unit ?? ''}`.replace(/\s+/g, ' ');
    return `${what} ${cmp} ${value?.value ?? ''} ${value?.unit ?? ''}`.replace(/\s+/g, ' ').trim();
  });
  return [...symptoms, ...thresholds].join('; ');
}

/** What to do, in words: actions, medication and contacts. */
export function actionText(zone: Extension): string {
  const actions = values(zone, 'action').map((a) => a.valueString).filter(Boolean) as string[];
  const medication = values(zone, 'medication').map((m) => m.valueString).filter(Boolean) as string[];
  const contacts = values(zone, 'contact').map((c) => {
    const part = (url: string) => (c.extension ?? []).find((e) => e.url === url);
    const who = part('who')?.valueString ?? part('who')?.valueReference?.display ?? 'behandler';
    const phone = part('phone')?.valueString;
    const within = part('within')?.valueDuration;
    return `Kontakt ${who}${phone ? ` (${phone})` : ''}${within ? ` innen ${within.value} ${within.unit ?? ''}`.trimEnd() : ''}`;
  });
  return [...actions, ...medication, ...contacts].join('\n');
}

export function toNhn(plan: CarePlan): NhnClinicalContent {
  const zones = (plan.extension ?? [])
    .filter((e) => e.url === EXTENSION.zone)
    .map((zone): NhnZone => ({
      condition: conditionText(zone),
      action: actionText(zone),
      level: values(zone, 'level')[0]?.valueCode as ZoneLevel,
      samplan_zone: zone,
    }));
  return { title: plan.title ?? '', ...(plan.description ? { description: plan.description } : {}), zones };
}

/** The zone extension for an NHN zone: Samplan's own when it still agrees with the strings. */
function zoneFromNhn(zone: NhnZone): Extension {
  const kept = zone.samplan_zone;
  if (kept && values(kept, 'level')[0]?.valueCode === zone.level && conditionText(kept) === zone.condition && actionText(kept) === zone.action) return kept;
  return {
    url: EXTENSION.zone,
    extension: [
      { url: 'level', valueCode: zone.level },
      { url: 'criteria', valueString: zone.condition },
      { url: 'action', valueString: zone.action },
      ...(zone.level === 'red' ? [{ url: 'emergency', valueBoolean: true }] : []),
    ],
  };
}

/** Applies NHN clinical content to a plan: title, description and zones (other extensions kept). */
export function fromNhn(content: NhnClinicalContent, plan: CarePlan): CarePlan {
  const others = (plan.extension ?? []).filter((e) => e.url !== EXTENSION.zone);
  const zones = content.zones.map(zoneFromNhn);
  const extension = [...others, ...zones];
  const { description: _d, extension: _e, ...rest } = plan;
  return {
    ...rest,
    title: content.title,
    ...(content.description ? { description: content.description } : {}),
    ...(extension.length ? { extension } : {}),
  };
}

/** True when the two contents say the same to NHN (ignoring Samplan's carried zones). */
export function sameNhn(a: NhnClinicalContent, b: NhnClinicalContent): boolean {
  const plain = (c: NhnClinicalContent) => ({ ...c, zones: c.zones.map(({ samplan_zone: _z, ...z }) => z) });
  return isDeepStrictEqual(plain(a), plain(b));
}
