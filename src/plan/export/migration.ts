/** Tables for bulk export: jobs and the NDJSON files they produce. */
import type { Migration } from '../../store/migrations.js';

export const exportMigration: Migration = {
  id: '006-bulk-export',
  sql: `
CREATE TABLE export_jobs (
  id          text COLLATE "C" PRIMARY KEY,
  owner       text NOT NULL,
  request     text NOT NULL,
  status      text NOT NULL,
  created     timestamptz NOT NULL DEFAULT now(),
  finished    timestamptz,
  error       text
);
CREATE TABLE export_files (
  job         text COLLATE "C" NOT NULL REFERENCES export_jobs (id),
  n           integer NOT NULL,
  type        text COLLATE "C" NOT NULL,
  count       integer NOT NULL,
  content     text NOT NULL,
  PRIMARY KEY (job, n)
);
`,
};
