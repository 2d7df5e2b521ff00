/**
 * Samplan's own canonical URLs and codes: profiles, extensions, code systems. One home, so the
 * profiles, the plan rules, the templates, the portals and the docs all name things the same way.
 */

export const SAMPLAN = 'https://samplan.no/fhir';

export const PROFILE = {
  carePlan: `${SAMPLAN}/StructureDefinition/samplan-careplan`,
  condition: `${SAMPLAN}/StructureDefinition/samplan-condition`,
  goal: `${SAMPLAN}/StructureDefinition/samplan-goal`,
  measure: `${SAMPLAN}/StructureDefinition/samplan-measure`,
  careTeam: `${SAMPLAN}/StructureDefinition/samplan-careteam`,
  checkIn: `${SAMPLAN}/StructureDefinition/samplan-checkin`,
} as const;

export const EXTENSION = {
  /** A self-treatment zone (green / yellow / red) on a CarePlan or a template PlanDefinition. */
  zone: `${SAMPLAN}/StructureDefinition/self-treatment-zone`,
} as const;

export const CODE_SYSTEM = {
  zone: `${SAMPLAN}/CodeSystem/zone`,
  observation: `${SAMPLAN}/CodeSystem/observation`,
  /** Tags naming who last changed a resource, as NHN's pilot API does. */
  lastUpdatedBy: `${SAMPLAN}/CodeSystem/last-updated-by`,
  task: `${SAMPLAN}/CodeSystem/task`,
  flag: `${SAMPLAN}/CodeSystem/flag`,
} as const;

export const VALUE_SET = {
  zone: `${SAMPLAN}/ValueSet/zone`,
  measureCategory: `${SAMPLAN}/ValueSet/measure-category`,
  diagnosisSystems: `${SAMPLAN}/ValueSet/diagnosis`,
} as const;

export type ZoneLevel = 'green' | 'yellow' | 'red';
export const ZONE_LEVELS: readonly ZoneLevel[] = ['green', 'yellow', 'red'];
export const ZONE_DISPLAY: Record<ZoneLevel, string> = { green: 'Grønn sone', yellow: 'Gul sone', red: 'Rød sone' };

/** The six SNOMED CT categories of self-treatment measures (NHN TASK_CATEGORY). */
export const MEASURE_CATEGORIES: ReadonlyArray<{ code: string; display: string }> = [
  { code: '182832007', display: 'Medikamentelle tiltak' },
  { code: '384760004', display: 'Kosthold' },
  { code: '229064008', display: 'Fysisk aktivitet' },
  { code: '122869004', display: 'Målinger' },
  { code: '390808007', display: 'Psykisk helse' },
  { code: '313204009', display: 'Livsstil' },
];

/** The daily check-in: "which zone am I in today", with optional measurements as components. */
export const CHECK_IN_CODE = { system: CODE_SYSTEM.observation, code: 'zone-check-in', display: 'Daglig egenvurdering av sone' } as const;
