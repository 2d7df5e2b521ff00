/**
 * The delivery worker: sends what the outbox holds, at least once, in order per subscription.
 *
 * - Each round claims up to `concurrency` subscriptions that are due, with one statement
 *   (`FOR UPDATE SKIP LOCKED`, then a lease: `lease_until`, `lease_owner`), so with several
 *   server instances on one database each subscription — and so each notification — is handled
 *   by one worker at a time. A worker that dies mid-delivery loses its lease after `leaseMs`, and
 *   another sends again (at least once; the receiver may see a repeat then, never a gap).
 * - For a claimed subscription it takes the oldest undelivered events (up to
 *   `maxEventsPerNotification`) and POSTs one signed notification; success deletes them from the
 *   outbox and advances `delivered_through`; failure keeps them and schedules a retry with
 *   exponential back-off and jitter. Failing for `giveUpAfterMs` sets the Subscription to `error`
 *   (through the write pipeline, so it is versioned); the events stay and are sent if the client
 *   sets it to `requested` again.
 * - Before sending, the patient's privacy settings are read: while a patient has opted out or has
 *   no plan consent (or, for a subscription made by health personnel, has restricted access or
 *   blocked its creator) events are withheld — counted as delivered, not sent.
 * - Rounds run every `pollIntervalMs`, and at once (then a few times shortly after, for commits
 *   still in flight) when a transaction of this process adds events. `stop()` finishes the round
 *   in flight; nothing is lost across restarts, as all state is in the database.
 */
import type { WorkerLogger } from '../../log.js';
import { randomUUID } from 'node:crypto';
import type { Consent, Subscription } from '@medplum/fhirtypes';
import { SYSTEM_ACCESS } from '../../fhir/access.js';
import type { RequestContext } from '../../fhir/types.js';
import type { ResourceWriter } from '../../fhir/writer.js';
import { privacyFrom } from '../../security/privacy.js';
import type { Database } from '../../store/db.js';
import { onOutboxWritten } from './hook.js';
import { notificationBundle, type OutboxEvent, SIGNATURE_HEADER, signature } from './notification.js';
import { FHIR_JSON, type PayloadContent } from './spec.js';

export interface DeliveryOptions {
  /** The write pipeline, for setting a Subscription to `error`. */
  writer: ResourceWriter;
  /** Public base URL of the FHIR endpoint (references in notifications). */
  baseUrl: string;
  logger?: WorkerLogger;
  /** How often to look for due notifications (other instances' writes, retries). Default 2000. */
  pollIntervalMs?: number;
  /** Timeout of one POST. Default 5000. */
  timeoutMs?: number;
  /** How long a claim holds before another worker may take over. Default 60000 (must exceed timeoutMs). */
  leaseMs?: number;
  /** Events in one notification at most. Default 20. */
  maxEventsPerNotification?: number;
  /** Subscriptions delivered to in parallel per round. Default 8. */
  concurrency?: number;
  /** Delay before retry n (the last repeats). Default 5 s, 30 s, 2 min, 10 min, 1 h, 2 h, 4 h, 6 h. */
  retryDelaysMs?: readonly number[];
  /** Give up (status error) when failing this long. Default 24 h. */
  giveUpAfterMs?: number;
  /** Random spread of each retry delay, as a fraction (0.2: ±20 %). Default 0.2. */
  jitter?: number;
}

export interface Delivery {
  /** Looks for due notifications now. */
  nudge(): void;
  /** Runs one round now and resolves with the number of subscriptions handled (tests, tools). */
  runOnce(): Promise<number>;
  /** Stops polling and waits for the round in flight. */
  stop(): Promise<void>;
}

interface Claimed {
  id: string;
  endpoint: string;
  headers: string[];
  payload: PayloadContent;
  secret: string;
  topic: string | null;
  patient: string;
  owner_kind: string;
  creator_hpr: string | null;
  events: number;
  delivered_through: number;
  attempts: number;
  failing_since: Date | null;
}

const DEFAULT_RETRIES = [5_000, 30_000, 120_000, 600_000, 3_600_000, 7_200_000, 14_400_000, 21_600_000];
/** After a nudge, rounds that found nothing are repeated after these delays (commits in flight). */
const NUDGE_FOLLOW_UPS = [50, 250, 1000];

const CLAIM_SQL = `
UPDATE subscriptions SET lease_until = now() + $2::int * interval '1 millisecond', lease_owner = $1::text
 WHERE id IN (
   SELECT id FROM subscriptions
    WHERE due <= now() AND status = 'active' AND (lease_until IS NULL OR lease_until < now())
    ORDER BY due LIMIT $3::int
    FOR UPDATE SKIP LOCKED)
RETURNING id, endpoint, headers, payload, secret, topic, patient, owner_kind, creator_hpr, events, delivered_through, attempts, failing_since`;

const COMPLETE_SQL = `
WITH sent AS (DELETE FROM subscription_outbox WHERE subscription = $1::text AND event_number <= $2::bigint)
UPDATE subscriptions SET
  delivered_through = GREATEST(delivered_through, $2::bigint),
  attempts = 0, failing_since = NULL, last_error = NULL,
  last_delivered = CASE WHEN $4::boolean THEN now() ELSE last_delivered END,
  due = CASE WHEN status = 'active' AND events > GREATEST(delivered_through, $2::bigint) THEN now() ELSE NULL END,
  lease_until = CASE WHEN lease_owner = $3::text THEN NULL ELSE lease_until END,
  lease_owner = CASE WHEN lease_owner = $3::text THEN NULL ELSE lease_owner END
WHERE id = $1::text`;

const RETRY_SQL = `
UPDATE subscriptions SET
  attempts = attempts + 1, failing_since = COALESCE(failing_since, now()), last_error = $3::text,
  due = CASE WHEN status = 'active' THEN now() + $4::int * interval '1 millisecond' ELSE NULL END,
  lease_until = CASE WHEN lease_owner = $2::text THEN NULL ELSE lease_until END,
  lease_owner = CASE WHEN lease_owner = $2::text THEN NULL ELSE lease_owner END
WHERE id = $1::text`;

/** Starts a delivery worker on `db`. Several may run (in one process or many) on one database. */
export function startDelivery(db: Database, options: DeliveryOptions): Delivery {
  const workerId = randomUUID();
  const pollInterval = options.pollIntervalMs ?? 2000;
  const timeoutMs = options.timeoutMs ?? 5000;
  const leaseMs = Math.max(options.leaseMs ?? 60_000, timeoutMs * 2);
  const maxEvents = options.maxEventsPerNotification ?? 20;
  const concurrency = options.concurrency ?? 8;
  const retries = options.retryDelaysMs?.length ? options.retryDelaysMs : DEFAULT_RETRIES;
  const giveUpAfter = options.giveUpAfterMs ?? 86_400_000;
  const jitter = options.jitter ?? 0.2;
  const log = options.logger;
  const ctx: RequestContext = { requestId: 'subscription-delivery', baseUrl: options.baseUrl, access: SYSTEM_ACCESS };

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let followUps = 0;

  const schedule = (ms: number) => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(run, ms);
    timer.unref?.();
  };

  function run(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      let handled = 0;
      try {
        do {
          again = false;
          handled = await round();
        } while (!stopped && (handled > 0 || again));
      } catch (err) {
        log?.error({ err }, 'subscription delivery round failed');
      } finally {
        running = undefined;
        if (followUps > 0) schedule(NUDGE_FOLLOW_UPS[NUDGE_FOLLOW_UPS.length - followUps--] as number);
        else schedule(pollInterval);
      }
    })();
  }

  async function round(): Promise<number> {
    const claimed = await db.query<Claimed>(CLAIM_SQL, [workerId, leaseMs, concurrency]);
    await Promise.all(claimed.map((s) => deliver(s).catch((err) => log?.error({ err, subscription: s.id }, 'subscription delivery failed unexpectedly'))));
    return claimed.length;
  }

  async function deliver(s: Claimed): Promise<void> {
    const rows = await db.query<{ event_number: number; focus: string; method: string; occurred: Date }>(
      `SELECT event_number, focus, method, occurred FROM subscription_outbox
        WHERE subscription = $1::text AND event_number > $2::bigint ORDER BY event_number LIMIT $3::int`,
      [s.id, s.delivered_through, maxEvents],
    );
    const events: OutboxEvent[] = rows.map((r) => ({ eventNumber: Number(r.event_number), focus: r.focus, method: r.method, occurred: new Date(r.occurred) }));
    const last = events.length ? (events[events.length - 1] as OutboxEvent).eventNumber : Number(s.delivered_through);
    if (!events.length) {
      await db.query(COMPLETE_SQL, [s.id, last, workerId, false]);
      return;
    }
    const withheld = await withheldBecause(s);
    if (withheld) {
      log?.info({ subscription: s.id, events: events.length, reason: withheld }, 'subscription events withheld by the patient\'s privacy settings');
      await db.query(COMPLETE_SQL, [s.id, last, workerId, false]);
      return;
    }
    const body =
      s.payload === 'none'
        ? ''
        : notificationBundle({
            baseUrl: options.baseUrl,
            subscriptionId: s.id,
            ...(s.topic ? { topic: s.topic } : {}),
            status: 'active',
            eventsSinceStart: Math.max(Number(s.events), last),
            events,
            payload: s.payload,
          });
    const failure = await post(s, body);
    if (!failure) {
      await db.query(COMPLETE_SQL, [s.id, last, workerId, true]);
      return;
    }
    await retryOrGiveUp(s, failure);
  }

  /** POSTs one notification; resolves with what went wrong, or undefined on a 2xx. */
  async function post(s: Claimed, body: string): Promise<string | undefined> {
    const headers: Record<string, string> = {};
    for (const line of s.headers) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon)] = line.slice(colon + 1).trim();
    }
    if (body) headers['content-type'] = FHIR_JSON;
    headers['user-agent'] = 'Samplan-Subscriptions/1';
    headers[SIGNATURE_HEADER.toLowerCase()] = signature(s.secret, body);
    try {
      const res = await fetch(s.endpoint, { method: 'POST', headers, ...(body ? { body } : {}), redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel().catch(() => undefined);
      return res.status >= 200 && res.status < 300 ? undefined : `the endpoint answered HTTP ${res.status}`;
    } catch (err) {
      const e = err as { name?: string; cause?: { code?: string } };
      if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
      return `the endpoint could not be reached (${e.cause?.code ?? e.name ?? 'error'})`;
    }
  }

  async function retryOrGiveUp(s: Claimed, failure: string): Promise<void> {
    const failingFor = s.failing_since ? Date.now() - new Date(s.failing_since).getTime() : 0;
    if (failingFor >= giveUpAfter) {
      await giveUp(s, failure);
      return;
    }
    const base = retries[Math.min(s.attempts, retries.length - 1)] as number;
    const delay = Math.max(0, Math.round(base * (1 + jitter * (2 * Math.random() - 1))));
    log?.warn({ subscription: s.id, attempt: s.attempts + 1, retryInMs: delay, failure }, 'notification not delivered; will retry');
    await db.query(RETRY_SQL, [s.id, workerId, failure, delay]);
  }

  /** Sets the Subscription to error, through the write pipeline (a new version of the resource). */
  async function giveUp(s: Claimed, failure: string): Promise<void> {
    const since = s.failing_since ? new Date(s.failing_since).toISOString() : new Date().toISOString();
    const text = `Notifications could not be delivered since ${since}: ${failure}. Set status to requested to resume; undelivered events are kept.`;
    log?.warn({ subscription: s.id, failure }, 'notifications failing for too long; the subscription is set to error');
    await db.transaction(async (tx) => {
      const [row] = await tx.query<{ status: string }>('SELECT status FROM subscriptions WHERE id = $1::text FOR UPDATE', [s.id]);
      if (row?.status === 'active') {
        await options.writer.update(tx, ctx, 'Subscription', s.id, (current) => {
          if (!current) throw new Error('the Subscription is gone');
          return { ...(current as Subscription), status: 'error', error: text };
        });
      }
      await tx.query(RETRY_SQL, [s.id, workerId, failure, 0]);
      await tx.query(`UPDATE subscriptions SET due = NULL WHERE id = $1::text AND status <> 'active'`, [s.id]);
    });
  }

  /** Why the patient's privacy settings hold this subscription's events back now, if they do. */
  async function withheldBecause(s: Claimed): Promise<string | undefined> {
    const rows = await db.query<{ content: string }>(
      `SELECT content FROM resources WHERE type = 'Consent' AND NOT deleted AND compartments @> ARRAY[$1::text]`,
      [`Patient/${s.patient}`],
    );
    const privacy = privacyFrom([s.patient], rows.map((r) => JSON.parse(r.content) as Consent));
    if (privacy.optedOut) return 'opted out';
    if (!privacy.consent) return 'no plan consent';
    if (s.owner_kind === 'personnel') {
      if (privacy.restricted) return 'restricted access';
      if (s.creator_hpr && privacy.blockedHpr.has(s.creator_hpr)) return 'creator blocked';
    }
    return undefined;
  }

  const unsubscribe = onOutboxWritten(() => {
    followUps = NUDGE_FOLLOW_UPS.length;
    run();
  });
  schedule(0);

  return {
    nudge() {
      followUps = NUDGE_FOLLOW_UPS.length;
      run();
    },
    async runOnce() {
      return round();
    },
    async stop() {
      stopped = true;
      unsubscribe();
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
