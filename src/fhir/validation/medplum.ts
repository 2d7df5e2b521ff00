/**
 * Runs `@medplum/core`'s validator (structure, cardinality, primitive formats, unknown
 * properties, fixed/pattern values, slicing, reference types, FHIRPath invariants) against the
 * base type — and, for a profile, only the slicing of the resource's own elements (the rest of a
 * profile is checked by profile-constraints.ts, which says why) — and turns its
 * findings into Samplan issues: the Samplan error code, instance paths with the JSON property
 * names of choice elements (`Observation.valueQuantity`, not `Observation.value[x]`), and
 * messages that say what was wrong.
 */
import { OperationOutcomeError, validateResource as medplumValidate } from '@medplum/core';
import type { OperationOutcomeIssue, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { validationIssue, type Issues } from './issues.js';
import { isObject } from './walk.js';

export function medplumIssues(resource: Record<string, unknown>, profile?: StructureDefinition): Issues {
  let raw: OperationOutcomeIssue[];
  try {
    raw = medplumValidate(resource as unknown as Resource, profile ? { profile } : undefined);
  } catch (err) {
    if (!(err instanceof OperationOutcomeError)) return [incomplete(err instanceof Error ? err.message : String(err), resource)];
    raw = err.outcome.issue ?? [];
  }
  return raw.filter((i) => !isAbsoluteReferenceWarning(i, resource)).map((i) => convert(i, resource));
}

const SLICE_COUNT = 'Incorrect number of values provided for slice ';

/**
 * The slice counts of a profile reduced to its slicing (profile-constraints.ts): Medplum is asked
 * only about those; everything else it finds on that partial definition is noise or a repeat.
 */
export function sliceIssues(resource: Record<string, unknown>, slicing: StructureDefinition): Issues {
  return medplumIssues(resource, slicing).filter((i) => isIncomplete(i) || i.details?.text?.startsWith(SLICE_COUNT));
}

/**
 * Medplum takes the text before the first `/` as the target type, so every absolute reference
 * (`https://host/fhir/Patient/1`) gets a bogus "got http:" warning; those are dropped.
 */
function isAbsoluteReferenceWarning(raw: OperationOutcomeIssue, resource: Record<string, unknown>): boolean {
  if (!raw.details?.text?.startsWith('Invalid reference: got "')) return false;
  const reference = locate(`${raw.expression?.[0] ?? ''}.reference`, resource).value;
  return typeof reference === 'string' && isAbsoluteReference(reference);
}

/** A reference with a scheme (`urn:uuid:…`, `https://…`) rather than `Type/id`. */
export function isAbsoluteReference(reference: string): boolean {
  return /^[a-z][a-z0-9+.-]*:/i.test(reference);
}

const INCOMPLETE = 'The resource could not be fully validated: ';

/** Medplum stopped part-way (it throws on e.g. an unknown nested resource type). */
function incomplete(reason: string, resource: Record<string, unknown>): OperationOutcomeIssue {
  return validationIssue('error', 'structure', INCOMPLETE + reason, resource.resourceType as string);
}

export function isIncomplete(issue: OperationOutcomeIssue): boolean {
  return issue.details?.text?.startsWith(INCOMPLETE) ?? false;
}

function convert(raw: OperationOutcomeIssue, resource: Record<string, unknown>): OperationOutcomeIssue {
  const text = raw.details?.text ?? raw.diagnostics ?? 'Invalid value';
  const expression = raw.expression?.[0];
  if (!expression) return incomplete(text, resource);
  const located = locate(expression, resource);
  return validationIssue(raw.severity ?? 'error', raw.code ?? 'invalid', rephrase(text, located), located.path);
}

interface Located {
  readonly path: string;
  readonly value: unknown;
  readonly found: boolean;
}

/**
 * Follows a Medplum path (`Observation.value[x].code`, `Patient.name[0].given[1]`) through the
 * instance, replacing each `name[x]` by the JSON key actually present, and returns the value there.
 */
function locate(expression: string, resource: Record<string, unknown>): Located {
  const [head, ...segments] = expression.split('.');
  const out: string[] = [head ?? ''];
  let current: unknown = resource;
  let found = true;
  for (const segment of segments) {
    const match = /^([^[]+?)(\[x])?((?:\[\d+])*)$/.exec(segment);
    if (!match || !found || !isObject(current)) {
      out.push(segment);
      found = false;
      continue;
    }
    const [, name = '', choice, indexes = ''] = match;
    const key = choice ? (Object.keys(current).find((k) => k.startsWith(name) && /^[A-Z]/.test(k.slice(name.length))) ?? `${name}[x]`) : name;
    out.push(key + indexes);
    current = current[key];
    for (const index of indexes.matchAll(/\[(\d+)]/g)) current = Array.isArray(current) ? current[Number(index[1])] : undefined;
    if (current === undefined) found = false;
  }
  return { path: out.join('.'), value: current, found };
}

/** Medplum's terse messages, said in full. */
function rephrase(text: string, at: Located): string {
  const last = at.path.slice(at.path.lastIndexOf('.') + 1).replace(/\[\d+]$/, '');
  // Only when quoted: an array of thousands of wrong values gives an issue per element, and
  // writing out the whole array for each of them took quadratic time (seconds, blocking the server).
  const shown = () => (typeof at.value === 'string' ? `"${at.value}"` : JSON.stringify(at.value));
  if (text === 'Missing required property') return `Missing required element '${last}' at ${at.path}`;
  const unknown = /^Invalid additional property "(.*)"$/.exec(text);
  if (unknown) return `Unrecognized property '${unknown[1]}' at ${at.path}: it is not an element of this type`;
  const format = /^Invalid (\w+) format$/.exec(text);
  if (format && at.found) return `Not a valid ${format[1]}: ${shown()} at ${at.path}`;
  const number = /^Invalid number of values: (.*)$/.exec(text);
  if (number) return `Wrong number of values for ${at.path}: ${number[1]}`;
  if (text.startsWith('Constraint ')) return text.replace(/^Constraint (\S+) not met:/, `Constraint failed: $1 at ${at.path}:`);
  return `${text} at ${at.path}${at.found && at.value !== undefined && typeof at.value !== 'object' ? ` (value ${shown()})` : ''}`;
}
