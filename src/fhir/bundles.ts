/**
 * Bundles written as text: stored resources are spliced in as the JSON they were stored as, so a
 * search or history page is never parsed and re-serialised resource by resource — and when the
 * database gave their text as bytes, never decoded either: the Bundle is then put together as bytes.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import type { StoredText } from '../store/db.js';

export interface BundleLink {
  relation: 'self' | 'next' | 'previous';
  url: string;
}

export interface BundleEntryText {
  fullUrl?: string;
  /** JSON text of the resource, if the entry carries one. */
  resource?: StoredText;
  /** Other members of the entry (search, request, response), serialised with JSON.stringify. */
  extra?: Record<string, unknown>;
}

export function fullUrl(baseUrl: string, type: string, id: string): string {
  return `${baseUrl}/${type}/${id}`;
}

export function bundleText(type: string, options: { total?: number; link?: BundleLink[]; entries: BundleEntryText[] }): StoredText {
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
  // Stored text that came as bytes is spliced in as bytes, never decoded: the Bundle is then bytes.
  const chunks: Buffer[] = [];
  let text = `${headText.slice(0, -1)},"entry":[`;
  options.entries.forEach((e, i) => {
    const [before, resource, after] = entryParts(e);
    text += `${i ? ',' : ''}${before}`;
    if (typeof resource === 'object') {
      chunks.push(Buffer.from(text), resource);
      text = after;
    } else text += resource + after;
  });
  text += ']}';
  if (!chunks.length) return text;
  chunks.push(Buffer.from(text));
  return Buffer.concat(chunks);
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

/** An entry's text: what comes before its resource, the resource ('' for none), and what follows it. */
function entryParts(e: BundleEntryText): [string, StoredText, string] {
  const url = e.fullUrl !== undefined ? `"fullUrl":${JSON.stringify(e.fullUrl)}` : '';
  const extra = e.extra ? members(e.extra) : '';
  if (e.resource === undefined) return [`{${url}${url && extra ? ',' : ''}${extra}}`, '', ''];
  return [`{${url}${url ? ',' : ''}"resource":`, e.resource, `${extra ? ',' : ''}${extra}}`];
}

/** An entry carrying an OperationOutcome about the search itself (e.g. ignored parameters). */
export function outcomeEntry(outcome: OperationOutcome): BundleEntryText {
  return { resource: JSON.stringify(outcome), extra: { search: { mode: 'outcome' } } };
}
