/**
 * The small part of `oidc-provider` (which ships no type declarations) that the embedded
 * identity provider uses. Shapes follow the library's documentation for version 9.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export type AdapterPayload = Record<string, unknown> & {
    grantId?: string;
    uid?: string;
    userCode?: string;
    consumed?: number | boolean;
  };

  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void>;
    find(id: string): Promise<AdapterPayload | undefined>;
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
    findByUid(uid: string): Promise<AdapterPayload | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export interface OidcParams {
    client_id?: string;
    scope?: string;
    [key: string]: unknown;
  }

  export interface InteractionDetails {
    uid: string;
    returnTo: string;
    params: OidcParams;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    session?: { accountId?: string; uid?: string };
    grantId?: string;
    exp: number;
    lastSubmission?: Record<string, unknown>;
    save(ttl: number): Promise<unknown>;
  }

  export interface InteractionResults {
    login?: { accountId: string; acr?: string; amr?: string[]; remember?: boolean; ts?: number };
    consent?: { grantId?: string };
    error?: string;
    error_description?: string;
    [key: string]: unknown;
  }

  export class Grant {
    constructor(properties: { accountId: string; clientId: string });
    jti: string;
    accountId: string;
    clientId: string;
    addOIDCScope(scope: string): void;
    rejectOIDCScope(scope: string): void;
    addResourceScope(resource: string, scope: string): void;
    rejectResourceScope(resource: string, scope: string): void;
    save(ttl?: number): Promise<string>;
  }

  /** What `findAccount` returns. */
  export interface Account {
    accountId: string;
    claims(use: string, scope: string, claims: unknown, rejected: string[]): Record<string, unknown> | Promise<Record<string, unknown>>;
  }

  /** The request context oidc-provider passes to configuration functions (a Koa context). */
  export interface KoaContextWithOIDC {
    method: string;
    path: string;
    oidc: {
      route: string;
      issuer: string;
      client?: { clientId: string };
      params?: Record<string, unknown>;
      session?: { accountId?: string };
      result?: InteractionResults;
      entities: Record<string, unknown>;
    };
    [key: string]: unknown;
  }

  /** An access token (AccessToken or ClientCredentials) as the JWT format customiser sees it. */
  export interface TokenForCustomizer {
    kind: string;
    accountId?: string;
    clientId: string;
    scope?: string;
  }

  export interface StructuredToken {
    header: Record<string, unknown> | undefined;
    payload: Record<string, unknown>;
  }

  export interface ResourceServerInfo {
    scope: string;
    audience?: string;
    accessTokenTTL?: number;
    accessTokenFormat?: 'opaque' | 'jwt';
    jwt?: { sign?: { alg?: string; kid?: string } };
  }

  export type Configuration = Record<string, unknown>;

  export class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    proxy: boolean;
    callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    use(middleware: (ctx: { path: string; method: string; req: IncomingMessage }, next: () => Promise<void>) => Promise<void>): this;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResults,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    on(event: string, listener: (...args: unknown[]) => void): this;
    readonly Grant: typeof Grant;
  }

  type ErrorClass = new (description?: string) => Error & { error: string; error_description?: string; status: number };
  export const errors: {
    InvalidTarget: ErrorClass;
    InvalidClientAuth: ErrorClass;
    InvalidRequest: ErrorClass;
    SessionNotFound: ErrorClass;
    OIDCProviderError: ErrorClass;
  };

  export default Provider;
}

/**
 * The AsyncLocalStorage oidc-provider runs each of its requests in (it has no `exports` map, so
 * the module is reachable). Once run, an AsyncLocalStorage keeps Node's promise hooks on for the
 * whole process until it is disabled.
 */
declare module 'oidc-provider/lib/helpers/als.js' {
  import type { AsyncLocalStorage } from 'node:async_hooks';

  const als: AsyncLocalStorage<unknown>;
  export default als;
}
