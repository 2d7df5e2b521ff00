/** Parsing of Reference.reference strings, shared by indexing, includes and Bundle processing. */

const ID = '[A-Za-z0-9\\-.]{1,64}';
const LOCAL_RE = new RegExp(`^([A-Z][A-Za-z]+)/(${ID})(?:/_history/(${ID}))?$`);

export interface LocalReference {
  type: string;
  id: string;
  version?: string;
}

/**
 * "Patient/123", "Patient/123/_history/2", or an absolute URL on this server's base, as a local
 * reference. Returns undefined for external URLs, contained (#) and urn: references.
 */
export function parseLocalReference(reference: string, baseUrl?: string): LocalReference | undefined {
  let rel = reference;
  if (baseUrl && reference.startsWith(`${baseUrl}/`)) rel = reference.slice(baseUrl.length + 1);
  const m = LOCAL_RE.exec(rel);
  if (!m) return undefined;
  return { type: m[1] as string, id: m[2] as string, ...(m[3] ? { version: m[3] } : {}) };
}

export const ID_RE = new RegExp(`^${ID}$`);
