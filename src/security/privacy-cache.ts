/**
 * The patients' privacy settings (who they are, consent, opt-out, restriction, blocks), cached
 * between requests: every request about a patient needs them, and they change rarely.
 *
 * Correctness before speed:
 * - A write of a Patient or Consent empties the cache of this instance as soon as it commits
 *   (before its answer is sent) and, through PostgreSQL NOTIFY (delivered at commit), of every
 *   other instance on the same database.
 * - An answer loaded while such a change committed is not kept (a generation counter), so a
 *   lookup racing a withdrawal cannot bring the old consent back.
 * - The cache is used only while this instance listens for changes; when listening starts again
 *   after a lost connection the cache is emptied (notifications may have been missed), and
 *   entries expire after `ttlMs` in any case.
 */
import type { Resource } from '@medplum/fhirtypes';
import { isDeepStrictEqual } from 'node:util';
import { BoundedMap } from '../bounded-map.js';
import type { WriteHook } from '../fhir/writer.js';
import type { Database, Queryable, Transaction } from '../store/db.js';
import { lookupPatient, type PatientPrivacy } from './privacy.js';

const CHANNEL = 'samplan_privacy';

/** Resource types whose writes change what lookupPatient answers. */
const PRIVACY_TYPES = new Set<Resource['resourceType']>(['Patient', 'Consent']);

export interface PrivacyCacheOptions {
  ttlMs?: number;
  maxEntries?: number;
}

export class PrivacyCache {
  private readonly entries: BoundedMap<string, { privacy: PatientPrivacy; until: number }>;
  private generation = 0;
  private listening = false;
  private readonly ttlMs: number;

  constructor(
    private readonly db: Database,
    options: PrivacyCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 5_000;
    this.entries = new BoundedMap(options.maxEntries ?? 10_000);
  }

  /** Starts listening for changes made by any instance; until then every lookup goes to the database. */
  async start(): Promise<void> {
    await this.db.listen(CHANNEL, () => this.forget(), () => {
      this.forget();
      this.listening = true;
    });
  }

  /** The privacy settings of the patient with this national id, from the cache when it may answer. */
  async lookup(nin: string): Promise<PatientPrivacy> {
    if (!this.listening) return lookupPatient(this.db, nin);
    const hit = this.entries.get(nin);
    if (hit && hit.until > Date.now()) return hit.privacy;
    const generation = this.generation;
    const loaded = await lookupPatient(this.db, nin);
    // Unchanged settings stay the same object: what is compiled for them (the caller's access
    // and its statements, authenticate.ts) lives on past the expiry.
    const privacy = hit && isDeepStrictEqual(hit.privacy, loaded) ? hit.privacy : loaded;
    if (generation === this.generation) {
      this.entries.set(nin, { privacy, until: Date.now() + this.ttlMs });
    }
    return privacy;
  }

  forget(): void {
    this.generation++;
    this.entries.clear();
  }

  /** The write hook: a committed Patient or Consent write empties this cache and tells the other instances. */
  readonly hook: WriteHook = {
    stored: async (w) => {
      if (!PRIVACY_TYPES.has(w.type as Resource['resourceType'])) return;
      await this.changed(w.q);
    },
  };

  private readonly notified = new WeakSet<Transaction>();

  private async changed(q: Queryable): Promise<void> {
    const tx = q as Partial<Transaction>;
    if (tx.afterCommit && this.notified.has(tx as Transaction)) return;
    await q.query(`SELECT pg_notify('${CHANNEL}', '')`);
    if (!tx.afterCommit) return this.forget();
    this.notified.add(tx as Transaction);
    tx.afterCommit(() => this.forget());
  }
}
