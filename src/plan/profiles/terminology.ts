/**
 * Samplan's terminology: every code system whose URL Samplan's resources, tags, audit records and
 * error answers carry, the value sets its profiles bind, and the naming system of the client ids
 * in audit records. Each concept list is generated from the constants the code itself uses (or a
 * table typed by them), so a code cannot be used without being published.
 *
 * Code systems whose codes come from elsewhere — HPR numbers, organisation numbers, Volven 9060
 * roles in the last-updated-by tags — are published with `content: not-present`: the system is
 * Samplan's (a tag is a Coding, and its system must say what the code is), the codes are the
 * register's, which the description names. They are CodeSystems rather than NamingSystems because
 * they appear as `Coding.system`, not `Identifier.system`, and because an R4 NamingSystem has no
 * canonical URL to be found by; the one true identifier system (the client id of an audit
 * record's client agent) is a NamingSystem.
 */
import type { CodeSystem, CodeSystemConcept, NamingSystem, ValueSet } from '@medplum/fhirtypes';
import { ERROR_CODE_DEFINITIONS, ERROR_CODE_SYSTEM, type ErrorCode } from '../../fhir/outcomes.js';
import { CODE_SYSTEM as NO } from '../../no/codes.js';
import { OID } from '../../no/identifiers.js';
import { AUDIT_AGENT_TYPE, AUDIT_CODES } from '../../security/audit.js';
import type { RepresentationBasis } from '../../security/claims.js';
import type { AccessBasis } from '../../security/principal.js';
import { CONSENT_CATEGORY_SYSTEM, type ConsentCategory } from '../../security/privacy.js';
import {
  CHECK_IN_CODE,
  CODE_SYSTEM,
  FLAG_CODE,
  LAST_UPDATED_BY,
  MEASURE_CATEGORIES,
  PATIENT_GOAL,
  TASK_CODE,
  USER_TYPE,
  VALUE_SET,
  ZONE_DISPLAY,
} from '../conventions.js';
import { common } from './meta.js';

type Concept = { code: string; display?: string; definition?: string };

function codeSystem(id: string, url: string, name: string, title: string, description: string, concept: readonly Concept[]): CodeSystem {
  return {
    resourceType: 'CodeSystem',
    id,
    url,
    name,
    title,
    ...common,
    description,
    caseSensitive: true,
    content: 'complete',
    count: concept.length,
    concept: concept.map((c): CodeSystemConcept => ({ code: c.code, ...(c.display ? { display: c.display } : {}), ...(c.definition ? { definition: c.definition } : {}) })),
  };
}

/** A code system whose codes are those of an outside register, named in the description. */
function externalCodes(id: string, url: string, name: string, title: string, description: string): CodeSystem {
  return { resourceType: 'CodeSystem', id, url, name, title, ...common, description, caseSensitive: true, content: 'not-present' };
}

export const zoneCodeSystem = codeSystem('zone', CODE_SYSTEM.zone, 'Zone', 'Soner i egenbehandlingsplan', 'The three zones of a self-treatment plan: the value of a daily check-in, and the level of a zone.', [
  { code: 'green', display: ZONE_DISPLAY.green, definition: 'Som vanlig: fortsett behandlingen.' },
  { code: 'yellow', display: ZONE_DISPLAY.yellow, definition: 'Verre: gjør det planen sier, og ta kontakt innen avtalt tid.' },
  { code: 'red', display: ZONE_DISPLAY.red, definition: 'Fare: ring 113 eller legevakt 116 117.' },
]);

export const zoneValueSet: ValueSet = {
  resourceType: 'ValueSet',
  id: 'zone',
  url: VALUE_SET.zone,
  name: 'Zone',
  title: 'Soner',
  ...common,
  compose: { include: [{ system: CODE_SYSTEM.zone }] },
};

export const measureCategoryValueSet: ValueSet = {
  resourceType: 'ValueSet',
  id: 'measure-category',
  url: VALUE_SET.measureCategory,
  name: 'MeasureCategory',
  title: 'Kategorier av egenbehandlingstiltak (NHN TASK_CATEGORY)',
  ...common,
  compose: { include: [{ system: NO.snomed, concept: MEASURE_CATEGORIES.map((c) => ({ code: c.code, display: c.display })) }] },
};

export const observationCodeSystem = codeSystem('observation', CODE_SYSTEM.observation, 'SamplanObservation', 'Samplans observasjonskoder', "Samplan's observation codes: the daily check-in.", [
  { code: CHECK_IN_CODE.code, display: CHECK_IN_CODE.display },
]);

export const taskCodeSystem = codeSystem('task', CODE_SYSTEM.task, 'SamplanTask', 'Samplans oppgavekoder', 'What a Task Samplan makes asks the care team to do (Task.code).', [
  { ...TASK_CODE.planApproval, definition: 'Approval of one version of the plan (the Task\'s focus) by a physician: requested, given (completed) or rejected. Made by CarePlan/$approval.' },
  { ...TASK_CODE.checkInFollowUp, definition: 'Follow up a daily check-in (the Task\'s focus) that put the patient in the yellow or red zone, as the plan says. Made with the check-in.' },
]);

export const flagCodeSystem = codeSystem('flag', CODE_SYSTEM.flag, 'SamplanFlag', 'Samplans varselkoder', 'What a Flag Samplan raises says (Flag.code): the zone a check-in put the patient in.', [
  { ...FLAG_CODE.yellow, definition: 'A check-in put the patient in the yellow zone (as they said, or as their measurements show).' },
  { ...FLAG_CODE.red, definition: 'A check-in put the patient in the red zone (as they said, or as their measurements show).' },
]);

export const goalCategoryCodeSystem = codeSystem('goal-category', CODE_SYSTEM.goalCategory, 'SamplanGoalCategory', 'Samplans målkategorier', 'Categories of goals (Goal.category) on templates and plans.', [
  { ...PATIENT_GOAL, definition: 'The patient\'s own goal, "hva er viktig for meg" (expressed by the patient).' },
]);

const CONSENT_CATEGORIES: Record<ConsentCategory, { display: string; definition: string }> = {
  plan: { display: 'Samtykke til delt plan', definition: 'The patient agrees to having a shared plan (provision permit). Without it no plan content is shown or stored.' },
  reservasjon: { display: 'Reservasjon', definition: 'The patient has opted out (Kjernejournal reservasjon): no plan is stored or shown.' },
  'begrenset-tilgang': { display: 'Begrenset tilgang', definition: 'The patient has restricted access: health personnel need an elevated access basis (FORHOYET_SAMTYKKE or FORHOYET_AKUTT).' },
  blokkering: { display: 'Blokkering', definition: 'The patient blocks one clinician (provision.actor, by HPR number): they are always refused.' },
};

export const consentCategoryCodeSystem = codeSystem(
  'consent-category',
  CONSENT_CATEGORY_SYSTEM,
  'SamplanConsentCategory',
  'Pasientens personverninnstillinger',
  "The patient's privacy settings, each kept as a Consent with this category (Consent.category). Only active Consents count.",
  Object.entries(CONSENT_CATEGORIES).map(([code, c]) => ({ code, ...c })),
);

export const errorCodeSystem = codeSystem(
  'error-code',
  ERROR_CODE_SYSTEM,
  'SamplanErrorCode',
  'Samplans feilkoder',
  'The stable, machine-readable code of every OperationOutcome issue Samplan gives (OperationOutcome.issue.details.coding). A code that has shipped is never renamed or given another meaning. When each happens and what to do: docs/errors.md.',
  (Object.entries(ERROR_CODE_DEFINITIONS) as Array<[ErrorCode, string]>).map(([code, definition]) => ({ code, definition })),
);

const ACCESS_BASES: Record<AccessBasis, { display: string; definition: string }> = {
  UNNTAK: { display: 'Unntak fra samtykke', definition: 'Access without consent, as the law allows health personnel such as the GP.' },
  SAMTYKKE: { display: 'Samtykke', definition: "Access with the patient's consent." },
  AKUTT: { display: 'Akutt', definition: 'Access in an emergency (needs a reason).' },
  FORHOYET_SAMTYKKE: { display: 'Forhøyet samtykke', definition: "Access with the patient's consent to data they have restricted." },
  FORHOYET_AKUTT: { display: 'Forhøyet akutt', definition: 'Access in an emergency to data the patient has restricted (needs a reason).' },
};

export const accessBasisCodeSystem = codeSystem(
  'nhn-access-basis',
  AUDIT_CODES.accessBasis,
  'NhnAccessBasis',
  'Tilgangsgrunnlag (nhn-access-basis)',
  "The grounds on which health personnel access a patient's plan, as the nhn-access-basis header gives them; recorded in AuditEvent.purposeOfEvent and the agent's purposeOfUse.",
  Object.entries(ACCESS_BASES).map(([code, c]) => ({ code, ...c })),
);

const REPRESENTATION_BASES: Record<RepresentationBasis, { display: string; definition: string }> = {
  SEGSELV: { display: 'Seg selv', definition: 'The citizen acts for themselves.' },
  FORELDREREPRESENTASJON: { display: 'Foreldrerepresentasjon', definition: 'A parent acts for their child.' },
  FULLMAKT: { display: 'Fullmakt', definition: 'The citizen acts for someone who has given them power of attorney (for seeing, and perhaps changing).' },
  VERGEMAL: { display: 'Vergemål', definition: 'A guardian acts for the person under guardianship.' },
};
const representationConcepts = Object.entries(REPRESENTATION_BASES).map(([code, c]) => ({ code, ...c }));

export const representationBasisCodeSystem = codeSystem(
  'representation-basis',
  AUDIT_CODES.representation,
  'RepresentationBasis',
  'Representasjonsgrunnlag',
  "On what basis a citizen acts (from the Helsenorge token's representation claim); recorded as the role of the citizen agent in AuditEvents.",
  representationConcepts,
);

export const auditAgentTypeCodeSystem = codeSystem(
  'audit-agent-type',
  AUDIT_CODES.agentType,
  'AuditAgentType',
  'Aktører i revisjonsloggen',
  'The kinds of AuditEvent agent besides the person: the client system the request came through, and the point of care and legal entity a clinician acts for.',
  Object.values(AUDIT_AGENT_TYPE).map((t) => ({ ...t })),
);

/** The last-updated-by tags (meta.tag) that name who last changed a resource. */
export const lastUpdatedByCodeSystems: CodeSystem[] = [
  codeSystem(
    'last-updated-by-user-type',
    LAST_UPDATED_BY.userType,
    'LastUpdatedByUserType',
    'Sist endret av: brukertype',
    'Tag (meta.tag) on a resource: what kind of user last changed it.',
    [
      { ...USER_TYPE.personnel, definition: 'Health personnel (HelseID).' },
      { ...USER_TYPE.citizen, definition: 'The patient themselves (Helsenorge).' },
      { ...USER_TYPE.representative, definition: 'A citizen acting for the patient (parent, power of attorney, guardian).' },
    ],
  ),
  externalCodes(
    'last-updated-by-hpr',
    LAST_UPDATED_BY.hpr,
    'LastUpdatedByHpr',
    'Sist endret av: HPR-nummer',
    `Tag (meta.tag) on a resource: the HPR number (Helsepersonellregisteret, identifier system ${OID.hpr}) of the health personnel who last changed it, with their name as display. The codes are HPR numbers, not listed here.`,
  ),
  externalCodes(
    'last-updated-by-role',
    LAST_UPDATED_BY.role,
    'LastUpdatedByRole',
    'Sist endret av: rolle',
    `Tag (meta.tag) on a resource: the role of the health personnel who last changed it. The codes are those of Volven 9060 (${NO.personnelCategory}: LE lege, SP sykepleier, …), not listed here.`,
  ),
  externalCodes(
    'last-updated-by-organization',
    LAST_UPDATED_BY.organization,
    'LastUpdatedByOrganization',
    'Sist endret av: virksomhet',
    `Tag (meta.tag) on a resource: the organisation number (Enhetsregisteret, identifier system ${OID.orgnr}) of the point of care where the health personnel who last changed it works. The codes are organisation numbers, not listed here.`,
  ),
  externalCodes(
    'last-updated-by-legal-entity',
    LAST_UPDATED_BY.legalEntity,
    'LastUpdatedByLegalEntity',
    'Sist endret av: juridisk enhet',
    `Tag (meta.tag) on a resource: the organisation number (Enhetsregisteret, identifier system ${OID.orgnr}) of the legal entity the health personnel who last changed it acts for. The codes are organisation numbers, not listed here.`,
  ),
  codeSystem(
    'last-updated-by-person',
    LAST_UPDATED_BY.person,
    'LastUpdatedByPerson',
    'Sist endret av: innbygger',
    'Tag (meta.tag) on a resource: the citizen who last changed it, with their name as display; the code says on what basis they acted.',
    representationConcepts,
  ),
];

/** The client id (HelseID or Helsenorge client_id) of the client agent in AuditEvents. */
export const clientIdNamingSystem: NamingSystem = {
  resourceType: 'NamingSystem',
  id: 'client-id',
  name: 'SamplanClientId',
  status: common.status,
  kind: 'identifier',
  date: common.date,
  publisher: common.publisher,
  description:
    'The client id (client_id of the HelseID or Helsenorge token) of the system a request came through: the identifier of the client-system agent in AuditEvents.',
  usage: 'AuditEvent.agent.who.identifier, with the agent type audit-agent-type#client-system',
  uniqueId: [{ type: 'uri', value: AUDIT_CODES.clientId, preferred: true }],
};

/** The code systems and value sets, in the order they are installed. */
export const terminologyResources: Array<CodeSystem | ValueSet> = [
  zoneCodeSystem,
  zoneValueSet,
  measureCategoryValueSet,
  observationCodeSystem,
  taskCodeSystem,
  flagCodeSystem,
  goalCategoryCodeSystem,
  consentCategoryCodeSystem,
  errorCodeSystem,
  accessBasisCodeSystem,
  representationBasisCodeSystem,
  auditAgentTypeCodeSystem,
  ...lastUpdatedByCodeSystems,
];

export const namingSystems: NamingSystem[] = [clientIdNamingSystem];
