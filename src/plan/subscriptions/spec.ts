/**
 * What a Subscription resource asks for, read and checked: which patient, which resource types,
 * which further search parameters, where to deliver, and how much to say. Pure (no database), so
 * the write hook, the access rules and the delivery worker all read a Subscription the same way.
 *
 * Two forms are accepted (R4):
 * - classic: `criteria` is a search URL on a type of the plan, `CarePlan?patient=Patient/123`;
 * - topic-based (Subscriptions R5 Backport, R4 profile): `criteria` is the topic canonical
 *   PLAN_CHANGED_TOPIC and the backport filter-criteria extension on `criteria` narrows it,
 *   `patient=Patient/123` (every type of plan content) or `CarePlan?patient=Patient/123&status=active`.
 * Either way exactly one patient is named (`patient` or `subject`, by id, or with `:identifier` by
 * national id), and it is read as that patient's compartment: a subscription never reports a
 * change outside it.
 */
import type { Resource } from '@medplum/fhirtypes';
import { definitions } from '../../fhir/definitions.js';
import { ErrorCode, errors, FhirError, issue } from '../../fhir/outcomes.js';
import { ID_RE } from '../../fhir/references.js';
import { isValidNin, NIN_SYSTEMS } from '../../no/identifiers.js';
import { parseSearch } from '../../search/parse.js';
import { EXTENSION, TOPIC } from '../conventions.js';

/** "A patient's plan changed": any write to plan content in the patient's compartment. */
export const PLAN_CHANGED_TOPIC = TOPIC.planChanged;

export const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport';

export const SUBSCRIPTION_EXTENSION = {
  filterCriteria: `${BACKPORT}/StructureDefinition/backport-filter-criteria`,
  payloadContent: `${BACKPORT}/StructureDefinition/backport-payload-content`,
  /** The client's signing secret: accepted on create/update, never stored in the resource. */
  secret: EXTENSION.subscriptionSecret,
  /** Set by the server: the client_id that owns the Subscription. */
  owner: EXTENSION.subscriptionOwner,
} as const;

/**
 * What the CapabilityStatement says on Subscription: the topics offered, with the backport's
 * extension (R4 has no SubscriptionTopic resource to search).
 */
export const SUBSCRIPTION_CAPABILITY_EXTENSIONS: ReadonlyArray<{ url: string; valueCanonical: string }> = [
  { url: `${BACKPORT}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical`, valueCanonical: PLAN_CHANGED_TOPIC },
];

export const BACKPORT_PROFILE = {
  notification: `${BACKPORT}/StructureDefinition/backport-subscription-notification-r4`,
  status: `${BACKPORT}/StructureDefinition/backport-subscription-status-r4`,
  statusOperation: `${BACKPORT}/OperationDefinition/backport-subscription-status`,
} as const;

/** Types a classic Subscription may name: the resources a patient's plan is made of. */
export const PLAN_TYPES: readonly string[] = ['CarePlan', 'Goal', 'ServiceRequest', 'Condition', 'CareTeam', 'Observation', 'Task', 'Flag'];

/** In the patient's compartment but not plan content, or about the record rather than the plan. */
const NOT_NOTIFYING: ReadonlySet<string> = new Set(['Patient', 'Consent', 'Provenance', 'AuditEvent', 'Subscription']);

let notifying: ReadonlySet<string> | undefined;

/** Whether a write of `type` can cause notifications: plan content in a patient compartment. */
export function notifies(type: string): boolean {
  // The Patient CompartmentDefinition, as the access rules read it (security/policy.ts; not
  // imported from there, as the access rules import this module).
  notifying ??= new Set(
    (definitions().patientCompartment.resource ?? [])
      .filter((r) => (r.param ?? []).length > 0 && !NOT_NOTIFYING.has(r.code as string))
      .map((r) => r.code as string),
  );
  return notifying.has(type);
}

export const FHIR_JSON = 'application/fhir+json';

export type PatientRef = { id: string } | { nin: string };

/** none: a classic R4 ping without a body; empty / id-only: a notification Bundle. */
export type PayloadContent = 'none' | 'empty' | 'id-only';

export interface SubscriptionSpec {
  /** The topic canonical; undefined for a classic Subscription. */
  topic?: string;
  patient: PatientRef;
  /** Resource types watched; empty: every type of plan content. */
  types: string[];
  /** Further search parameters on `types[0]` (a query string), undefined when the compartment is enough. */
  filter?: string;
  payload: PayloadContent;
  endpoint: string;
  /** `Name: value` lines from channel.header. */
  headers: string[];
  end?: string;
}

/** Parameters that shape a result rather than select resources: meaningless for a subscription. */
const RESULT_PARAMS = new Set(['_sort', '_count', '_total', '_summary', '_elements', '_include', '_revinclude', '_cursor', '_format', '_pretty', '_type', '_contained', '_containedType']);

/** Headers Samplan sets itself; a subscription may not override them. */
const RESERVED_HEADERS = new Set(['host', 'content-type', 'content-length', 'transfer-encoding', 'connection', 'x-samplan-signature', 'user-agent', 'expect', 'te', 'upgrade', 'keep-alive', 'proxy-authorization', 'trailer']);
const HEADER_RE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}):[ \t]*([^\r\n\0]{0,4000})$/;

const invalid = (message: string, expression: string): FhirError => errors.badRequest(message, expression);

type Loose = Record<string, unknown>;
const asObject = (v: unknown): Loose | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Loose) : undefined);
const extensionsOf = (host: unknown, url: string): Loose[] => {
  const list = asObject(host)?.extension;
  return Array.isArray(list) ? list.filter((e): e is Loose => asObject(e)?.url === url) : [];
};

/** The value of a simple extension on a primitive's `_element`, e.g. `_criteria`. */
function primitiveExtensions(parent: Loose | undefined, element: string, url: string): Loose[] {
  return extensionsOf(parent?.[`_${element}`], url);
}

/**
 * Reads and checks a Subscription. Throws a 400 FhirError naming the element at fault. With
 * `baseUrl` the further search parameters are parsed as a search would parse them (unknown
 * parameters are refused); the access rules call it without, as they only need the patient.
 */
export function readSubscription(resource: Resource, baseUrl?: string): SubscriptionSpec {
  const r = resource as unknown as Loose;
  const channel = asObject(r.channel);
  if (!channel) throw invalid('A Subscription needs a channel (type rest-hook and an endpoint)', 'Subscription.channel');
  if (channel.type !== 'rest-hook') {
    throw invalid(`Only rest-hook subscriptions are supported (channel.type is ${JSON.stringify(channel.type ?? null)})`, 'Subscription.channel.type');
  }
  const endpoint = readEndpoint(channel.endpoint);
  const headers = readHeaders(channel.header);
  const criteria = r.criteria;
  if (typeof criteria !== 'string' || criteria.trim() === '') {
    throw invalid('A Subscription needs criteria: a search such as CarePlan?patient=Patient/123, or the topic ' + PLAN_CHANGED_TOPIC, 'Subscription.criteria');
  }
  const end = typeof r.end === 'string' ? r.end : undefined;
  const payloadMime = channel.payload;
  if (payloadMime !== undefined && payloadMime !== FHIR_JSON) {
    throw invalid(`channel.payload must be ${FHIR_JSON} or absent, not ${JSON.stringify(payloadMime)}`, 'Subscription.channel.payload');
  }
  const contentExtensions = primitiveExtensions(channel, 'payload', SUBSCRIPTION_EXTENSION.payloadContent);
  if (contentExtensions.length > 1) throw invalid('channel.payload may carry one payload-content extension', 'Subscription.channel.payload');
  const content = contentExtensions[0]?.valueCode;
  if (content !== undefined && content !== 'empty' && content !== 'id-only') {
    throw invalid(
      content === 'full-resource'
        ? 'full-resource notifications are not offered: notifications never carry health information. Use id-only (the ids of the changed resources, read them with your own token) or empty'
        : `The payload content must be empty or id-only, not ${JSON.stringify(content)}`,
      'Subscription.channel.payload',
    );
  }
  if (content !== undefined && payloadMime === undefined) {
    throw invalid(`A payload content needs channel.payload ${FHIR_JSON}`, 'Subscription.channel.payload');
  }

  const filters = primitiveExtensions(r, 'criteria', SUBSCRIPTION_EXTENSION.filterCriteria);
  let topic: string | undefined;
  let search: string;
  if (/^[a-z][a-z0-9+.-]*:/i.test(criteria)) {
    if (criteria !== PLAN_CHANGED_TOPIC) {
      throw invalid(`Unknown subscription topic ${JSON.stringify(criteria.slice(0, 200))}; Samplan offers ${PLAN_CHANGED_TOPIC}`, 'Subscription.criteria');
    }
    topic = criteria;
    if (filters.length !== 1 || typeof filters[0]?.valueString !== 'string') {
      throw invalid(
        `The topic ${PLAN_CHANGED_TOPIC} needs exactly one filter (extension ${SUBSCRIPTION_EXTENSION.filterCriteria} on criteria, valueString) naming the patient, e.g. patient=Patient/123`,
        'Subscription.criteria',
      );
    }
    search = filters[0].valueString as string;
  } else {
    if (filters.length) throw invalid('Filter criteria extensions belong to topic-based subscriptions; put the search in criteria', 'Subscription.criteria');
    search = criteria;
  }
  const payload: PayloadContent = topic
    ? ((content as PayloadContent | undefined) ?? 'empty')
    : payloadMime === undefined
      ? 'none'
      : ((content as PayloadContent | undefined) ?? 'id-only');
  const { patient, types, filter } = readCriteria(search, !!topic, baseUrl);
  return { ...(topic ? { topic } : {}), patient, types, ...(filter ? { filter } : {}), payload, endpoint, headers, ...(end ? { end } : {}) };
}

function readEndpoint(value: unknown): string {
  const at = 'Subscription.channel.endpoint';
  if (typeof value !== 'string' || value === '') throw invalid('A rest-hook Subscription needs channel.endpoint: the http(s) URL notifications are posted to', at);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`channel.endpoint is not a URL: ${JSON.stringify(value.slice(0, 200))}`, at);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw invalid(`channel.endpoint must be an http or https URL, not ${url.protocol.replace(/:$/, '')}`, at);
  }
  if (url.username || url.password) throw invalid('channel.endpoint must not contain credentials; send them with channel.header', at);
  if (value.length > 2048) throw invalid('channel.endpoint is longer than 2048 characters', at);
  return value;
}

function readHeaders(value: unknown): string[] {
  if (value === undefined) return [];
  const at = 'Subscription.channel.header';
  if (!Array.isArray(value)) throw invalid('channel.header must be a list of "Name: value" strings', at);
  if (value.length > 20) throw invalid('channel.header may have at most 20 headers', at);
  return value.map((h, i) => {
    const m = typeof h === 'string' ? HEADER_RE.exec(h) : null;
    if (!m) throw invalid(`channel.header[${i}] must be "Name: value" (a header name, a colon, a value without line breaks)`, `${at}[${i}]`);
    if (RESERVED_HEADERS.has((m[1] as string).toLowerCase())) throw invalid(`channel.header[${i}]: Samplan sets ${m[1]} itself`, `${at}[${i}]`);
    return `${m[1]}: ${m[2]}`;
  });
}

/** Splits `[Type]?params` into the patient, the types and the further parameters. */
function readCriteria(search: string, isTopic: boolean, baseUrl: string | undefined): { patient: PatientRef; types: string[]; filter?: string } {
  const at = 'Subscription.criteria';
  const q = search.indexOf('?');
  const typePart = q >= 0 ? search.slice(0, q) : isTopic && !search.includes('=') ? search : isTopic ? '' : search;
  const queryPart = q >= 0 ? search.slice(q + 1) : isTopic && search.includes('=') ? search : '';
  let type: string | undefined;
  if (typePart !== '') {
    if (!PLAN_TYPES.includes(typePart)) {
      throw invalid(
        `Subscriptions can watch the resources of a patient's plan (${PLAN_TYPES.join(', ')}), not ${JSON.stringify(typePart.slice(0, 64))}`,
        at,
      );
    }
    type = typePart;
  } else if (!isTopic) {
    throw invalid('The criteria must start with a resource type, e.g. CarePlan?patient=Patient/123', at);
  }
  const params = [...new URLSearchParams(queryPart).entries()];
  let patient: PatientRef | undefined;
  const others: Array<[string, string]> = [];
  for (const [name, value] of params) {
    const [code, modifier, ...rest] = name.split(':');
    if (code === 'patient' || code === 'subject') {
      if (rest.length) throw invalid(`Malformed parameter "${name}" in the criteria`, at);
      if (patient) throw invalid('The criteria may name one patient only', at);
      patient = readPatient(code, modifier, value, baseUrl);
      continue;
    }
    if (RESULT_PARAMS.has(code as string)) throw invalid(`${code} shapes search results and has no meaning in subscription criteria`, at);
    others.push([name, value]);
  }
  if (!patient) {
    throw invalid('The criteria must name the patient: patient=Patient/<id> (or patient:identifier=<national id system>|<national id>)', at);
  }
  if (others.length && !type) {
    throw invalid(`To filter by ${others.map(([n]) => n).join(', ')}, name a resource type, e.g. CarePlan?patient=Patient/123&status=active`, at);
  }
  if (others.length && baseUrl !== undefined) {
    try {
      parseSearch(type, others, { strict: true, baseUrl });
    } catch (err) {
      if (!(err instanceof FhirError)) throw err;
      throw new FhirError(400, issue({ code: 'invalid', errorCode: ErrorCode.InvalidSearch, message: `The criteria are not a valid search: ${err.message}`, expression: at }));
    }
  }
  return { patient, types: type ? [type] : [], ...(others.length ? { filter: new URLSearchParams(others).toString() } : {}) };
}

function readPatient(code: string, modifier: string | undefined, value: string, baseUrl: string | undefined): PatientRef {
  const at = 'Subscription.criteria';
  if (value.includes(',')) throw invalid('The criteria may name one patient only (no comma-separated list)', at);
  if (modifier === 'identifier') {
    const bar = value.indexOf('|');
    const system = bar >= 0 ? value.slice(0, bar) : undefined;
    const nin = bar >= 0 ? value.slice(bar + 1) : value;
    if ((system !== undefined && !NIN_SYSTEMS.includes(system)) || !isValidNin(nin)) {
      throw invalid(`${code}:identifier must be a Norwegian national id (fødselsnummer or D-nummer), optionally with its system (${NIN_SYSTEMS.join(' or ')})`, at);
    }
    return { nin };
  }
  if (modifier !== undefined && modifier !== 'Patient') throw invalid(`Modifier :${modifier} is not supported on ${code} in subscription criteria`, at);
  let ref = value;
  if (baseUrl && ref.startsWith(`${baseUrl}/`)) ref = ref.slice(baseUrl.length + 1);
  const m = /^(?:Patient\/)?([^/]+)$/.exec(ref);
  const bare = m && !ref.startsWith('Patient/');
  if (!m || !ID_RE.test(m[1] as string) || (bare && code === 'subject' && modifier !== 'Patient')) {
    throw invalid(`${code} must name a patient on this server, as Patient/<id>`, at);
  }
  return { id: m[1] as string };
}

/** The owner recorded in a stored Subscription (undefined: the server's own). */
export function ownerOf(resource: Resource | undefined): string | undefined {
  const value = extensionsOf(resource, SUBSCRIPTION_EXTENSION.owner)[0]?.valueString;
  return typeof value === 'string' ? value : undefined;
}

/** The secret supplied with a write, if any. */
export function secretOf(resource: Resource): unknown {
  const found = extensionsOf(resource, SUBSCRIPTION_EXTENSION.secret);
  return found.length ? (found[0]?.valueString ?? null) : undefined;
}

/** The resource without the secret and owner extensions (the server sets the owner itself). */
export function withoutServerExtensions(resource: Resource): Resource {
  const r = resource as unknown as Loose;
  if (!Array.isArray(r.extension)) return resource;
  const kept = r.extension.filter((e) => {
    const url = asObject(e)?.url;
    return url !== SUBSCRIPTION_EXTENSION.secret && url !== SUBSCRIPTION_EXTENSION.owner;
  });
  const { extension: _dropped, ...rest } = r;
  return (kept.length ? { ...rest, extension: kept } : rest) as unknown as Resource;
}

/** The resource with the owner extension set (or removed, for the server's own). */
export function withOwner(resource: Resource, owner: string | undefined): Resource {
  const r = withoutServerExtensions(resource) as unknown as Loose;
  if (owner === undefined) return r as unknown as Resource;
  const extension = [...(Array.isArray(r.extension) ? r.extension : []), { url: SUBSCRIPTION_EXTENSION.owner, valueString: owner }];
  return { ...r, extension } as unknown as Resource;
}
