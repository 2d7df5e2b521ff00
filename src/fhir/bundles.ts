/**
 * Bundles written as text: stored resources are spliced in as the JSON they were stored as, so a
 * search or history page is never parsed and re-serialised resource by resource.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';

export interface BundleLink {
  relation: 'self' | 'next' | 'previous';
  url: string;
}

export interface BundleEntryText {
  fullUrl?: string;
  /** JSON text of the resource, if the entry carries one. */
  resource?: string;
  /** Other members of the entry (search, request, response), serialised with JSON.stringify. */
  extra?: Record<string, unknown>;
}

export function fullUrl(baseUrl: string, type: string, id: string): string {
  return `${baseUrl}/${type}/${id}`;
}

export function bundleText(type: string, options: { total?: number; link?: BundleLink[]; entries: BundleEntryText[] }): string {
  const head: Record<string, unknown> = {
    resourceType: 'Bundle',
    id: crypto.randomUUID(),
    meta: { lastUpdated: new Date().toISOString() },
    type,
  };
  if (options.total !== undefined) head.total = options.total;
  if (options.link?.length) head.link = options.link;
  const headText = JSON.stringify(head);
  // FHIR JSON has no empty arrays: a Bundle without entries has no `entry` member.
  if (!options.entries.length) return headText;
  return `${headText.slice(0, -1)},"entry":[${options.entries.map(entryText).join(',')}]}`;
}

/** The entry members of a search match and of an included resource: constants, serialised once. */
export const SEARCH_MATCH = Object.freeze({ search: Object.freeze({ mode: 'match' }) });
export const SEARCH_INCLUDE = Object.freeze({ search: Object.freeze({ mode: 'include' }) });

const serialised = new WeakMap<object, string>();

/** `extra` as JSON members without the braces; a frozen object's text is kept for the next entry. */
function members(extra: Record<string, unknown>): string {
  let text = serialised.get(extra);
  if (text === undefined) {
    text = JSON.stringify(extra).slice(1, -1);
    if (Object.isFrozen(extra)) serialised.set(extra, text);
  }
  return text;
}

function entryText(e: BundleEntryText): string {
  let text = e.fullUrl !== undefined ? `"fullUrl":${JSON.stringify(e.fullUrl)}` : '';
  if (e.resource !== undefined) text += `${text ? ',' : ''}"resource":${e.resource}`;
  const extra = e.extra ? members(e.extra) : '';
  if (extra) text += `${text ? ',' : ''}${extra}`;
  return `{${text}}`;
}

/** An entry carrying an OperationOutcome about the search itself (e.g. ignored parameters). */
export function outcomeEntry(outcome: OperationOutcome): BundleEntryText {
  return { resource: JSON.stringify(outcome), extra: { search: { mode: 'outcome' } } };
}
