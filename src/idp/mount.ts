/**
 * Serving oidc-provider (a Koa app) from Fastify under the issuer's path, e.g. `/idp`.
 *
 * - Everything under the path goes to `provider.callback()` with the raw Node request and
 *   response (`reply.hijack()`), from an encapsulated context whose only content-type parser
 *   leaves the body unread, so oidc-provider reads it itself. The rest of the server is untouched.
 * - The path prefix is stripped from `req.url` and the full URL kept in `req.originalUrl`, which
 *   is how oidc-provider learns where it is mounted.
 * - `X-Forwarded-Proto` and `X-Forwarded-Host` are set to the issuer's scheme and host (and the
 *   provider trusts them): every URL it builds — discovery, redirects, the `htu` DPoP proofs must
 *   name, the token endpoint a client assertion may name — is the issuer's, however the request
 *   reached the server.
 * - There is no single sign-on: the session cookie is withheld from the authorization endpoint, so
 *   every authorization request shows the login page (switching persona needs no logout).
 * - The login pages (`<path>/interaction/:uid`) are ordinary Fastify routes.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { InteractionDetails, Provider } from 'oidc-provider';
import providerContext from 'oidc-provider/lib/helpers/als.js';
import {
  accountIdOf,
  authenticationOf,
  clientProfile,
  findPersona,
  type PersonaKind,
  personaOf,
  representationsOf,
  type TokenClaims,
} from './personas.js';
import { actingForPage, errorPage, loginPage, PAGE_HEADERS } from './pages.js';
import { OIDC_SCOPES } from './provider.js';

export interface MountOptions {
  provider: Provider;
  issuer: string;
  audience: string;
  claims: TokenClaims;
  sessionCookie: string;
}

const FORM_LIMIT = 8 * 1024;

/** Removes the named cookies (and their `.sig` companions) from a Cookie header. */
export function withoutCookies(header: string | undefined, names: readonly string[]): string | undefined {
  if (!header) return header;
  const drop = new Set(names.flatMap((n) => [n, `${n}.sig`]));
  const kept = header
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part && !drop.has(part.split('=')[0]?.trim() ?? ''));
  return kept.length ? kept.join('; ') : undefined;
}

export async function mountProvider(app: FastifyInstance, options: MountOptions): Promise<void> {
  const { provider, issuer, audience, claims } = options;
  const url = new URL(issuer);
  const prefix = url.pathname.replace(/\/+$/, '');
  const proto = url.protocol.slice(0, -1);
  const handle = provider.callback();
  // oidc-provider runs each request in an AsyncLocalStorage, which, once used, turns on Node's
  // promise hooks for every promise in the process (about 3 % of a FHIR read's CPU, for tokens
  // issued minutes ago). It is disabled again whenever no identity provider request is running;
  // its next request enables it.
  let running = 0;

  provider.on('server_error', (_ctx, err) => app.log.error({ err }, 'identity provider: server error'));
  provider.on('error', (err) => app.log.error({ err }, 'identity provider: error'));
  // Refused requests: the client sees a terse error (e.g. "client authentication failed"); the reason is logged.
  for (const event of ['grant.error', 'authorization.error', 'pushed_authorization_request.error', 'end_session.error']) {
    provider.on(event, (_ctx, err) => {
      const e = err as { error?: string; error_description?: string; error_detail?: string };
      app.log.info({ event, error: e.error, description: e.error_description, detail: e.error_detail }, 'identity provider: request refused');
    });
  }

  await app.register(async (scope) => {
    // oidc-provider reads request bodies itself: no parser here consumes the stream.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
    scope.route({
      method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      url: `${prefix}/*`,
      exposeHeadRoute: false,
      handler: async (req, reply) => {
        reply.hijack();
        const raw = req.raw as IncomingMessage & { originalUrl?: string };
        const original = raw.url ?? '/';
        const inner = original.slice(prefix.length) || '/';
        raw.originalUrl = original;
        raw.url = inner;
        raw.headers['x-forwarded-proto'] = proto;
        raw.headers['x-forwarded-host'] = url.host;
        if (/^\/auth(\/|\?|$)/.test(inner)) {
          const cookie = withoutCookies(raw.headers.cookie, [options.sessionCookie]);
          if (cookie === undefined) delete raw.headers.cookie;
          else raw.headers.cookie = cookie;
        }
        running++;
        try {
          await handle(raw, reply.raw);
        } finally {
          raw.url = original;
          if (--running === 0) providerContext.disable();
        }
      },
    });
  });

  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT }, (_req, body, done) => {
      done(null, new URLSearchParams(body as string));
    });

    const page = (reply: FastifyReply, status: number, html: string) => reply.code(status).headers(PAGE_HEADERS).send(html);

    // Errors on these pages are pages too (not the FHIR server's OperationOutcomes).
    scope.setErrorHandler((error: { statusCode?: number }, req, reply) => {
      const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
      if (status === 500) req.log.error({ err: error }, 'identity provider: login page failed');
      return page(
        reply,
        status,
        status === 500
          ? errorPage('Noe gikk galt', 'Testinnloggingen fikk en uventet feil.')
          : errorPage('Innloggingen kunne ikke fullføres', 'Skjemaet som ble sendt, kunne ikke leses.'),
      );
    });

    /** The interaction of this request (from its cookie), or an error page sent. */
    const interaction = async (req: FastifyRequest<{ Params: { uid: string } }>, reply: FastifyReply): Promise<InteractionDetails | undefined> => {
      let details: InteractionDetails;
      try {
        details = await provider.interactionDetails(req.raw, reply.raw);
      } catch (err) {
        if ((err as { name?: string }).name !== 'SessionNotFound') throw err;
        page(reply, 400, errorPage('Innloggingen er utløpt', 'Denne innloggingen er utløpt, allerede fullført, eller ble startet i en annen nettleser.'));
        return undefined;
      }
      if (details.uid !== req.params.uid) {
        page(reply, 400, errorPage('Innloggingen er utløpt', 'Denne siden hører til en annen innlogging enn den som pågår i nettleseren.'));
        return undefined;
      }
      return details;
    };

    /** A grant of the scopes the client asked for that this kind of person may have; the rest refused. */
    const grantFor = async (details: InteractionDetails, accountId: string, kind: PersonaKind): Promise<string> => {
      const clientId = String(details.params.client_id);
      const grant = new provider.Grant({ accountId, clientId });
      const requested = String(details.params.scope ?? '')
        .split(' ')
        .filter(Boolean);
      const identity = requested.filter((s) => Object.hasOwn(OIDC_SCOPES, s));
      if (identity.length) grant.addOIDCScope(identity.join(' '));
      const allowed = new Set(claims.allowedScopes(kind));
      const api = requested.filter((s) => s.startsWith(`${audience}/`));
      const granted = api.filter((s) => allowed.has(s));
      const refused = api.filter((s) => !allowed.has(s));
      if (granted.length) grant.addResourceScope(audience, granted.join(' '));
      if (refused.length) grant.rejectResourceScope(audience, refused.join(' '));
      return grant.save();
    };

    const finish = async (req: FastifyRequest, reply: FastifyReply, result: Parameters<Provider['interactionFinished']>[2]) => {
      reply.hijack();
      await provider.interactionFinished(req.raw, reply.raw, result, { mergeWithLastSubmission: false });
    };

    const action = (uid: string) => `${prefix}/interaction/${encodeURIComponent(uid)}`;

    scope.get<{ Params: { uid: string } }>(`${prefix}/interaction/:uid`, async (req, reply) => {
      const details = await interaction(req, reply);
      if (!details) return reply;
      const client = clientProfile(details.params.client_id);
      if (!client) return page(reply, 400, errorPage('Ukjent klient', 'Programmet som ba om innlogging er ikke kjent for testinnloggingen.'));
      if (details.prompt.name === 'consent' && details.session?.accountId) {
        // First-party clients: consent is implied. (Logins normally grant in the same step, below.)
        const persona = personaOf(details.session.accountId);
        if (persona) return finish(req, reply, { consent: { grantId: await grantFor(details, details.session.accountId, persona.kind) } });
      }
      return page(reply, 200, loginPage({ action: action(details.uid), client, kinds: client.kinds }));
    });

    scope.post<{ Params: { uid: string }; Body: URLSearchParams | undefined }>(`${prefix}/interaction/:uid`, async (req, reply) => {
      const details = await interaction(req, reply);
      if (!details) return reply;
      const client = clientProfile(details.params.client_id);
      if (!client) return page(reply, 400, errorPage('Ukjent klient', 'Programmet som ba om innlogging er ikke kjent for testinnloggingen.'));
      const form = req.body instanceof URLSearchParams ? req.body : new URLSearchParams();
      const [kind = '', key = ''] = (form.get('person') ?? '').split(':');
      const actingFor = form.get('for') ?? undefined;
      const again = (error: string) => page(reply, 400, loginPage({ action: action(details.uid), client, kinds: client.kinds, error }));
      if (kind !== 'clinician' && kind !== 'citizen') return again('Velg en testperson.');
      if (!client.kinds.includes(kind)) {
        return again(
          kind === 'clinician'
            ? `${client.name} er for innbyggere; velg en innbygger.`
            : `${client.name} er for helsepersonell; velg en person fra helsepersonell.`,
        );
      }
      if (kind === 'citizen' && actingFor === undefined && representationsOf(key).length > 0) {
        return page(reply, 200, actingForPage({ action: action(details.uid), citizenKey: key }));
      }
      const persona = findPersona(kind, key, actingFor);
      if (!persona) {
        if (kind === 'citizen' && actingFor !== undefined && findPersona(kind, key)) {
          return page(reply, 400, actingForPage({ action: action(details.uid), citizenKey: key, error: 'Velg en av personene i listen.' }));
        }
        return again('Testpersonen finnes ikke. Velg en fra listen.');
      }
      const accountId = accountIdOf(persona);
      const grantId = await grantFor(details, accountId, persona.kind);
      return finish(req, reply, { login: { accountId, ...authenticationOf(persona) }, consent: { grantId } });
    });

    scope.post<{ Params: { uid: string } }>(`${prefix}/interaction/:uid/avbryt`, async (req, reply) => {
      const details = await interaction(req, reply);
      if (!details) return reply;
      return finish(req, reply, { error: 'access_denied', error_description: 'the user cancelled the login' });
    });
  });
}
