/** What the interactions run against: the database, the repository and the write pipeline. */
import type { PageTokens } from '../search/page-tokens.js';
import type { PrivacyLookup } from '../security/privacy.js';
import type { Database, Queryable } from '../store/db.js';
import type { ResourceStore } from '../store/resources.js';
import type { FhirRequest, RequestContext } from './types.js';
import type { ResourceWriter } from './writer.js';

export interface Services {
  db: Database;
  store: ResourceStore;
  writer: ResourceWriter;
  /** Seals the parameters of POSTed searches into their paging links. */
  pages: PageTokens;
  /** A patient's privacy settings by national id (cached: src/security/privacy-cache.ts). */
  privacy: PrivacyLookup;
}

/** One invocation of an interaction: the request, who is asking, and the connection to use (a transaction inside Bundles). */
export interface Call {
  req: FhirRequest;
  ctx: RequestContext;
  q: Queryable;
}
