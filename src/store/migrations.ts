/**
 * The schema, as an ordered list of migrations. Each runs once, in its own transaction, on
 * PGlite and on a PostgreSQL server alike. Never edit a migration that has shipped: add one.
 *
 * Layout (see README "Storage and index design"):
 * - `resources`: the current version of every resource, one row per (type, id), with the JSON text
 *   served as is. `rid` is the internal key every index row points at.
 * - `resource_versions`: every version ever written (history, vread), a NULL content for deletions.
 * - `idx_*`: one table per search parameter type. `sp` is a stable 32-bit hash of
 *   "<ResourceType>.<code>" (see search/registry.ts), so one B-tree serves every parameter of a type.
 *   Index rows are rewritten in the same transaction as the version they describe.
 */
import { exportMigration } from '../plan/export/migration.js';
import { subscriptionsMigration } from '../plan/subscriptions/migration.js';

export interface Migration {
  id: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    id: '001-resources-and-search-indexes',
    sql: `
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE resources (
  rid          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type         text COLLATE "C" NOT NULL,
  id           text COLLATE "C" NOT NULL,
  version      integer NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean NOT NULL DEFAULT false,
  content      text,
  compartments text[] COLLATE "C" NOT NULL DEFAULT '{}',
  CONSTRAINT resources_type_id UNIQUE (type, id)
);
CREATE INDEX resources_type_rid ON resources (type, rid) WHERE NOT deleted;
CREATE INDEX resources_type_updated ON resources (type, last_updated, rid) WHERE NOT deleted;
CREATE INDEX resources_compartments ON resources USING gin (compartments) WHERE NOT deleted;

CREATE TABLE resource_versions (
  rid          bigint NOT NULL,
  version      integer NOT NULL,
  type         text COLLATE "C" NOT NULL,
  id           text COLLATE "C" NOT NULL,
  last_updated timestamptz NOT NULL,
  method       text COLLATE "C" NOT NULL,
  content      text,
  PRIMARY KEY (rid, version)
);
CREATE INDEX resource_versions_type_updated ON resource_versions (type, last_updated);
CREATE INDEX resource_versions_updated ON resource_versions (last_updated);

CREATE TABLE idx_token (
  rid     bigint NOT NULL,
  sp      integer NOT NULL,
  system  text COLLATE "C",
  code    text COLLATE "C",
  display text COLLATE "C"
);
CREATE INDEX idx_token_code ON idx_token (sp, code, system, rid);
CREATE INDEX idx_token_system ON idx_token (sp, system, rid);
CREATE INDEX idx_token_display ON idx_token (sp, display, rid) WHERE display IS NOT NULL;
CREATE INDEX idx_token_rid ON idx_token (rid, sp);

CREATE TABLE idx_string (
  rid   bigint NOT NULL,
  sp    integer NOT NULL,
  norm  text COLLATE "C" NOT NULL,
  exact text COLLATE "C" NOT NULL
);
CREATE INDEX idx_string_norm ON idx_string (sp, norm, rid);
CREATE INDEX idx_string_exact ON idx_string (sp, exact, rid);
CREATE INDEX idx_string_trgm ON idx_string USING gin (norm gin_trgm_ops);
CREATE INDEX idx_string_rid ON idx_string (rid, sp);

CREATE TABLE idx_date (
  rid bigint NOT NULL,
  sp  integer NOT NULL,
  lo  timestamptz NOT NULL,
  hi  timestamptz NOT NULL
);
CREATE INDEX idx_date_lo ON idx_date (sp, lo, hi, rid);
CREATE INDEX idx_date_hi ON idx_date (sp, hi, rid);
CREATE INDEX idx_date_rid ON idx_date (rid, sp);

CREATE TABLE idx_number (
  rid bigint NOT NULL,
  sp  integer NOT NULL,
  lo  numeric NOT NULL,
  hi  numeric NOT NULL
);
CREATE INDEX idx_number_lo ON idx_number (sp, lo, hi, rid);
CREATE INDEX idx_number_hi ON idx_number (sp, hi, rid);
CREATE INDEX idx_number_rid ON idx_number (rid, sp);

CREATE TABLE idx_quantity (
  rid    bigint NOT NULL,
  sp     integer NOT NULL,
  system text COLLATE "C",
  code   text COLLATE "C",
  unit   text COLLATE "C",
  lo     numeric NOT NULL,
  hi     numeric NOT NULL
);
CREATE INDEX idx_quantity_lo ON idx_quantity (sp, lo, hi, rid);
CREATE INDEX idx_quantity_hi ON idx_quantity (sp, hi, rid);
CREATE INDEX idx_quantity_rid ON idx_quantity (rid, sp);

CREATE TABLE idx_reference (
  rid         bigint NOT NULL,
  sp          integer NOT NULL,
  target_type text COLLATE "C",
  target_id   text COLLATE "C",
  url         text COLLATE "C",
  version     text COLLATE "C"
);
CREATE INDEX idx_reference_target ON idx_reference (sp, target_id, target_type, rid);
CREATE INDEX idx_reference_any ON idx_reference (target_id, target_type);
CREATE INDEX idx_reference_url ON idx_reference (sp, url, rid) WHERE url IS NOT NULL;
CREATE INDEX idx_reference_rid ON idx_reference (rid, sp);

CREATE TABLE idx_uri (
  rid   bigint NOT NULL,
  sp    integer NOT NULL,
  value text COLLATE "C" NOT NULL
);
CREATE INDEX idx_uri_value ON idx_uri (sp, value, rid);
CREATE INDEX idx_uri_rid ON idx_uri (rid, sp);

CREATE TABLE idx_composite (
  rid  bigint NOT NULL,
  sp   integer NOT NULL,
  key  text COLLATE "C" NOT NULL,
  lo   numeric,
  hi   numeric,
  dlo  timestamptz,
  dhi  timestamptz,
  str  text COLLATE "C"
);
CREATE INDEX idx_composite_key ON idx_composite (sp, key, rid);
CREATE INDEX idx_composite_rid ON idx_composite (rid, sp);
`,
  },
  {
    id: '002-identity-provider-keys',
    sql: `
CREATE TABLE idp_keys (
  kid         text PRIMARY KEY,
  created     timestamptz NOT NULL DEFAULT now(),
  private_jwk text NOT NULL
);
`,
  },
  {
    // The audit trail is append-only: the database itself refuses to change or remove a record,
    // whoever asks. AuditEvent JSON is stored as served; patient_id keys the patient's access log.
    id: '003-audit-trail-and-token-state',
    sql: `
CREATE TABLE audit_events (
  seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id         text COLLATE "C" NOT NULL UNIQUE,
  recorded   timestamptz NOT NULL,
  patient_id text COLLATE "C",
  content    text NOT NULL
);
CREATE INDEX audit_events_patient ON audit_events (patient_id, recorded DESC, seq DESC);
CREATE INDEX audit_events_recorded ON audit_events (recorded DESC, seq DESC);
CREATE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit records cannot be changed or deleted' USING ERRCODE = 'insufficient_privilege'; END $$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();

CREATE TABLE dpop_proofs (
  id      text COLLATE "C" PRIMARY KEY,
  expires timestamptz NOT NULL
);
CREATE INDEX dpop_proofs_expires ON dpop_proofs (expires);

CREATE TABLE server_secrets (
  name  text PRIMARY KEY,
  value text NOT NULL
);
`,
  },
  {
    // Logins in progress, sessions, codes and seen client-assertion ids of the embedded identity
    // provider, shared by all instances.
    id: '004-identity-provider-artifacts',
    sql: `
CREATE TABLE idp_artifacts (
  model       text NOT NULL,
  id          text NOT NULL,
  payload     text NOT NULL,
  grant_id    text,
  uid         text,
  user_code   text,
  expires_at  timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX idp_artifacts_grant ON idp_artifacts (model, grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX idp_artifacts_uid ON idp_artifacts (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX idp_artifacts_user_code ON idp_artifacts (model, user_code) WHERE user_code IS NOT NULL;
CREATE INDEX idp_artifacts_expires ON idp_artifacts (expires_at);
`,
  },
  subscriptionsMigration,
  exportMigration,
  {
    // The version of a resource its patient sees: plans reach the patient when a clinician
    // publishes them, and stay as published while the next version is drafted.
    id: '007-publication',
    sql: `
ALTER TABLE resources ADD COLUMN published_version integer;
`,
  },
  {
    // Every request about a patient looks up their Consents by compartment (lookupPatient in
    // security/privacy.ts: `type = 'Consent' AND compartments @> ARRAY['Patient/' || p.id]`).
    // PostgreSQL cannot estimate containment of an array computed per row and assumes 0.5 % of
    // the table, so on a large table it ANDs the compartments GIN with resources_type_id for
    // type = 'Consent': a bitmap of every Consent in the database (125,000 at 100,000 patients,
    // 30 ms per request). A GIN over the Consents alone answers from the patient's own entries.
    id: '008-consent-compartments',
    sql: `
CREATE INDEX resources_consent_compartments ON resources USING gin (compartments) WHERE type = 'Consent' AND NOT deleted;
`,
  },
  {
    // Every read stores an AuditEvent, so this table grows fastest of all: a B-tree on `recorded`
    // grows with every record (tens of GB per billion), and each insert maintains it. The trail is
    // append-only and `recorded` grows with it, so a BRIN index serves an auditor's time-range
    // review across all patients from a few pages and stays a few MB. (At benchmark size the
    // difference in throughput is within noise: docs/performance.md. The patient's own log uses
    // audit_events_patient.)
    id: '009-audit-recorded-brin',
    sql: `
DROP INDEX audit_events_recorded;
CREATE INDEX audit_events_recorded ON audit_events USING brin (recorded);
`,
  },
  {
    // A GIN index collects new entries in a pending list, and every search reads the whole list
    // until VACUUM merges it into the index. The compartment indexes answer every patient-scoped
    // read (search, _include, the privacy lookup, the status check), and the embedded database has
    // no autovacuum: after 2,500 writes a one-patient lookup read 39 pages instead of 3 and took
    // 10 ms instead of 0.3. A resource adds one or two compartment keys, so inserting them into the
    // index directly costs little.
    id: '010-compartments-without-pending-list',
    sql: `
ALTER INDEX resources_compartments SET (fastupdate = off);
ALTER INDEX resources_consent_compartments SET (fastupdate = off);
SELECT gin_clean_pending_list('resources_compartments'::regclass);
SELECT gin_clean_pending_list('resources_consent_compartments'::regclass);
`,
  },
  {
    // The status check's "last changed" was the newest of the patient's plan resources, read one
    // by one through the compartment index: its cost grew with everything the patient had. The
    // write pipeline now keeps the time of each patient's last plan change here (src/plan/status.ts),
    // stored with COMMIT. Filled from what the database holds (the plan content types of status.ts).
    id: '011-plan-changes',
    sql: `
CREATE TABLE plan_changes (
  patient_id text PRIMARY KEY,
  changed timestamptz NOT NULL
);
INSERT INTO plan_changes (patient_id, changed)
SELECT substr(c, 9), max(r.last_updated)
  FROM resources AS r, unnest(r.compartments) AS c
 WHERE NOT r.deleted AND r.type IN ('CarePlan', 'Condition', 'Goal', 'ServiceRequest', 'CareTeam') AND c LIKE 'Patient/%'
 GROUP BY 1;
`,
  },
  {
    // Which version of the index extraction (src/search/reindex.ts, INDEX_VERSION) the stored index
    // rows were made by, and how far a rebuild to the current one has come. Databases that hold
    // resources from before this migration were indexed by version 1.
    id: '012-search-index-state',
    sql: `
CREATE TABLE search_index_state (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  version integer NOT NULL,
  next_rid bigint NOT NULL DEFAULT 0
);
INSERT INTO search_index_state (version) VALUES (1);
`,
  },
  {
    // Text over about 2 KB (a read's AuditEvent is 2.6 KB, a plan's CarePlan 5 KB) is compressed
    // when stored and decompressed when read. PostgreSQL's default, pglz, took 19–21 µs to store
    // an AuditEvent here against 8–9 µs with lz4, and twice as long to read one back, for 15 %
    // more space. Servers built without lz4 (PGlite) keep pglz. Rows stored before stay as they are.
    // (One statement per line: migrations are split at a semicolon that ends a line.)
    id: '013-lz4-compression',
    sql: `
DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN ALTER TABLE resources ALTER COLUMN content SET COMPRESSION lz4; ALTER TABLE resource_versions ALTER COLUMN content SET COMPRESSION lz4; ALTER TABLE audit_events ALTER COLUMN content SET COMPRESSION lz4; END IF; END $$;
`,
  },
  {
    // A composite parameter's value pair was stored once for every way a search could name it
    // (code, system|code or system| for each token: 9 rows for two tokens, 36 for a check-in
    // Observation); now once, with each component's code and system in columns of their own.
    // The rows already stored are converted here, keeping each pair's fully named form; the
    // search index rebuild (INDEX_VERSION 3) then rewrites them all from the resources. Every
    // stored row starts with a token: R4's one composite that starts with a reference
    // (DocumentReference's relationship) has its components' expressions the other way round
    // in the published definitions, so it never made rows.
    id: '014-composite-columns',
    sql: `
ALTER TABLE idx_composite RENAME TO idx_composite_keyed;
CREATE TABLE idx_composite (
  rid  bigint NOT NULL,
  sp   integer NOT NULL,
  c1   text COLLATE "C" NOT NULL,
  s1   text COLLATE "C",
  c2   text COLLATE "C" NOT NULL,
  s2   text COLLATE "C",
  lo   numeric,
  hi   numeric,
  dlo  timestamptz,
  dhi  timestamptz,
  str  text COLLATE "C"
);
INSERT INTO idx_composite (rid, sp, c1, s1, c2, s2, lo, hi, dlo, dhi, str)
SELECT rid, sp, substr(p1, strpos(p1, '|') + 1), NULLIF(split_part(p1, '|', 1), ''),
  CASE WHEN discrete THEN substr(p2, strpos(p2, '|') + 1) ELSE p2 END,
  CASE WHEN discrete THEN NULLIF(split_part(p2, '|', 1), '') END,
  lo, hi, dlo, dhi, str
FROM (
  SELECT k.*, split_part(k.key, E'\\x1f', 1) AS p1, substr(k.key, strpos(k.key, E'\\x1f') + 1) AS p2,
    k.lo IS NULL AND k.dlo IS NULL AND k.str IS NULL AS discrete
  FROM idx_composite_keyed AS k
) AS keyed
WHERE strpos(p1, '|') > 0 AND right(p1, 1) <> '|' AND (NOT discrete OR (strpos(p2, '|') > 0 AND right(p2, 1) <> '|'));
DROP TABLE idx_composite_keyed;
CREATE INDEX idx_composite_code ON idx_composite (sp, c1, c2, rid);
CREATE INDEX idx_composite_rid ON idx_composite (rid, sp);
`,
  },
  {
    // A digest of the index rows stored for a resource (ResourceStore.update): an update whose
    // rows have the same digest leaves the index tables alone. NULL means not known, and the next
    // update rewrites the rows as before: resources stored before this migration, and those loaded
    // in bulk. Anything else that changes a resource's index rows sets it (the search index rebuild)
    // or sets it to NULL.
    id: '015-index-digest',
    sql: `ALTER TABLE resources ADD COLUMN index_digest text COLLATE "C";`,
  },
  {
    // An update of a resource's row that finds it at another version than it follows fails (with
    // its own SQLSTATE) instead of changing nothing: the writer need not wait for its answer,
    // since a failed statement takes its transaction down with it (ResourceStore.update).
    id: '016-version-moved',
    sql: `CREATE FUNCTION samplan_version_moved(rid bigint) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'resource % is not at the version this update follows', rid USING ERRCODE = 'SP409'; END $$;`,
  },
  {
    // An audit record stored whole repeated its agents (who, point of care, legal entity, client
    // system; ~1.2 KB for a clinician) and the entities' constant codings: a read's record was 2.5
    // KB, the largest item of a year's data (docs/scaling.md). Now the agents and purpose are
    // stored once per distinct set, by digest, and a record keeps what differs (see
    // src/security/audit.ts). Records stored before keep their whole text (agents_key NULL); the
    // new table is append-only like the trail.
    id: '017-audit-agents',
    sql: `
CREATE TABLE audit_agents (
  key     text COLLATE "C" PRIMARY KEY,
  agents  text NOT NULL,
  purpose text
);
CREATE TRIGGER audit_agents_append_only BEFORE UPDATE OR DELETE ON audit_agents FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER audit_agents_no_truncate BEFORE TRUNCATE ON audit_agents FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
ALTER TABLE audit_events ADD COLUMN agents_key text COLLATE "C";
`,
  },
  {
    // The audit trail grows with every read (about 300 GB a year for all of Norway, docs/scaling.md):
    // partitioned by month, each month's indexes stay small while it is written, and an old month
    // can be archived as a whole (DETACH PARTITION, dump, DROP) without touching a record. The
    // table so far becomes the first partition (everything before next month); the months are made
    // ahead by samplan_audit_partitions, at start and daily (src/security/audit-partitions.ts).
    // There is no default partition: a record with no month to go to fails, and so does its
    // request, rather than landing where archiving would miss it.
    id: '018-audit-partitions',
    sql: `
ALTER TABLE audit_events RENAME TO audit_events_initial;
ALTER INDEX audit_events_patient RENAME TO audit_events_initial_patient;
ALTER INDEX audit_events_recorded RENAME TO audit_events_initial_recorded;
DROP TRIGGER audit_events_append_only ON audit_events_initial;
ALTER TRIGGER audit_events_no_truncate ON audit_events_initial RENAME TO audit_events_initial_no_truncate;
CREATE SEQUENCE audit_events_seq;
SELECT setval('audit_events_seq', (SELECT coalesce(max(seq), 0) + 1 FROM audit_events_initial), false);
ALTER TABLE audit_events_initial ALTER COLUMN seq DROP IDENTITY;
CREATE TABLE audit_events (
  seq        bigint NOT NULL DEFAULT nextval('audit_events_seq'),
  id         text COLLATE "C" NOT NULL,
  recorded   timestamptz NOT NULL,
  patient_id text COLLATE "C",
  content    text NOT NULL,
  agents_key text COLLATE "C"
) PARTITION BY RANGE (recorded);
ALTER SEQUENCE audit_events_seq OWNED BY audit_events.seq;
DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN ALTER TABLE audit_events ALTER COLUMN content SET COMPRESSION lz4; END IF; END $$;
CREATE INDEX audit_events_patient ON audit_events (patient_id, recorded DESC, seq DESC);
CREATE INDEX audit_events_id ON audit_events (id);
CREATE INDEX audit_events_recorded ON audit_events USING brin (recorded);
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
DO $$ BEGIN
  EXECUTE format('ALTER TABLE audit_events ATTACH PARTITION audit_events_initial FOR VALUES FROM (MINVALUE) TO (%L)', (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC');
END $$;
ALTER TABLE audit_events_initial DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events_initial DROP CONSTRAINT audit_events_id_key;
CREATE FUNCTION samplan_audit_partitions(at timestamptz, months int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  made int := 0;
  first timestamp := date_trunc('month', at AT TIME ZONE 'UTC');
  month timestamp;
  name text;
BEGIN
  -- Several instances may start together: one makes the months, the others find them made.
  PERFORM pg_advisory_xact_lock(7346113);
  FOR i IN 0..months LOOP
    month := first + make_interval(months => i);
    name := 'audit_events_' || to_char(month, 'YYYY_MM');
    CONTINUE WHEN to_regclass(name) IS NOT NULL;
    BEGIN
      EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)', name, month AT TIME ZONE 'UTC', (month + interval '1 month') AT TIME ZONE 'UTC');
    EXCEPTION WHEN invalid_object_definition THEN
      -- The month lies within the first partition (the records from before partitioning).
      CONTINUE;
    END;
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change()', name || '_no_truncate', name);
    made := made + 1;
  END LOOP;
  RETURN made;
END $$;
SELECT samplan_audit_partitions(now(), 2);
`,
  },
  {
    // Every statement is planned once for any values (SESSION_SETTINGS), and against an array
    // parameter PostgreSQL guesses that 1 % of the rows overlap: with the compartment GIN index
    // alone, a search scoped only by the access rule (a citizen's GET CarePlan) walked every
    // resource and took 1.5 s at 30,000 patients. A resource's first compartment in a B-tree, and
    // the few rows with several in a GIN index of their own, give the planner statistics per
    // patient (src/store/compartments.ts). ANALYZE (autovacuum's, or the bulk load's) collects
    // them; the statistics object makes the second part's rows countable.
    id: '019-first-compartment',
    sql: `
CREATE INDEX resources_compartment ON resources ((compartments[1]), type, rid) WHERE NOT deleted;
CREATE INDEX resources_shared_compartments ON resources USING gin (compartments) WITH (fastupdate = off) WHERE NOT deleted AND cardinality(compartments) > 1;
CREATE STATISTICS resources_compartment_count ON (cardinality(compartments)) FROM resources;
DROP INDEX resources_compartments;
ANALYZE resources;
`,
  },
];
