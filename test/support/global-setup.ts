/**
 * Runs once before the suite. On the embedded database it builds one migrated PGlite data
 * directory and saves it, so each test file starts from a copy in half a second instead of
 * running initdb and the migrations again.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../src/store/migrate.js';
import { openPglite } from '../../src/store/pglite.js';

export default async function setup(project: TestProject): Promise<() => void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'samplan-test-'));
  if (!process.env.DATABASE_URL) {
    const db = await openPglite();
    await migrate(db);
    const dump = await db.dump();
    await db.close();
    const file = path.join(dir, 'pglite-template.tar');
    writeFileSync(file, Buffer.from(await dump.arrayBuffer()));
    project.provide('pgliteTemplate', file);
  } else {
    project.provide('pgliteTemplate', '');
  }
  return () => rmSync(dir, { recursive: true, force: true });
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteTemplate: string;
  }
}
