/** Tables for change notifications: the durable outbox the delivery worker sends from. */
import type { Migration } from '../../store/migrations.js';

export const subscriptionsMigration: Migration = {
  id: '005-subscription-outbox',
  sql: `
CREATE TABLE subscription_outbox (
  seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription  text COLLATE "C" NOT NULL,
  event_number  bigint NOT NULL,
  focus         text COLLATE "C" NOT NULL,
  created       timestamptz NOT NULL DEFAULT now(),
  next_attempt  timestamptz NOT NULL DEFAULT now(),
  attempts      integer NOT NULL DEFAULT 0,
  delivered     timestamptz,
  last_error    text
);
CREATE INDEX subscription_outbox_due ON subscription_outbox (next_attempt) WHERE delivered IS NULL;
CREATE INDEX subscription_outbox_subscription ON subscription_outbox (subscription, event_number);
`,
};
