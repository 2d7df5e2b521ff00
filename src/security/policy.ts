/**
 * Who may see and change what (docs/security.md has the table). One PrincipalAccess is compiled per
 * request from the caller and the patient's privacy settings:
 * - a request is about one patient (personnel: `nhn-patient-nin`; citizens: themselves or whom
 *   they represent), and only that patient's compartment — plus public directory and definition
 *   resources — is ever visible: `readFilter` puts this in the SQL of every read path;
 * - plan content needs the patient's plan consent; Kjernejournal opt-out hides it; a restriction
 *   needs an elevated basis; a blocked clinician gets nothing, not even in an emergency;
 * - citizens see published plans only, and write only their own parts;
 * - machine tokens reach no content at all.
 */
import type { Resource } from '@medplum/fhirtypes';
import { type RawBuilder, sql } from 'kysely';
import type { Access, Interaction, WriteCheck } from '../fhir/access.js';
import { WRITE_INTERACTIONS } from '../fhir/access.js';
import { definitions } from '../fhir/definitions.js';
import { ErrorCode, errors } from '../fhir/outcomes.js';
import { parseLocalReference } from '../fhir/references.js';
import { ageOn, NIN_SYSTEMS, parseNin } from '../no/identifiers.js';
import { type SubscriptionRules, subscriptionAccess } from '../plan/subscriptions/access.js';
import { inCompartments } from '../store/compartments.js';
import { column, constantList } from '../store/sql.js';
import type { ApiScopes } from './claims.js';
import type { Citizen, Personnel, Principal } from './principal.js';
import { isElevated, isEmergency } from './principal.js';
import { consentCategories, PATIENT_ONLY_CATEGORIES, type PatientPrivacy } from './privacy.js';

/**
 * Resources with no patient in them that any caller of the API may read (personnel may also
 * write them): the directory of people and organisations, and definitions (templates, forms,
 * terminology, profiles). Other resources outside the patient compartment (Bundle, Binary, …)
 * may carry anyone's data, so they are not reachable with a personal token at all.
 */
export const PUBLIC_TYPES: readonly string[] = [
  'Organization',
  'Practitioner',
  'PractitionerRole',
  'Location',
  'HealthcareService',
  'Endpoint',
  'PlanDefinition',
  'ActivityDefinition',
  'Questionnaire',
  'Library',
  'ValueSet',
  'CodeSystem',
  'ConceptMap',
  'NamingSystem',
  'StructureDefinition',
  'SearchParameter',
  'OperationDefinition',
  'CapabilityStatement',
  'Medication',
  'Substance',
];

/** Resources about the patient's settings rather than the plan: readable without plan consent. */
const PRIVACY_TYPES: readonly string[] = ['Patient', 'Consent'];
// As literals in the statements' text: the same in every caller's rule.
const PUBLIC_LIST = constantList(PUBLIC_TYPES);
const PRIVACY_LIST = constantList(PRIVACY_TYPES);
const PRIVACY_TYPE_SET: ReadonlySet<string> = new Set(PRIVACY_TYPES);

/** The parts of the read rule (PrincipalAccess.readFilter). */
type RulePart = 'public' | 'patient' | 'subscriptions';

/** What citizens may write in their own compartment, and how to tell they are the author. */
const CITIZEN_AUTHORED: Record<string, (r: Resource) => string[]> = {
  Goal: (r) => refs((r as { expressedBy?: unknown }).expressedBy),
  Observation: (r) => refs((r as { performer?: unknown }).performer),
  QuestionnaireResponse: (r) => [...refs((r as { author?: unknown }).author), ...refs((r as { source?: unknown }).source)],
  Communication: (r) => refs((r as { sender?: unknown }).sender),
  Consent: (r) => refs((r as { patient?: unknown }).patient),
};

function refs(value: unknown): string[] {
  const list = Array.isArray(value) ? value : value ? [value] : [];
  return list.flatMap((v) => (typeof (v as { reference?: unknown }).reference === 'string' ? [(v as { reference: string }).reference] : []));
}

let compartmentTypes: ReadonlySet<string> | undefined;
/** Types that can belong to a patient's compartment (the Patient CompartmentDefinition). */
export function patientCompartmentTypes(): ReadonlySet<string> {
  compartmentTypes ??= new Set([
    'Patient',
    ...(definitions().patientCompartment.resource ?? []).filter((r) => (r.param ?? []).length > 0).map((r) => r.code as string),
  ]);
  return compartmentTypes;
}

export interface PolicyOptions {
  scopes: ApiScopes;
  allowedRoles: ReadonlySet<string>;
}


export class PrincipalAccess implements Access {
  private readonly patientRefs: string[];
  /** Whether plan content (beyond Patient and Consent) of the patient may be read. */
  private readonly contentVisible: boolean;
  /** Why plan content is refused, when it is. */
  private readonly contentRefusal: (() => never) | undefined;
  /** Subscriptions belong to the client that made them: their own rules (plan/subscriptions). */
  private readonly subscriptions: SubscriptionRules;
  readonly confines: ReadonlySet<string> | undefined;

  constructor(
    readonly principal: Principal,
    /** Settings of the patient the request is about; undefined when it is about no patient. */
    readonly privacy: PatientPrivacy | undefined,
    private readonly options: PolicyOptions,
  ) {
    this.patientRefs = (privacy?.patientIds ?? []).map((id) => `Patient/${id}`);
    this.contentRefusal = this.refusalFor(principal, privacy);
    this.contentVisible = !this.contentRefusal;
    this.subscriptions = subscriptionAccess(principal, privacy, options.scopes, this);
    // The types whose rows the rule's patient part finds by the patient's compartments.
    if (privacy && this.patientRefs.length && principal.kind !== 'machine') this.confines = this.contentVisible ? patientCompartmentTypes() : PRIVACY_TYPE_SET;
  }

  /** Why this caller may not see the patient's plan content at all, or undefined if they may. */
  private refusalFor(principal: Principal, privacy: PatientPrivacy | undefined): (() => never) | undefined {
    if (!privacy) return undefined;
    const refuse = (code: ErrorCode, message: string) => () => {
      throw errors.forbidden(code, message);
    };
    if (principal.kind === 'personnel') {
      if (privacy.blockedHpr.has(principal.hpr)) return refuse(ErrorCode.Blocked, 'The patient has blocked your access to their plan; this cannot be overridden, not even in an emergency');
      if (privacy.optedOut) return refuse(ErrorCode.OptedOut, 'The patient has opted out of Kjernejournal, so no plan is stored or shown');
      if (!privacy.consent) return refuse(ErrorCode.ConsentMissing, 'The patient has not consented to having a plan (or has withdrawn the consent)');
      if (privacy.restricted && !isElevated(principal.accessBasis)) {
        return refuse(ErrorCode.Restricted, 'The patient has restricted access: an elevated basis (FORHOYET_SAMTYKKE or FORHOYET_AKUTT) is needed');
      }
    }
    return undefined;
  }

  private hasScope(scope: string): boolean {
    return this.principal.scopes.has(scope);
  }

  checkInteraction(interaction: Interaction, type: string | undefined): void {
    const p = this.principal;
    const write = WRITE_INTERACTIONS.has(interaction);
    if (interaction === 'capabilities') return;
    if (interaction === 'status') return this.checkStatus();
    if (type === 'Subscription') return this.subscriptions.checkInteraction(interaction);
    if (p.kind === 'machine') {
      throw errors.forbidden(ErrorCode.MachineTokenNotAllowed, 'A token without a person (client credentials) may only use the status check; plan content needs a personal token');
    }
    if (!this.hasScope(write ? this.options.scopes.write : this.options.scopes.read)) {
      throw errors.forbidden(ErrorCode.InsufficientScope, `The access token lacks the ${write ? this.options.scopes.write : this.options.scopes.read} scope`);
    }
    if (p.kind === 'personnel') this.checkPersonnel(p);
    else this.checkCitizen(p, write, interaction);
    if (type === 'AuditEvent') {
      if (write) throw errors.readOnly('Audit records cannot be created, changed or deleted through the API');
      if (p.kind !== 'citizen') throw errors.forbidden(ErrorCode.NoAccess, 'Only the patient (or their representative) can read the access log');
      return;
    }
    if (type && !PUBLIC_TYPES.includes(type) && !patientCompartmentTypes().has(type)) {
      throw errors.forbidden(ErrorCode.NoAccess, `${type} resources are not available with a personal token`);
    }
    if (type && patientCompartmentTypes().has(type)) {
      if (!this.privacy) {
        throw errors.header(ErrorCode.MissingHeader, 'The nhn-patient-nin header is required to access patient data: name the patient the request is about');
      }
      if (!PRIVACY_TYPES.includes(type)) this.contentRefusal?.();
    }
  }

  /** The status check: machine tokens with the status scope, health personnel with read or status scope. */
  private checkStatus(): void {
    const p = this.principal;
    const { read, status } = this.options.scopes;
    if (p.kind === 'citizen') throw errors.forbidden(ErrorCode.NoAccess, 'The status check is for EHR systems');
    if (!p.scopes.has(status) && !(p.kind === 'personnel' && p.scopes.has(read))) {
      throw errors.forbidden(ErrorCode.InsufficientScope, `The access token lacks the ${status} scope`);
    }
    if (p.kind === 'personnel' && !this.options.allowedRoles.has(p.role.code)) {
      throw errors.forbidden(ErrorCode.RoleNotAllowed, `The role ${p.role.code} (Volven 9060) is not allowed to use plans`);
    }
  }

  private checkPersonnel(p: Personnel): void {
    if (!this.options.allowedRoles.has(p.role.code)) {
      throw errors.forbidden(ErrorCode.RoleNotAllowed, `The role ${p.role.code} (Volven 9060) is not allowed to use plans`);
    }
    if (this.privacy?.blockedHpr.has(p.hpr)) this.contentRefusal?.();
    if (isEmergency(p.accessBasis) && !p.reason) {
      throw errors.header(ErrorCode.EmergencyReasonRequired, 'Emergency access (AKUTT) needs a reason: send it URL-encoded in the nhn-access-reason header');
    }
    if (isElevated(p.accessBasis) && this.privacy && !this.privacy.restricted) {
      throw errors.forbidden(ErrorCode.ElevatedBasisUnnecessary, 'An elevated access basis may only be used for a patient who has restricted access; use SAMTYKKE, UNNTAK or AKUTT');
    }
  }

  private checkCitizen(c: Citizen, write: boolean, interaction: Interaction): void {
    const rep = c.representation;
    if (rep.basis === 'FORELDREREPRESENTASJON') {
      const child = parseNin(rep.pid);
      if (!child || ageOn(child.birthDate) >= 12) {
        throw errors.forbidden(ErrorCode.RepresentationNotAllowed, 'Parents can act for children under 12 only; from 12 the child\'s plan is not shown to parents');
      }
    }
    if (rep.basis === 'FULLMAKT') {
      const giver = parseNin(rep.pid);
      const receiver = parseNin(c.pid);
      if (!giver || !receiver || ageOn(giver.birthDate) < 16 || ageOn(receiver.birthDate) < 18) {
        throw errors.forbidden(ErrorCode.RepresentationNotAllowed, 'A fullmakt needs a giver of 16 or older and a receiver of 18 or older');
      }
      const needed = write ? 'endre' : 'innsyn';
      if (!rep.scope?.includes(needed)) {
        throw errors.forbidden(ErrorCode.RepresentationNotAllowed, `The fullmakt does not cover ${write ? 'registering or changing' : 'seeing'} health information`);
      }
    }
    if (interaction === 'history') throw errors.forbidden(ErrorCode.NoAccess, 'Version history is for health personnel; the patient sees the published plan');
  }

  /** The rule's SQL by part and alias: Kysely's builders are immutable, and one Access serves request after request (authenticate.ts). */
  private readonly filters = new Map<string, RawBuilder<unknown>>();

  /**
   * The rule has three parts — public rows, the patient's rows, the caller's subscriptions — each
   * for rows of its own types. For rows of `types` only the parts that can pass them are written:
   * the same rule, in a form whose plan starts from the part's index.
   */
  readFilter(alias: string, types?: readonly string[]): RawBuilder<unknown> {
    const parts = new Set<RulePart>();
    for (const type of types?.length ? types : [undefined]) {
      if (type === undefined || PUBLIC_TYPES.includes(type)) parts.add('public');
      if (this.confines && (type === undefined || this.confines.has(type))) parts.add('patient');
      if (type === undefined || type === 'Subscription') parts.add('subscriptions');
    }
    const key = `${[...parts].join('+')} ${alias}`;
    let filter = this.filters.get(key);
    if (!filter) {
      const written = [...parts].map((part) => this.rulePart(part, alias));
      filter = written.length ? sql`(${sql.join(written, sql` OR `)})` : sql`FALSE`;
      this.filters.set(key, filter);
    }
    return filter;
  }

  private rulePart(part: RulePart, alias: string): RawBuilder<unknown> {
    const r = (name: string) => column(alias, name);
    switch (part) {
      case 'public':
        return sql`(${r('compartments')} = '{}' AND ${r('type')} = ANY(${PUBLIC_LIST}))`;
      case 'subscriptions':
        return this.subscriptions.readFilter(alias);
      case 'patient': {
        // The references one by one, so that the planner counts them (src/store/compartments.ts).
        const mine = inCompartments(sql, r('compartments'), sql`ARRAY[${sql.join(this.patientRefs)}]::text[]`);
        if (!this.contentVisible) return sql`(${mine} AND ${r('type')} = ANY(${PRIVACY_LIST}))`;
        // The patient sees what has been published to them: drafts stay with the clinicians.
        if (this.principal.kind === 'citizen') return sql`(${mine} AND ${r('published_version')} IS NOT NULL)`;
        return mine;
      }
    }
  }

  /** Citizens are served the published version, which may be older than the one being drafted. */
  served(alias: string): { version: RawBuilder<unknown>; content: RawBuilder<unknown>; lastUpdated: RawBuilder<unknown> } {
    const r = (name: string) => column(alias, name);
    if (this.principal.kind !== 'citizen') return { version: r('version'), content: r('content'), lastUpdated: r('last_updated') };
    const latest = sql`${r('published_version')} IS NULL OR ${r('published_version')} = ${r('version')}`;
    const published = (name: string) => sql`(SELECT ${column('pv', name)} FROM resource_versions AS pv WHERE pv.rid = ${r('rid')} AND pv.version = ${r('published_version')})`;
    return {
      version: sql`coalesce(${r('published_version')}, ${r('version')})`,
      content: sql`CASE WHEN ${latest} THEN ${r('content')} ELSE ${published('content')} END`,
      // Not the time of a newer draft: that would tell the patient one exists.
      lastUpdated: sql`CASE WHEN ${latest} THEN ${r('last_updated')} ELSE ${published('last_updated')} END`,
    };
  }

  checkWrite(w: WriteCheck): void {
    if (w.type === 'Subscription') return this.subscriptions.checkWrite(w);
    const p = this.principal;
    if (p.kind === 'machine') throw errors.forbidden(ErrorCode.MachineTokenNotAllowed, 'A token without a person cannot write');
    if (w.type === 'AuditEvent') throw errors.readOnly('Audit records cannot be created, changed or deleted through the API');
    const inCompartment = patientCompartmentTypes().has(w.type);
    if (!inCompartment) {
      if (!PUBLIC_TYPES.includes(w.type)) throw errors.forbidden(ErrorCode.NoAccess, `${w.type} resources cannot be written with a personal token`);
      if (p.kind === 'citizen') throw errors.forbidden(ErrorCode.NoAccess, `Citizens cannot change ${w.type} resources`);
      return;
    }
    if (!this.privacy) throw errors.header(ErrorCode.MissingHeader, 'The nhn-patient-nin header is required to write patient data');
    // Registering the patient: the new Patient is its own compartment, not yet known to the
    // request; checkNewPatient below ties it to the request's national id instead.
    const registering = w.type === 'Patient' && w.next && !w.current ? `Patient/${w.next.id}` : undefined;
    for (const compartments of [w.currentCompartments, w.nextCompartments]) {
      if (compartments.some((c) => c.startsWith('Patient/') && c !== registering && !this.patientRefs.includes(c))) {
        throw errors.forbidden(ErrorCode.PatientMismatch, 'The resource belongs to another patient than the one this request is about');
      }
    }
    if (w.type === 'Patient' && w.next && !w.current) this.checkNewPatient(w.next);
    else if (!w.nextCompartments.length && !w.currentCompartments.length && w.type !== 'Patient') {
      throw errors.forbidden(ErrorCode.PatientMismatch, `The ${w.type} must refer to the patient the request is about`);
    }
    const isPrivacy = PRIVACY_TYPES.includes(w.type);
    if (!isPrivacy) this.contentRefusal?.();
    if (w.type === 'Consent') this.checkConsentWrite(w);
    else if (p.kind === 'citizen') {
      this.checkCitizenAuthored(w);
      if (!this.privacy.consent) throw errors.forbidden(ErrorCode.ConsentMissing, 'Give consent to having a plan before adding to it');
    } else if (!this.privacy.consent && !isPrivacy) {
      throw errors.forbidden(ErrorCode.ConsentMissing, 'The patient has not consented to having a plan, so none can be stored');
    }
  }

  /** A new Patient must carry the national id the request is about. */
  private checkNewPatient(next: Resource): void {
    const nin = this.principal.kind === 'personnel' ? this.principal.patientNin : this.principal.kind === 'citizen' ? this.principal.representation.pid : undefined;
    const ids = (next as { identifier?: Array<{ value?: string }> }).identifier ?? [];
    if (this.principal.kind === 'citizen') throw errors.forbidden(ErrorCode.NoAccess, 'Citizens cannot register patients');
    if (!nin || !ids.some((i) => i.value === nin)) {
      throw errors.forbidden(ErrorCode.PatientMismatch, 'A new Patient must carry the national id given in nhn-patient-nin');
    }
    // …and no other person's: a Patient found by two national ids would join two compartments.
    if ((next as { identifier?: Array<{ system?: string; value?: string }> }).identifier?.some((i) => i.system && NIN_SYSTEMS.includes(i.system) && i.value !== nin)) {
      throw errors.forbidden(ErrorCode.PatientMismatch, 'A new Patient may carry only the national id given in nhn-patient-nin');
    }
  }

  private checkConsentWrite(w: WriteCheck): void {
    const p = this.principal;
    const categories = [w.next, w.current].flatMap((r) => (r ? consentCategories(r) : []));
    const patientOnly = categories.some((c) => PATIENT_ONLY_CATEGORIES.has(c));
    if (p.kind === 'personnel') {
      if (patientOnly) throw errors.forbidden(ErrorCode.NoAccess, 'Only the patient can set opt-out, restriction and blocks');
      return;
    }
    if (p.kind === 'citizen' && p.representation.basis === 'FULLMAKT') {
      throw errors.forbidden(ErrorCode.RepresentationNotAllowed, 'Someone acting with a fullmakt cannot give or withdraw consent, or change blocks and restrictions');
    }
    this.checkCitizenAuthored(w);
  }

  /** Citizens change only what they wrote themselves, and only the kinds of things they may write. */
  private checkCitizenAuthored(w: WriteCheck): void {
    const authors = CITIZEN_AUTHORED[w.type];
    if (!authors) throw errors.forbidden(ErrorCode.NoAccess, `Citizens cannot change ${w.type} resources; ask the care team`);
    for (const resource of [w.next, w.current]) {
      if (!resource) continue;
      const own = authors(resource).some((ref) => {
        const local = parseLocalReference(ref);
        return local?.type === 'Patient' && this.patientRefs.includes(`Patient/${local.id}`);
      });
      if (!own) throw errors.forbidden(ErrorCode.NoAccess, `Citizens can only change ${w.type} resources they are the author of`);
    }
  }
}

/** Access without credentials: only the CapabilityStatement. */
export const ANONYMOUS_ACCESS: Access = {
  readFilter: () => sql`FALSE`,
  checkInteraction: (interaction) => {
    if (interaction !== 'capabilities') throw errors.unauthorized(ErrorCode.Unauthenticated, 'This request needs an access token', 'Bearer realm="samplan"');
  },
  checkWrite: () => {
    throw errors.unauthorized(ErrorCode.Unauthenticated, 'This request needs an access token', 'Bearer realm="samplan"');
  },
};
