/**
 * Samplan's own canonical URLs and codes: profiles, extensions, code systems. One home, so the
 * profiles, the plan rules, the templates, the portals and the docs all name things the same way.
 * (The layers below the plan keep theirs, as they cannot import from here: the error codes in
 * fhir/outcomes.ts, the consent categories in security/privacy.ts, the audit codes in
 * security/audit.ts.) Every URL is published by the server itself (profiles/, installed at start);
 * test/plan/conformance.test.ts checks that each one in the source resolves.
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
  /** The client's secret for signing notifications: accepted on a Subscription write, never stored in it. */
  subscriptionSecret: `${SAMPLAN}/StructureDefinition/subscription-secret`,
  /** Set by the server on a Subscription: the client (client_id) that owns it. */
  subscriptionOwner: `${SAMPLAN}/StructureDefinition/subscription-owner`,
} as const;

export const CODE_SYSTEM = {
  zone: `${SAMPLAN}/CodeSystem/zone`,
  observation: `${SAMPLAN}/CodeSystem/observation`,
  task: `${SAMPLAN}/CodeSystem/task`,
  flag: `${SAMPLAN}/CodeSystem/flag`,
  goalCategory: `${SAMPLAN}/CodeSystem/goal-category`,
} as const;

/**
 * The subscription topic of the R4 Subscriptions Backport. R4 has no SubscriptionTopic resource:
 * the topic is advertised in the CapabilityStatement (the backport's
 * capabilitystatement-subscriptiontopic-canonical extension on Subscription) instead.
 */
export const TOPIC = {
  /** "A patient's plan changed": any write to plan content in the patient's compartment. */
  planChanged: `${SAMPLAN}/SubscriptionTopic/plan-changed`,
} as const;

/**
 * The `meta.tag` systems naming who last changed a resource, as NHN's pilot API does. Each is
 * published as a CodeSystem: user-type (and person: the representation basis) with all its codes;
 * the others hold codes from outside (HPR numbers, Volven 9060 roles, organisation numbers), so
 * their CodeSystems say so (content not-present) and name the register the codes come from.
 */
export const LAST_UPDATED_BY_PREFIX = `${SAMPLAN}/last-updated-by/`;
export const LAST_UPDATED_BY = {
  userType: `${LAST_UPDATED_BY_PREFIX}user-type`,
  hpr: `${LAST_UPDATED_BY_PREFIX}hpr`,
  role: `${LAST_UPDATED_BY_PREFIX}role`,
  organization: `${LAST_UPDATED_BY_PREFIX}organization`,
  legalEntity: `${LAST_UPDATED_BY_PREFIX}legal-entity`,
  person: `${LAST_UPDATED_BY_PREFIX}person`,
} as const;

/** The codes of the last-updated-by user-type tag. */
export const USER_TYPE = {
  personnel: { code: 'HEALTH_CARE_PROFESSIONAL', display: 'Helsepersonell' },
  citizen: { code: 'CITIZEN', display: 'Innbygger' },
  representative: { code: 'REPRESENTATIVE', display: 'Representant' },
} as const;

export const VALUE_SET = {
  zone: `${SAMPLAN}/ValueSet/zone`,
  measureCategory: `${SAMPLAN}/ValueSet/measure-category`,
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

/** Task codes: what a Task asks the care team to do. */
export const TASK_CODE = {
  planApproval: { system: CODE_SYSTEM.task, code: 'plan-approval', display: 'Godkjenning av plan' },
  checkInFollowUp: { system: CODE_SYSTEM.task, code: 'check-in-follow-up', display: 'Følg opp egenvurdering' },
} as const;

/** Flag codes: the zone a check-in puts the patient in (green raises no flag). */
export const FLAG_CODE: Record<Exclude<ZoneLevel, 'green'>, { system: string; code: string; display: string }> = {
  yellow: { system: CODE_SYSTEM.flag, code: 'zone-yellow', display: `Pasienten er i ${ZONE_DISPLAY.yellow.toLowerCase()}` },
  red: { system: CODE_SYSTEM.flag, code: 'zone-red', display: `Pasienten er i ${ZONE_DISPLAY.red.toLowerCase()}` },
};

/** The goal category of the patient's own goal ("hva er viktig for meg"): `$apply` makes it a Goal expressed by the patient. */
export const PATIENT_GOAL = { system: CODE_SYSTEM.goalCategory, code: 'patient-goal', display: 'Pasientens eget mål (hva er viktig for meg)' } as const;

/** The daily check-in: "which zone am I in today", with optional measurements as components. */
export const CHECK_IN_CODE = { system: CODE_SYSTEM.observation, code: 'zone-check-in', display: 'Daglig egenvurdering av sone' } as const;
