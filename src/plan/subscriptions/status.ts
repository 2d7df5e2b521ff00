/**
 * `GET|POST /Subscription/{id}/$status` (Subscriptions Backport): the subscription's status as a
 * searchset Bundle with one SubscriptionStatus (`Parameters`, type query-status): status, topic,
 * events since the start, and the error while it is in error. Only the owner sees it (the
 * caller's read rule applies, so to anyone else the Subscription does not exist).
 */
import type { Bundle, Subscription } from '@medplum/fhirtypes';
import { visibility } from '../../fhir/access.js';
import type { Operation } from '../../fhir/operations.js';
import { errors } from '../../fhir/outcomes.js';
import { subscriptionStatus } from './notification.js';
import { BACKPORT_PROFILE } from './spec.js';

export const subscriptionStatusOperation: Operation = {
  name: 'status',
  definition: BACKPORT_PROFILE.statusOperation,
  type: 'Subscription',
  system: false,
  typeLevel: false,
  instance: true,
  get: true,
  async handler(s, call, target) {
    const id = target.id as string;
    const row = await s.store.read(call.q, 'Subscription', id, visibility(call.ctx.access));
    if (!row) throw errors.notFound('Subscription', id);
    if (row.deleted || !row.content) throw errors.gone('Subscription', id);
    const resource = JSON.parse(row.content) as Subscription;
    const [state] = await call.q.query<{ events: number; topic: string | null }>('SELECT events, topic FROM subscriptions WHERE id = $1::text', [id]);
    const status = subscriptionStatus({
      baseUrl: call.ctx.baseUrl,
      subscriptionId: id,
      ...(state?.topic ? { topic: state.topic } : {}),
      status: resource.status,
      type: 'query-status',
      eventsSinceStart: Number(state?.events ?? 0),
      ...(resource.status === 'error' && resource.error ? { error: resource.error } : {}),
    });
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      total: 1,
      entry: [{ fullUrl: `urn:uuid:${status.id}`, resource: status, search: { mode: 'match' } }],
    };
    return {
      status: 200,
      body: JSON.stringify(bundle),
      touched: [{ type: 'Subscription', id, version: row.version }],
    };
  },
};
