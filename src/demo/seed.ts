/**
 * Demo data: a small synthetic Norway in an empty database, so that `npm start` shows something
 * at once. The organisations, health personnel and citizens are those of `population.ts` — the
 * people the embedded identity provider logs in as — so a GP who logs in finds "her" patients and
 * a citizen finds their own plan. Each patient with a plan gets it the way a clinician would make
 * it (`plans.ts` says what is in it):
 *
 *   GP registers the Patient → patient consents (and blocks, if any) → diagnoses and relatives →
 *   `PlanDefinition/$apply` of the condition template → the clinician fills it in (medicines,
 *   doses, baselines, phone numbers, the patient's own goal, care team, extra goals and measures)
 *   and makes it active → `$publish` → `$approval` → a few days of check-ins by the patient (a
 *   yellow one raises a Flag and a Task for the care team, by the check-in hook).
 *
 * Everything goes through the FHIR engine, so validation, profiles, plan rules, provenance and
 * the hooks apply as to any client. A person's writes are made as that person — a principal
 * built from the population, with the access rules the real API would compile for them — so
 * the version history names real (synthetic) clinicians with HPR numbers, and the seed can only
 * do what those people could do through the API. The directory (organisations, practitioners,
 * roles) is the server's own work. The seed is not an access by a person: it leaves no audit
 * records, so the patients' access logs start empty.
 *
 * Idempotency: the whole seed is one database transaction, under an advisory lock, and runs only
 * when the database has never held a Patient. A crash midway rolls everything back, so there is
 * never a half-made seed to complete; a second run (or a second instance starting at the same
 * time, which waits for the lock) finds the patients and changes nothing. That check also keeps
 * demo data out of any database with real patients in it.
 */
import type {
  Bundle,
  BundleEntry,
  CarePlan,
  CareTeam,
  Condition,
  Extension,
  Goal,
  Observation,
  Organization,
  Parameters,
  Patient,
  Practitioner,
  PractitionerRole,
  Reference,
  RelatedPerson,
  Resource,
  ServiceRequest,
} from '@medplum/fhirtypes';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { SYSTEM_ACCESS } from '../fhir/access.js';
import type { FhirEngine } from '../fhir/engine.js';
import { FhirError } from '../fhir/outcomes.js';
import type { FhirRequest, RequestContext } from '../fhir/types.js';
import { CODE_SYSTEM as NO } from '../no/codes.js';
import { OID } from '../no/identifiers.js';
import { CHECK_IN_CODE, CODE_SYSTEM, EXTENSION, ZONE_DISPLAY, type ZoneLevel } from '../plan/conventions.js';
import { MEASUREMENT, measureCategory, quantity } from '../plan/templates/build.js';
import { TEMPLATES, type Template } from '../plan/templates/index.js';
import { type ApiScopes, apiScopes } from '../security/claims.js';
import { PrincipalAccess } from '../security/policy.js';
import { type Citizen, type Personnel, type Principal, patientNinOf } from '../security/principal.js';
import { lookupPatient, privacyConsent } from '../security/privacy.js';
import { textOf, type Transaction } from '../store/db.js';
import { DEMO_PLANS, type DemoDiagnosis, type DemoPlan, PATIENTS_WITHOUT_PLAN } from './plans.js';
import { citizenByKey, clinicianByKey, clinicians, type DemoClinician, organisation, organisations, representations } from './population.js';

/** Arbitrary constant: instances starting together seed one at a time (the second finds the data). */
const SEED_LOCK = 7_346_113;

/** The client system named in the seeded versions' tags, as an EHR's name would be. */
const SEED_CLIENT = { id: 'samplan-demo-data', name: 'Samplan demodata' } as const;

export type SeedSettings = Pick<Config, 'baseUrl' | 'security'>;

export interface SeedResult {
  seeded: boolean;
  /** Why nothing was seeded. */
  reason?: string;
  patients: number;
  plans: number;
  checkIns: number;
  /** Flags and Tasks the check-ins raised for the care teams. */
  flags: number;
  ms: number;
}

const fullName = (p: { name: { given: string; family: string } }) => `${p.name.given} ${p.name.family}`;
const DAY = 24 * 60 * 60 * 1000;

/** A failure of the seed. Its message is logged: any national id an outcome might quote is masked. */
class SeedError extends Error {
  constructor(message: string) {
    super(message.replace(/\b\d{11}\b/g, '[national id]'));
  }
}

/**
 * Runs requests through the engine inside the seed's transaction: as the server itself, or as a
 * person with the access rules the security layer would compile for them.
 */
class Seeder {
  private readonly scopes;
  private readonly allowedRoles: ReadonlySet<string>;

  constructor(
    private readonly engine: FhirEngine,
    private readonly tx: Transaction,
    private readonly settings: SeedSettings,
  ) {
    this.scopes = apiScopes(settings.security.audience);
    this.allowedRoles = new Set(settings.security.allowedRoles);
  }

  /** Uncaught and unaudited (`route`): a refusal is a bug in the demo data, and aborts the seed. */
  private async run<T>(req: FhirRequest, ctx: RequestContext, what: string): Promise<T> {
    let res;
    try {
      res = await this.engine.route({ req, ctx, q: this.tx });
    } catch (err) {
      if (!(err instanceof FhirError)) throw err;
      const issues = err.outcome.issue?.map((i) => `${i.diagnostics ?? i.details?.text ?? i.code}${i.expression ? ` (${i.expression.join(', ')})` : ''}`);
      throw new SeedError(`demo data: ${what} was refused (${err.status}): ${issues?.join('; ') ?? ''}`);
    }
    if (res.status >= 300) throw new SeedError(`demo data: ${what} was answered ${res.status}: ${res.body ?? ''}`);
    return (res.body ? JSON.parse(textOf(res.body)) : undefined) as T;
  }

  system<T>(req: FhirRequest, what: string): Promise<T> {
    return this.run<T>(req, { requestId: 'demo-seed', baseUrl: this.settings.baseUrl, access: SYSTEM_ACCESS }, what);
  }

  /** As this person: the patient's current privacy settings are looked up for every request, as for an HTTP request. */
  async as<T>(principal: Principal, req: FhirRequest, what: string): Promise<T> {
    const nin = patientNinOf(principal);
    const privacy = nin ? await lookupPatient(this.tx, nin) : undefined;
    const access = new PrincipalAccess(principal, privacy, { scopes: this.scopes, allowedRoles: this.allowedRoles });
    const ctx: RequestContext = {
      requestId: 'demo-seed',
      baseUrl: this.settings.baseUrl,
      principal,
      access,
      ...(privacy ? { patientIds: privacy.patientIds } : {}),
    };
    return this.run<T>(req, ctx, what);
  }

  /** demoPersonnel, with the seed's scopes. */
  personnel(key: string, patientNin: string): Personnel {
    return demoPersonnel(key, patientNin, this.scopes);
  }

  /** A citizen acting for themself, or for `patientKey` as the population's representation says. */
  citizen(key: string, patientKey: string): Citizen {
    const person = citizenByKey(key);
    const patient = citizenByKey(patientKey);
    let representation: Citizen['representation'] = { basis: 'SEGSELV', pid: person.pid };
    if (key !== patientKey) {
      const rep = representations.find((r) => r.representative === key && r.represented === patientKey);
      if (!rep) throw new SeedError(`demo data: ${key} does not represent ${patientKey} in the population`);
      representation = { basis: rep.basis, pid: patient.pid, name: fullName(patient), ...(rep.scope ? { scope: rep.scope } : {}) };
    }
    return { kind: 'citizen', pid: person.pid, name: fullName(person), clientId: SEED_CLIENT.id, representation, scopes: new Set([this.scopes.read, this.scopes.write]) };
  }
}

const post = (resource: Resource): FhirRequest => ({ method: 'POST', path: resource.resourceType, query: [], body: resource, bodyKind: 'resource' });
const operation = (path: string, parameter: Parameters['parameter']): FhirRequest => ({
  method: 'POST',
  path,
  query: [],
  body: { resourceType: 'Parameters', parameter },
  bodyKind: 'resource',
});
const transaction = (entry: BundleEntry[]): FhirRequest => ({ method: 'POST', path: '', query: [], body: { resourceType: 'Bundle', type: 'transaction', entry }, bodyKind: 'resource' });
const urn = () => `urn:uuid:${crypto.randomUUID()}`;
const ref = <T extends Resource>(resource: T): Reference<T> => ({ reference: `${resource.resourceType}/${resource.id as string}` }) as Reference<T>;

/** The resources a transaction answered with, in the order of its entries. */
function results<T extends Resource = Resource>(bundle: Bundle): T[] {
  return (bundle.entry ?? []).map((e) => e.resource as T);
}

// ---------------------------------------------------------------------------------------------
// The directory: organisations, practitioners and their roles

interface Directory {
  /** Point of care (underenhet) by organisation key. */
  organisation: Map<string, Organization>;
  /** PractitionerRole by clinician key. */
  role: Map<string, PractitionerRole>;
}

const ORG_TYPE: Record<string, string> = {
  gp: 'Fastlegekontor',
  municipality: 'Kommunal helse- og omsorgstjeneste',
  hospital: 'Sykehusavdeling',
  physiotherapy: 'Fysioterapiinstitutt',
};

/**
 * One transaction. Organisations and practitioners are created only if none has the organisation
 * or HPR number already (a directory may have been loaded before the first patient), so the seed
 * never makes a second entry for the same legal person.
 */
async function seedDirectory(s: Seeder): Promise<Directory> {
  const entries: BundleEntry[] = [];
  const conditional = (resource: Resource, system: string, value: string): string => {
    const fullUrl = urn();
    entries.push({ fullUrl, resource, request: { method: 'POST', url: resource.resourceType, ifNoneExist: `identifier=${system}|${value}` } });
    return fullUrl;
  };
  const orgnr = (value: string) => [{ system: OID.orgnr, value }];
  const parents = new Map<string, string>();
  for (const o of organisations) {
    if (parents.has(o.orgnrParent)) continue;
    parents.set(
      o.orgnrParent,
      conditional({ resourceType: 'Organization', active: true, identifier: orgnr(o.orgnrParent), name: o.legalEntity } satisfies Organization, OID.orgnr, o.orgnrParent),
    );
  }
  const childIndex = new Map<string, number>();
  for (const o of organisations) {
    childIndex.set(o.key, entries.length);
    conditional(
      {
        resourceType: 'Organization',
        active: true,
        identifier: orgnr(o.orgnrChild),
        type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'prov', display: 'Healthcare Provider' }], text: ORG_TYPE[o.kind] ?? o.kind }],
        name: o.name,
        telecom: [{ system: 'phone', value: o.phone, use: 'work' }],
        partOf: { reference: parents.get(o.orgnrParent) as string, display: o.legalEntity },
      } satisfies Organization,
      OID.orgnr,
      o.orgnrChild,
    );
  }
  const practitionerUrl = new Map<string, string>();
  for (const c of clinicians) {
    practitionerUrl.set(
      c.key,
      conditional(
        { resourceType: 'Practitioner', active: true, identifier: [{ system: OID.hpr, value: c.hpr }], name: [{ family: c.name.family, given: [c.name.given] }] } satisfies Practitioner,
        OID.hpr,
        c.hpr,
      ),
    );
  }
  const roleIndex = new Map<string, number>();
  for (const c of clinicians) {
    const org = organisation(c.organisation);
    roleIndex.set(c.key, entries.length);
    entries.push({
      fullUrl: urn(),
      resource: {
        resourceType: 'PractitionerRole',
        active: true,
        practitioner: { reference: practitionerUrl.get(c.key) as string, display: fullName(c) },
        organization: { reference: entries[childIndex.get(c.organisation) as number]?.fullUrl as string, display: org.name },
        code: [{ coding: [{ system: NO.personnelCategory, code: c.role, display: c.roleDisplay }], text: c.title }],
        telecom: [{ system: 'phone', value: org.phone, use: 'work' }],
      } satisfies PractitionerRole,
      request: { method: 'POST', url: 'PractitionerRole' },
    });
  }
  const stored = results(await s.system<Bundle>(transaction(entries), 'the directory (organisations, practitioners, roles)'));
  return {
    organisation: new Map(organisations.map((o) => [o.key, stored[childIndex.get(o.key) as number] as Organization])),
    role: new Map(clinicians.map((c) => [c.key, stored[roleIndex.get(c.key) as number] as PractitionerRole])),
  };
}

// ---------------------------------------------------------------------------------------------
// Patients and plans

/** A reference to a clinician's role, with a display a reader of the plan understands. */
function roleRef(dir: Directory, key: string): Reference<PractitionerRole> {
  const c: DemoClinician = clinicianByKey(key);
  return { ...ref(dir.role.get(key) as PractitionerRole), display: `${fullName(c)}, ${c.title.toLowerCase()}, ${organisation(c.organisation).name}` };
}

async function registerPatient(s: Seeder, dir: Directory, patientKey: string, gpKey: string): Promise<Patient> {
  const person = citizenByKey(patientKey);
  const patient: Patient = {
    resourceType: 'Patient',
    active: true,
    identifier: [{ system: OID.fnr, value: person.pid }],
    name: [{ use: 'official', family: person.name.family, given: [person.name.given] }],
    gender: person.gender,
    birthDate: person.birthDate,
    generalPractitioner: [roleRef(dir, gpKey)],
  };
  return s.as<Patient>(s.personnel(gpKey, person.pid), post(patient), `registering ${patientKey} as a patient`);
}

function conditionResource(d: DemoDiagnosis, patient: Patient, dir: Directory, recorded: string): Condition {
  const coding = [
    ...(d.icd10 ? [{ system: NO.icd10, code: d.icd10[0], display: d.icd10[1] }] : []),
    ...(d.icpc2 ? [{ system: NO.icpc2, code: d.icpc2[0], display: d.icpc2[1] }] : []),
    ...(d.snomed ? [{ system: NO.snomed, code: d.snomed[0], display: d.snomed[1] }] : []),
  ];
  return {
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active', display: 'Active' }] },
    verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed', display: 'Confirmed' }] },
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item', display: 'Problem List Item' }] }],
    code: { coding, text: d.text },
    subject: ref(patient),
    onsetDateTime: d.onset,
    recordedDate: recorded,
    recorder: roleRef(dir, d.recorder),
  };
}

/** The sentence of `text` that says «fylles ut …», replaced by `replacement` ('' removes it). */
export function fillIn(text: string, replacement: string): string {
  const sentences = text.split(/(?<=\.)\s+/);
  const i = sentences.findIndex((x) => x.includes('fylles ut'));
  if (i < 0) return text;
  if (replacement) sentences[i] = replacement;
  else sentences.splice(i, 1);
  return sentences.join(' ');
}

/** The template's zones with this patient's medicines, baselines and the GP office's phone number. */
function individualZones(zones: Extension[], plan: DemoPlan, gpPhone: string): Extension[] {
  return zones.map((zone) => {
    if (zone.url !== EXTENSION.zone) return zone;
    const level = zone.extension?.find((e) => e.url === 'level')?.valueCode as ZoneLevel;
    const settings = plan.zones[level];
    const fills = [...(settings?.fillIn ?? [])];
    const out: Extension[] = [];
    let medicationsDone = false;
    for (const part of zone.extension ?? []) {
      if (part.url === 'medication' && settings?.medications) {
        if (!medicationsDone) out.push(...settings.medications.map((m) => ({ url: 'medication', valueString: m })));
        medicationsDone = true;
      } else if (part.valueString?.includes('fylles ut') && fills.length) {
        out.push({ ...part, valueString: fillIn(part.valueString, fills.shift() as string) });
      } else if (part.url === 'threshold') {
        out.push(withBaseline(part, plan));
      } else if (part.url === 'contact') {
        const who = part.extension?.find((e) => e.url === 'who')?.valueString ?? '';
        const hasPhone = part.extension?.some((e) => e.url === 'phone');
        // The zones name "Fastlegen"; the plan gives the number to call.
        if (!hasPhone && who.startsWith('Fastlegen')) {
          const [first, ...rest] = part.extension ?? [];
          out.push({ ...part, extension: [first as Extension, { url: 'phone', valueString: gpPhone }, ...rest] });
        } else out.push(part);
      } else out.push(part);
    }
    return { ...zone, extension: out };
  });
}

/** A threshold in percent of the patient's best value gets that value. */
function withBaseline(threshold: Extension, plan: DemoPlan): Extension {
  const parts = threshold.extension ?? [];
  if (!parts.some((e) => e.url === 'percentOfBaseline') || parts.some((e) => e.url === 'baseline')) return threshold;
  const measured = parts.find((e) => e.url === 'measurement')?.valueCodeableConcept?.coding?.[0]?.code;
  const baseline = plan.baselines?.find((b) => MEASUREMENT[b.measurement].coding?.[0]?.code === measured);
  if (!baseline) return threshold;
  return { ...threshold, extension: [...parts, { url: 'baseline', valueQuantity: quantity(baseline.value, baseline.unit) }] };
}

/** The template measure a ServiceRequest was made from (its key in the template spec). */
function measureKey(template: Template, sr: ServiceRequest): string | undefined {
  const url = sr.instantiatesCanonical?.[0]?.split('|')[0];
  const ad = template.activityDefinitions.find((a) => a.url === url);
  return ad?.id?.slice(`${template.planDefinition.id as string}-`.length);
}

interface PlanContext {
  s: Seeder;
  dir: Directory;
  plan: DemoPlan;
  template: Template;
  patient: Patient;
  now: number;
}

const dateOnly = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The patient's consent (and blocks), the diagnoses and relatives, then `$apply`: the draft plan. */
async function draftPlan(c: PlanContext): Promise<{ carePlan: CarePlan; conditions: Condition[]; relatives: RelatedPerson[] }> {
  const { s, dir, plan, patient } = c;
  const person = citizenByKey(plan.patient);
  const author = s.personnel(plan.author, person.pid);
  const agreed = dateOnly(c.now - plan.agreedDaysAgo * DAY);

  // The patient (or the parent, for a child) consents to having a plan, and sets their blocks.
  const decider = s.citizen(plan.citizen, plan.patient);
  await s.as(decider, post(privacyConsent(patient.id as string, 'plan', { dateTime: agreed, provision: { type: 'permit' } })), `${plan.patient}'s plan consent`);
  for (const blocked of plan.blocked ?? []) {
    const b = clinicianByKey(blocked);
    const consent = privacyConsent(patient.id as string, 'blokkering', {
      dateTime: agreed,
      provision: { type: 'deny', actor: [{ role: { text: 'blokkert helsepersonell' }, reference: { identifier: { system: OID.hpr, value: b.hpr }, display: fullName(b) } }] },
    });
    await s.as(decider, post(consent), `${plan.patient}'s block of ${blocked}`);
  }

  const conditions: BundleEntry[] = plan.diagnoses.map((d) => ({
    fullUrl: urn(),
    resource: conditionResource(d, patient, dir, dateOnly(c.now - (plan.agreedDaysAgo + 7) * DAY)),
    request: { method: 'POST', url: 'Condition' },
  }));
  const relatives: BundleEntry[] = plan.relatives.map((r) => ({
    fullUrl: urn(),
    resource: {
      resourceType: 'RelatedPerson',
      active: true,
      patient: ref(patient),
      relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: r.relationship[0], display: r.relationship[1] }] }],
      name: [{ family: r.name.family, given: [r.name.given] }],
      telecom: [{ system: 'phone', value: r.phone, use: 'mobile' }],
    } satisfies RelatedPerson,
    request: { method: 'POST', url: 'RelatedPerson' },
  }));
  const stored = results(await s.as<Bundle>(author, transaction([...conditions, ...relatives]), `${plan.patient}'s diagnoses and relatives`));

  // The template finds the patient's diagnosis (the first) by its code and addresses it.
  const carePlan = await s.as<CarePlan>(
    author,
    operation(`PlanDefinition/${c.template.planDefinition.id as string}/$apply`, [
      { name: 'subject', valueString: `Patient/${patient.id as string}` },
      { name: 'practitioner', valueString: `PractitionerRole/${dir.role.get(plan.author)?.id as string}` },
      { name: 'persist', valueBoolean: true },
    ]),
    `applying the ${plan.template} template for ${plan.patient}`,
  );
  return {
    carePlan,
    conditions: stored.slice(0, conditions.length) as Condition[],
    relatives: stored.slice(conditions.length) as RelatedPerson[],
  };
}

/** The clinician's work on the draft: one transaction that fills it in and makes it active. */
async function completePlan(c: PlanContext, draft: Awaited<ReturnType<typeof draftPlan>>): Promise<CarePlan> {
  const { s, dir, plan, template, patient } = c;
  const person = citizenByKey(plan.patient);
  const author = s.personnel(plan.author, person.pid);
  const agreed = dateOnly(c.now - plan.agreedDaysAgo * DAY);
  const gp = roleRef(dir, plan.gp);
  const gpPhone = organisation(clinicianByKey(plan.gp).organisation).phone;
  const patientRef = ref(patient);
  const diagnosisRef = new Map(plan.diagnoses.map((d, i) => [d.key, { ...ref(draft.conditions[i] as Condition), display: d.text }]));
  const relativeRef = new Map(plan.relatives.map((r, i) => [r.key, { ...ref(draft.relatives[i] as RelatedPerson), display: fullName(r) }]));

  const parts = await s.system<Bundle>(
    {
      method: 'GET',
      path: 'CarePlan',
      query: [
        ['_id', draft.carePlan.id as string],
        ['_include', 'CarePlan:goal'],
        ['_include', 'CarePlan:activity-reference'],
      ],
    },
    `reading ${plan.patient}'s draft`,
  );
  const found = (parts.entry ?? []).map((e) => e.resource as Resource);
  const entries: BundleEntry[] = [];
  const put = (r: Resource) => entries.push({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id as string}`, ifMatch: `W/"${r.meta?.versionId as string}"` } });
  const create = (r: Resource): string => {
    const fullUrl = urn();
    entries.push({ fullUrl, resource: r, request: { method: 'POST', url: r.resourceType } });
    return fullUrl;
  };

  let ownGoal: string | undefined;
  for (const goal of found.filter((r): r is Goal => r.resourceType === 'Goal')) {
    const own = goal.expressedBy?.reference === patientRef.reference;
    if (own) ownGoal = `Goal/${goal.id as string}`;
    put({ ...goal, lifecycleStatus: 'active', startDate: agreed, ...(own ? { description: { text: plan.ownGoal } } : {}) });
  }
  for (const sr of found.filter((r): r is ServiceRequest => r.resourceType === 'ServiceRequest')) {
    const key = measureKey(template, sr);
    const text = key ? plan.fillIn[key] : undefined;
    // A measure the health service does is the GP's unless the template says otherwise.
    const byGp = !sr.performer && sr.performerType?.text?.startsWith('Fastlege');
    put({
      ...sr,
      status: 'active',
      authoredOn: agreed,
      ...(text && sr.patientInstruction ? { patientInstruction: fillIn(sr.patientInstruction, text) } : {}),
      ...(byGp ? { performer: [gp] } : {}),
    });
  }

  const extraGoals = (plan.extraGoals ?? []).map((g) => ({
    reference: create({
      resourceType: 'Goal',
      lifecycleStatus: 'active',
      priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/goal-priority', code: g.priority }] },
      description: { text: g.description },
      subject: patientRef,
      startDate: agreed,
      expressedBy: roleRef(dir, plan.author),
      addresses: [diagnosisRef.get(g.addresses) as Reference<Condition>],
    } satisfies Goal),
    display: g.description,
  }));
  const extraMeasures = (plan.extraMeasures ?? []).map((m) => ({
    reference: {
      reference: create({
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'plan',
        category: [{ coding: [measureCategory(m.category)] }],
        code: { text: m.title },
        subject: patientRef,
        occurrenceTiming: m.timing,
        authoredOn: agreed,
        requester: roleRef(dir, plan.author),
        performer: [roleRef(dir, m.performer)],
        reasonReference: m.reasons.map((k) => diagnosisRef.get(k) as Reference<Condition>),
        patientInstruction: m.description,
      } satisfies ServiceRequest),
      display: m.title,
    },
  }));
  const careTeam = create({
    resourceType: 'CareTeam',
    status: 'active',
    name: `Behandlingsteam for ${fullName(person)}`,
    subject: patientRef,
    period: { start: agreed },
    participant: plan.careTeam.map((m) => {
      // The role names the organisation (ctm-1 allows onBehalfOf only for a Practitioner member).
      if ('clinician' in m) return { role: [{ text: m.role }], member: roleRef(dir, m.clinician) };
      if ('relative' in m) return { role: [{ text: m.role }], member: relativeRef.get(m.relative) as Reference<RelatedPerson> };
      return { role: [{ text: m.role }], member: { ...patientRef, display: fullName(person) } };
    }),
    managingOrganization: [{ ...ref(dir.organisation.get(clinicianByKey(plan.author).organisation) as Organization) }],
  } satisfies CareTeam);

  const mainDiagnosis = draft.carePlan.addresses?.[0]?.reference;
  put({
    ...draft.carePlan,
    extension: individualZones(draft.carePlan.extension ?? [], plan, gpPhone),
    status: 'active',
    period: { start: agreed },
    created: agreed,
    careTeam: [{ reference: careTeam }],
    addresses: [...(draft.carePlan.addresses ?? []), ...[...diagnosisRef.values()].filter((d) => d.reference !== mainDiagnosis)],
    // The plan shows each goal's text: the own goal's is now the patient's words.
    goal: [...(draft.carePlan.goal ?? []).map((g) => (g.reference === ownGoal ? { ...g, display: plan.ownGoal } : g)), ...extraGoals],
    activity: [...(draft.carePlan.activity ?? []), ...extraMeasures],
    contributor: [{ ...patientRef, display: fullName(person) }, ...relativeRef.values()],
    note: [{ text: plan.note, time: `${agreed}T12:00:00Z`, authorString: fullName(clinicianByKey(plan.author)) }],
  } satisfies CarePlan);

  const done = await s.as<Bundle>(author, transaction(entries), `completing ${plan.patient}'s plan`);
  return results(done).find((r): r is CarePlan => r.resourceType === 'CarePlan') as CarePlan;
}

/** Publishing to the patient, and approval as far as the plan says. */
async function publishAndApprove(c: PlanContext, carePlan: CarePlan): Promise<void> {
  const { s, plan } = c;
  const nin = citizenByKey(plan.patient).pid;
  const path = `CarePlan/${carePlan.id as string}`;
  await s.as(s.personnel(plan.author, nin), operation(`${path}/$publish`, []), `publishing ${plan.patient}'s plan`);
  const { requestedBy, givenBy, comment } = plan.approval;
  const note = comment ? [{ name: 'comment', valueString: comment }] : [];
  if (requestedBy) {
    await s.as(s.personnel(requestedBy, nin), operation(`${path}/$approval`, [{ name: 'action', valueCode: 'request' }, ...note]), `requesting approval of ${plan.patient}'s plan`);
  }
  if (givenBy) {
    await s.as(s.personnel(givenBy, nin), operation(`${path}/$approval`, [{ name: 'action', valueCode: 'give' }, ...(requestedBy ? [] : note)]), `approving ${plan.patient}'s plan`);
  }
}

/** The patient's daily check-ins, oldest first, as the patient (or the parent) sends them. */
async function checkIn(c: PlanContext, carePlan: CarePlan): Promise<number> {
  const { s, plan, patient } = c;
  const by = s.citizen(plan.citizen, plan.patient);
  for (const ci of [...plan.checkIns].sort((a, b) => b.daysAgo - a.daysAgo || b.minutesEarlier - a.minutesEarlier)) {
    const observation: Observation = {
      resourceType: 'Observation',
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey', display: 'Survey' }] }],
      code: { coding: [{ ...CHECK_IN_CODE }], text: CHECK_IN_CODE.display },
      subject: ref(patient),
      basedOn: [ref(carePlan)],
      effectiveDateTime: new Date(c.now - ci.daysAgo * DAY - ci.minutesEarlier * 60_000).toISOString(),
      performer: [ref(patient)],
      valueCodeableConcept: { coding: [{ system: CODE_SYSTEM.zone, code: ci.zone, display: ZONE_DISPLAY[ci.zone] }] },
      ...(ci.measurements?.length
        ? { component: ci.measurements.map((m) => ({ code: MEASUREMENT[m.measurement], valueQuantity: quantity(m.value, m.unit) })) }
        : {}),
      ...(ci.note ? { note: [{ text: ci.note }] } : {}),
    };
    await s.as(by, post(observation), `${plan.patient}'s check-in`);
  }
  return plan.checkIns.length;
}

// ---------------------------------------------------------------------------------------------

/** Health personnel from the population, working on one patient (`nhn-patient-nin`) through the seed's client, with its consent. */
export function demoPersonnel(key: string, patientNin: string, scopes: ApiScopes): Personnel {
  const c = clinicianByKey(key);
  const org = organisation(c.organisation);
  return {
    kind: 'personnel',
    pid: c.pid,
    hpr: c.hpr,
    name: fullName(c),
    role: { system: NO.personnelCategory, code: c.role },
    orgnrParent: org.orgnrParent,
    orgnrChild: org.orgnrChild,
    clientId: SEED_CLIENT.id,
    clientName: SEED_CLIENT.name,
    sourceSystem: SEED_CLIENT.name,
    accessBasis: 'SAMTYKKE',
    patientNin,
    scopes: new Set([scopes.read, scopes.write]),
  };
}

/**
 * Seeds the demo data if the database has never held a Patient; otherwise changes nothing. One
 * transaction: all of it or none of it.
 */
export async function seedDemoData(engine: FhirEngine, settings: SeedSettings, logger?: Pick<Logger, 'info'>): Promise<SeedResult> {
  const started = performance.now();
  const db = engine.services.db;
  const result = await db.transaction(async (tx): Promise<Omit<SeedResult, 'ms'>> => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [SEED_LOCK]);
    // Deleted patients count: a database that has held patients is not the empty one to fill.
    const [existing] = await tx.query<{ found: boolean }>(`SELECT EXISTS (SELECT 1 FROM resources WHERE type = 'Patient') AS found`);
    if (existing?.found) return { seeded: false, reason: 'the database already has patients', patients: 0, plans: 0, checkIns: 0, flags: 0 };

    const s = new Seeder(engine, tx, settings);
    const now = Date.now();
    const dir = await seedDirectory(s);
    let checkIns = 0;
    for (const plan of DEMO_PLANS) {
      const template = TEMPLATES.find((t) => t.key === plan.template);
      if (!template) throw new SeedError(`demo data: there is no template ${plan.template}`);
      const patient = await registerPatient(s, dir, plan.patient, plan.gp);
      const c: PlanContext = { s, dir, plan, template, patient, now };
      const carePlan = await completePlan(c, await draftPlan(c));
      await publishAndApprove(c, carePlan);
      checkIns += await checkIn(c, carePlan);
    }
    for (const p of PATIENTS_WITHOUT_PLAN) await registerPatient(s, dir, p.patient, p.gp);
    const flags = await s.system<Bundle>({ method: 'GET', path: 'Flag', query: [['_summary', 'count']] }, 'counting flags');
    return { seeded: true, patients: DEMO_PLANS.length + PATIENTS_WITHOUT_PLAN.length, plans: DEMO_PLANS.length, checkIns, flags: flags.total ?? 0 };
  });
  const ms = Math.round(performance.now() - started);
  if (result.seeded) {
    logger?.info(
      { patients: result.patients, plans: result.plans, checkIns: result.checkIns, flags: result.flags, ms },
      'demo data seeded: synthetic organisations, health personnel, patients with plans and check-ins',
    );
  } else logger?.info({ reason: result.reason }, 'demo data not seeded');
  return { ...result, ms };
}

/**
 * At start (main.ts): seeds when SEED_DEMO_DATA is on. A failure is logged and the server serves
 * on without demo data — the seed is one transaction, so nothing of it is left behind.
 */
export async function seedOnStart(engine: FhirEngine, config: Pick<Config, 'baseUrl' | 'security' | 'seedDemoData'>, logger: Logger): Promise<SeedResult | undefined> {
  if (!config.seedDemoData) return undefined;
  try {
    return await seedDemoData(engine, config, logger);
  } catch (err) {
    logger.error({ err }, 'demo data could not be seeded; serving without it');
    return undefined;
  }
}
