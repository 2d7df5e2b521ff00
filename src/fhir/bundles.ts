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
  const entries = options.entries.map((e) => {
    const parts: string[] = [];
    if (e.fullUrl !== undefined) parts.push(`"fullUrl":${JSON.stringify(e.fullUrl)}`);
    if (e.resource !== undefined) parts.push(`"resource":${e.resource}`);
    for (const [k, v] of Object.entries(e.extra ?? {})) parts.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    return `{${parts.join(',')}}`;
  });
  return `${headText.slice(0, -1)},"entry":[${entries.join(',')}]}`;
}

/** An entry carrying an OperationOutcome about the search itself (e.g. ignored parameters). */
export function outcomeEntry(outcome: OperationOutcome): BundleEntryText {
  return { resource: JSON.stringify(outcome), extra: { search: { mode: 'outcome' } } };
}
