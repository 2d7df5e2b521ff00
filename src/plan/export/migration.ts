/**
 * Tables for bulk export ($export): the jobs, the NDJSON files they produce, and the files' parts.
 *
 * - `export_jobs`: one row per kick-off. `owner` is a hash of who started it (person and client),
 *   the only one who may poll, download or cancel. `principal` (JSON) is what is needed to rebuild
 *   their access rule in the background; it is cleared when the job ends. `patients` are the
 *   Patient ids a patient-level export was scoped to at kick-off. `types` is the list of types to
 *   export in order (NULL until the job first runs when the request named none). The checkpoint
 *   (`type_index`, `last_rid`) is written in the same transaction as each page of output, so a job
 *   resumes exactly where it stopped. `claimed_by` / `lease_until` is the claim of the instance
 *   running it: claimed with FOR UPDATE SKIP LOCKED, renewed with every page, released on a clean
 *   shutdown, and taken over by another instance when it runs out after a crash.
 * - `export_files`: one row per output file (one type each, at most N resources each).
 * - `export_file_parts`: the file's NDJSON text, one part per page written, in order.
 * Deleting a job (cancel, expiry) deletes its files and parts.
 */
import type { Migration } from '../../store/migrations.js';

export const exportMigration: Migration = {
  id: '006-bulk-export',
  sql: `
CREATE TABLE export_jobs (
  id               text COLLATE "C" PRIMARY KEY,
  owner            text COLLATE "C" NOT NULL,
  actor            text COLLATE "C" NOT NULL,
  principal        text,
  level            text COLLATE "C" NOT NULL,
  patients         text[] COLLATE "C",
  types            text[] COLLATE "C",
  since            timestamptz,
  request          text NOT NULL,
  status           text COLLATE "C" NOT NULL,
  created          timestamptz NOT NULL DEFAULT now(),
  transaction_time timestamptz,
  claimed_by       text COLLATE "C",
  lease_until      timestamptz,
  type_index       integer NOT NULL DEFAULT 0,
  last_rid         bigint NOT NULL DEFAULT 0,
  exported         bigint NOT NULL DEFAULT 0,
  finished         timestamptz,
  expires          timestamptz,
  error            text,
  CONSTRAINT export_jobs_status CHECK (status IN ('accepted', 'in-progress', 'completed', 'failed')),
  CONSTRAINT export_jobs_level CHECK (level IN ('system', 'patient'))
);
CREATE INDEX export_jobs_due ON export_jobs (created) WHERE status IN ('accepted', 'in-progress');
CREATE INDEX export_jobs_owner ON export_jobs (owner) WHERE status IN ('accepted', 'in-progress');
CREATE INDEX export_jobs_expires ON export_jobs (expires) WHERE expires IS NOT NULL;

CREATE TABLE export_files (
  job   text COLLATE "C" NOT NULL REFERENCES export_jobs (id) ON DELETE CASCADE,
  n     integer NOT NULL,
  type  text COLLATE "C" NOT NULL,
  count integer NOT NULL,
  PRIMARY KEY (job, n)
);

CREATE TABLE export_file_parts (
  job     text COLLATE "C" NOT NULL,
  n       integer NOT NULL,
  part    integer NOT NULL,
  content text NOT NULL,
  PRIMARY KEY (job, n, part),
  FOREIGN KEY (job, n) REFERENCES export_files (job, n) ON DELETE CASCADE
);
`,
};
