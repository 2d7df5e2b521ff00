/**
 * Tables for change notifications (see ./README.md):
 * - `subscriptions`: the server-side state of each Subscription resource, kept in step with it by
 *   the write hook in the same transaction: owner, patient scope, what it watches, the delivery
 *   secret (never stored in the resource), the event counter and the delivery schedule.
 * - `subscription_outbox`: one row per event not yet delivered, written in the transaction of the
 *   change that caused it; the delivery worker sends from here and deletes what was delivered.
 */
import type { Migration } from '../../store/migrations.js';

export const subscriptionsMigration: Migration = {
  id: '005-subscription-outbox',
  sql: `
CREATE TABLE subscriptions (
  id                text COLLATE "C" PRIMARY KEY,
  -- client_id of the creating client (NULL: created by the server itself); only it may see the Subscription
  owner             text COLLATE "C",
  owner_kind        text COLLATE "C" NOT NULL,
  -- HPR number of the clinician who created it (personnel only), for the patient's blocks
  creator_hpr       text COLLATE "C",
  -- the Patient id the subscription is scoped to: only changes in this patient's compartment are reported
  patient           text COLLATE "C" NOT NULL,
  -- resource types watched; empty: every type of plan content
  types             text[] COLLATE "C" NOT NULL,
  -- search parameters (query string) a changed resource must also match; NULL: the compartment is enough
  filter            text,
  topic             text COLLATE "C",
  -- active | off | error, as in the resource; deleted: a tombstone (owner kept for reads of the history)
  status            text COLLATE "C" NOT NULL,
  endpoint          text NOT NULL,
  headers           text[] NOT NULL,
  -- none (classic ping without a body) | empty | id-only
  payload           text COLLATE "C" NOT NULL,
  secret            text NOT NULL,
  ends              timestamptz,
  -- events generated so far (event numbers are 1..events) and delivered (or withheld) so far
  events            bigint NOT NULL DEFAULT 0,
  delivered_through bigint NOT NULL DEFAULT 0,
  -- delivery schedule: due when there is something to send; a lease marks a delivery in progress
  due               timestamptz,
  lease_until       timestamptz,
  lease_owner       text,
  attempts          integer NOT NULL DEFAULT 0,
  failing_since     timestamptz,
  last_error        text,
  last_delivered    timestamptz
);
CREATE INDEX subscriptions_patient ON subscriptions (patient) WHERE status = 'active';
CREATE INDEX subscriptions_due ON subscriptions (due) WHERE due IS NOT NULL;
CREATE INDEX subscriptions_owner ON subscriptions (owner);

CREATE TABLE subscription_outbox (
  subscription  text COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
  event_number  bigint NOT NULL,
  -- Type/id of the changed resource, and how it changed (POST, PUT, PATCH, DELETE)
  focus         text COLLATE "C" NOT NULL,
  method        text COLLATE "C" NOT NULL,
  occurred      timestamptz NOT NULL,
  created       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription, event_number)
);
`,
};
