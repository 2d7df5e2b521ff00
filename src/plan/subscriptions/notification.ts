/**
 * What is sent: the R4 notification Bundle of the Subscriptions R5 Backport (type `history`, first
 * entry a `Parameters` SubscriptionStatus), never any resource content — `empty` says that
 * something changed and when, `id-only` also which resources (as references, with the method).
 * A classic Subscription without a payload gets the classic R4 ping: a POST without a body.
 *
 * Every POST is signed: `X-Samplan-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
 * keyed with the subscription's secret, so the receiver can check that it came from Samplan, was
 * not altered, and is fresh (it should refuse a t more than a few minutes old).
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Bundle, BundleEntry, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { BACKPORT_PROFILE, type PayloadContent } from './spec.js';

export const SIGNATURE_HEADER = 'X-Samplan-Signature';

export interface OutboxEvent {
  eventNumber: number;
  /** `Type/id` of the changed resource. */
  focus: string;
  method: string;
  occurred: Date;
}

export interface StatusInput {
  baseUrl: string;
  subscriptionId: string;
  topic?: string;
  status: string;
  type: 'event-notification' | 'query-status' | 'heartbeat' | 'handshake';
  eventsSinceStart: number;
  events?: OutboxEvent[];
  payload?: PayloadContent;
  error?: string;
}

/** The SubscriptionStatus, as the backport's R4 Parameters profile. */
export function subscriptionStatus(input: StatusInput): Parameters {
  const parameter: ParametersParameter[] = [
    { name: 'subscription', valueReference: { reference: `${input.baseUrl}/Subscription/${input.subscriptionId}` } },
    ...(input.topic ? [{ name: 'topic', valueCanonical: input.topic }] : []),
    { name: 'status', valueCode: input.status },
    { name: 'type', valueCode: input.type },
    { name: 'events-since-subscription-start', valueString: String(input.eventsSinceStart) },
  ];
  for (const e of input.events ?? []) {
    parameter.push({
      name: 'notification-event',
      part: [
        { name: 'event-number', valueString: String(e.eventNumber) },
        { name: 'timestamp', valueInstant: e.occurred.toISOString() },
        ...(input.payload === 'id-only' ? [{ name: 'focus', valueReference: { reference: `${input.baseUrl}/${e.focus}` } }] : []),
      ],
    });
  }
  if (input.error) parameter.push({ name: 'error', valueCodeableConcept: { text: input.error } });
  return { resourceType: 'Parameters', id: randomUUID(), meta: { profile: [BACKPORT_PROFILE.status] }, parameter };
}

const RESPONSE_STATUS: Record<string, string> = { POST: '201', PUT: '200', PATCH: '200', DELETE: '204' };

/** The JSON text of a notification Bundle (`payload` empty or id-only). */
export function notificationBundle(input: Omit<StatusInput, 'type'> & { payload: 'empty' | 'id-only'; events: OutboxEvent[] }): string {
  const status = subscriptionStatus({ ...input, type: 'event-notification' });
  const entry: BundleEntry[] = [
    {
      fullUrl: `urn:uuid:${status.id}`,
      resource: status,
      request: { method: 'GET', url: `${input.baseUrl}/Subscription/${input.subscriptionId}/$status` },
      response: { status: '200' },
    },
  ];
  if (input.payload === 'id-only') {
    for (const e of input.events) {
      entry.push({
        fullUrl: `${input.baseUrl}/${e.focus}`,
        request: { method: e.method as 'PUT', url: e.focus },
        response: { status: RESPONSE_STATUS[e.method] ?? '200' },
      });
    }
  }
  const bundle: Bundle = {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { profile: [BACKPORT_PROFILE.notification] },
    type: 'history',
    timestamp: new Date().toISOString(),
    entry,
  };
  return JSON.stringify(bundle);
}

/** `t=<seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` */
export function signature(secret: string, body: string, at: Date = new Date()): string {
  const t = Math.floor(at.getTime() / 1000);
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/**
 * What a receiver does (documented for integrators, used by the tests): true when `header` is a
 * valid signature of `body` with `secret`, made at most `toleranceSeconds` ago.
 */
export function verifySignature(secret: string, body: string, header: string | undefined, toleranceSeconds = 300, now: Date = new Date()): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(now.getTime() / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(m[2] as string, 'hex'));
}
