/**
 * _summary and _elements: returning part of a resource. The summary elements come from the
 * `isSummary` flags of the official StructureDefinitions; a subsetted resource is marked with the
 * SUBSETTED tag, as the spec requires, so nobody mistakes it for the whole resource.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { Summary } from '../search/query.js';
import { type StoredText, textOf } from '../store/db.js';
import { definitions } from './definitions.js';

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };

interface TypeElements {
  /** Top-level element names marked isSummary (choice elements as their stem, e.g. "value"). */
  summary: Set<string>;
  /** Top-level elements with min > 0. */
  mandatory: Set<string>;
  choices: Set<string>;
}

const cache = new Map<string, TypeElements>();

function elementsOf(type: string): TypeElements {
  let result = cache.get(type);
  if (result) return result;
  result = { summary: new Set(), mandatory: new Set(), choices: new Set() };
  const sd = definitions().structureDefinitions.get(type);
  for (const el of sd?.snapshot?.element ?? []) {
    const parts = (el.path ?? '').split('.');
    if (parts.length !== 2) continue;
    let name = parts[1] as string;
    if (name.endsWith('[x]')) {
      name = name.slice(0, -3);
      result.choices.add(name);
    }
    if (el.isSummary) result.summary.add(name);
    if ((el.min ?? 0) > 0) result.mandatory.add(name);
  }
  cache.set(type, result);
  return result;
}

/** The element stem a JSON key belongs to: "valueQuantity" → "value" for a choice, "_birthDate" → "birthDate". */
function stem(key: string, choices: Set<string>): string {
  const name = key.startsWith('_') ? key.slice(1) : key;
  for (const c of choices) {
    if (name.length > c.length && name.startsWith(c) && /[A-Z]/.test(name[c.length] as string)) return c;
  }
  return name;
}

function keep(resource: Resource, predicate: (stem: string) => boolean, choices: Set<string>): Resource {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resource)) {
    if (key === 'resourceType' || key === 'id' || key === 'meta' || predicate(stem(key, choices))) result[key] = value;
  }
  const meta = { ...(resource.meta ?? {}) };
  meta.tag = [...(meta.tag ?? []), SUBSETTED];
  result.meta = meta;
  return result as unknown as Resource;
}

/** Applies _summary / _elements to a stored resource's JSON text; returns the text unchanged when neither applies. */
export function subset(content: StoredText, summary: Summary | undefined, elements: string[] | undefined): StoredText {
  if ((!summary || summary === 'false') && !elements?.length) return content;
  const resource = JSON.parse(textOf(content)) as Resource;
  const info = elementsOf(resource.resourceType);
  let result: Resource;
  if (elements?.length) {
    const wanted = new Set(elements.map((e) => e.replace(/^[A-Z][A-Za-z]*\./, '')));
    result = keep(resource, (s) => wanted.has(s) || info.mandatory.has(s), info.choices);
  } else if (summary === 'true') {
    result = keep(resource, (s) => info.summary.has(s), info.choices);
  } else if (summary === 'text') {
    result = keep(resource, (s) => s === 'text' || info.mandatory.has(s), info.choices);
  } else if (summary === 'data') {
    result = keep(resource, (s) => s !== 'text', info.choices);
  } else return content;
  return JSON.stringify(result);
}
