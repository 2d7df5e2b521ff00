/**
 * NHN's status endpoint shape, kept for EHRs built against the pilot: `POST /status` with
 * `{"nin": "…"}` answers `{activeCarePlan, lastChangedDateTime, privacySetting}`. Same function,
 * same access rules as the FHIR operation `Patient/$plan-status`.
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../fhir/outcomes.js';
import { planStatus, statusNin } from '../plan/status.js';
import { type Database, forReading } from '../store/db.js';
import { CONSISTENCY_HEADER, withConsistency } from '../store/replica.js';
import type { RequestAuth } from './server.js';
import type { AuthRequest } from '../security/authenticate.js';
import type { PrivacyLookup } from '../security/privacy.js';

export function registerNhnStatus(app: FastifyInstance, options: { db: Database; privacy: PrivacyLookup; baseUrl: string; authenticate: (req: AuthRequest) => Promise<RequestAuth> }): void {
  app.post('/status', async (req, reply) => {
    const auth = await options.authenticate({
      method: 'POST',
      url: `${new URL(options.baseUrl).origin}/status`,
      header: (name) => {
        const v = req.headers[name];
        return Array.isArray(v) ? v[0] : v;
      },
    });
    auth.access.checkInteraction('status', 'Patient');
    const body = req.body as { nin?: unknown } | undefined;
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest('The body must be JSON like {"nin": "<fødselsnummer>"}');
    const token = req.headers[CONSISTENCY_HEADER];
    const nin = statusNin(auth.principal, body.nin);
    const { result: status } = await withConsistency(Array.isArray(token) ? token[0] : token, () => planStatus(forReading(options.db), options.privacy, auth.principal, nin));
    return reply.header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(status));
  });
}
