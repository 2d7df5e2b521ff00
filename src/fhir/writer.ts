/**
 * The one write pipeline. Every change to a resource — a single create/update/patch/delete, each
 * entry of a batch or transaction, conditional interactions, later operations and seeding — goes
 * through here: prepare (id, meta) → validate (R4 + declared profiles) → compute index rows →
 * store the new version with its index rows in the caller's database transaction.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Resource } from '@medplum/fhirtypes';
import { extractIndex, type IndexRows } from '../search/extract.js';
import type { Queryable, Transaction } from '../store/db.js';
import type { NewVersion, ResourceStore, StoredResource } from '../store/resources.js';
import { errors, FhirError } from './outcomes.js';
import type { RequestContext } from './types.js';
import { hasErrors, validateResource } from './validation/validator.js';

export interface WrittenVersion {
  type: string;
  id: string;
  version: number;
  lastUpdated: Date;
  /** JSON text of the version; null for a deletion. */
  content: string | null;
}

export interface WriteResult {
  version: WrittenVersion;
  /** True when the write created the resource (201), false when it changed or kept an existing one. */
  created: boolean;
  /** False when an update carried no change and no new version was made. */
  changed: boolean;
}

type Method = 'POST' | 'PUT' | 'PATCH';

/** A write about to be stored: what domain rules see and may adjust (or refuse by throwing). */
export interface PendingWrite {
  q: Queryable;
  ctx: RequestContext;
  type: string;
  id: string;
  method: Method;
  /** The current version, if the resource exists. */
  current?: Resource;
  next: Resource;
}

/** A write stored in the current transaction: for what follows from it (provenance, notifications, tasks). */
export interface StoredWrite {
  q: Queryable;
  ctx: RequestContext;
  type: string;
  id: string;
  method: Method | 'DELETE';
  version: WrittenVersion;
  previous?: Resource;
  /** The new content; undefined for a delete. */
  next?: Resource;
  compartments: readonly string[];
  writer: ResourceWriter;
}

/** An update about to lock the current version, with the content its request sends. */
export interface LockingWrite {
  q: Transaction;
  ctx: RequestContext;
  type: string;
  id: string;
  /** As the request sent it: not yet checked or validated. */
  next: Resource;
}

/**
 * Domain code plugs into the write pipeline here (plan rules, provenance, subscriptions): the
 * storage layer and the engine know nothing about plans.
 */
export interface WriteHook {
  /**
   * Before an update (not a patch) locks the current version: to start a lookup that depends only
   * on the new content, so that it goes to the database with the lock — one round trip fewer. The
   * writer waits for what it returns with the lock (the answers come together), so that the rest
   * of the write runs without waiting and goes out with COMMIT. Must not throw (what it throws is
   * ignored): it sees the content before anything has checked it.
   */
  locking?(w: LockingWrite): Promise<unknown> | undefined;
  /** Before validation: returns the resource to store (possibly adjusted); throws a FhirError to refuse. */
  prepare?(w: PendingWrite): Promise<Resource> | Resource;
  /**
   * Just before the version is stored, with all that `stored` will be given: to start a lookup
   * that `stored` needs (without waiting for it), so that it travels to the database with the
   * store's own statement — one round trip instead of two. Must not throw.
   */
  storing?(w: StoredWrite): void;
  /** After storing, in the same transaction. */
  stored?(w: StoredWrite): Promise<void>;
  /** The resource without what this hook adds (e.g. who last changed it), for "did anything change?". */
  comparable?(resource: Resource): Resource;
}

/** `W/"3"` or `"3"` → 3; anything else is a client error. */
export function parseETag(etag: string): number {
  const m = /^\s*(?:W\/)?"(\d+)"\s*$/.exec(etag);
  if (!m) throw errors.badRequest(`If-Match must be an ETag like W/"3", got ${JSON.stringify(etag.slice(0, 40))}`);
  return Number(m[1]);
}

/** Serialises a resource with resourceType, id and meta first, as people expect to read it. */
export function serialize(resource: Resource): string {
  const { resourceType, id, meta, ...rest } = resource as Resource & Record<string, unknown>;
  return JSON.stringify({ resourceType, id, meta, ...rest });
}

/** The resource without the server-managed parts of meta, for "did anything change?" comparisons. */
function withoutServerMeta(resource: Resource): Resource {
  const copy = { ...resource } as Resource;
  if (copy.meta) {
    const { versionId: _v, lastUpdated: _l, ...meta } = copy.meta;
    if (Object.keys(meta).length) copy.meta = meta;
    else delete copy.meta;
  }
  return copy;
}

export class ResourceWriter {
  private readonly hooks: WriteHook[] = [];

  constructor(private readonly store: ResourceStore) {}

  /** Adds a hook; hooks run in the order they were added. */
  use(hook: WriteHook): void {
    this.hooks.push(hook);
  }

  /** Validates `resource` and throws 400 with every error issue when it is not valid R4. */
  validate(resource: Resource): void {
    const issues = validateResource(resource);
    if (hasErrors(issues)) {
      throw new FhirError(
        400,
        issues.filter((i) => i.severity === 'error' || i.severity === 'fatal'),
      );
    }
  }

  private prepare(resource: Resource, id: string, version: number, lastUpdated: Date, trusted: boolean): Resource {
    const meta = { ...(resource.meta ?? {}), versionId: String(version), lastUpdated: lastUpdated.toISOString() };
    const prepared = { ...resource, id, meta } as Resource;
    if (!trusted) this.validate(prepared);
    return prepared;
  }

  /** Runs the domain hooks over a resource about to be written. */
  private async applyHooks(q: Queryable, ctx: RequestContext, resource: Resource, method: Method, previous: Resource | undefined): Promise<Resource> {
    let candidate = resource;
    for (const hook of this.hooks) {
      if (hook.prepare) {
        try {
          candidate = await hook.prepare({ q, ctx, type: resource.resourceType, id: resource.id as string, method, next: candidate, ...(previous ? { current: previous } : {}) });
        } catch (err) {
          // Hooks run before validation and read the resource as R4 shapes it: one that fails on a
          // malformed body (`meta.profile` a string, a null coding) is answered with what is wrong
          // with the body (400), not with its own TypeError (500). A valid body's failure stands.
          if (!(err instanceof FhirError)) this.validate(candidate);
          throw err;
        }
      }
    }
    return candidate;
  }

  /**
   * Stores `candidate` (hooks already applied) as the next version after `current`. `kind`: an
   * update (which may create, under the client's id), a create under a new id, or a record the
   * server built (a create not validated again).
   */
  private async write(
    q: Queryable,
    ctx: RequestContext,
    candidate: Resource,
    method: Method,
    current: StoredResource | undefined,
    kind: 'update' | 'create' | 'record',
  ): Promise<WriteResult | undefined> {
    const version = (current?.version ?? 0) + 1;
    // lastUpdated never goes backwards for a resource, even if the clock does.
    const now = new Date(Math.max(Date.now(), (current?.lastUpdated.getTime() ?? 0) + 1));
    const live = current && !current.deleted && current.content ? current : undefined;
    const previous = live ? (JSON.parse(live.content as string) as Resource) : undefined;
    const prepared = this.prepare(candidate, candidate.id as string, version, now, kind === 'record');
    const index = extractIndex(prepared, ctx.baseUrl);
    ctx.access.checkWrite({
      type: prepared.resourceType,
      next: prepared,
      nextCompartments: index.compartments,
      ...(previous ? { current: previous } : {}),
      currentCompartments: live?.compartments ?? [],
    });
    const content = serialize(prepared);
    const row = {
      type: prepared.resourceType,
      id: prepared.id as string,
      version,
      lastUpdated: now.toISOString(),
      method,
      content,
      compartments: index.compartments,
    };
    const written: WrittenVersion = { type: row.type, id: row.id, version, lastUpdated: now, content };
    const stored: StoredWrite = { q, ctx, type: row.type, id: row.id, method, version: written, next: prepared, compartments: index.compartments, ...(previous ? { previous } : {}), writer: this };
    this.beforeStore(stored);
    const tx = q as Partial<Transaction>;
    if (current) {
      await this.updateLocked(q, current, row, index.rows);
    } else if (kind === 'update') {
      // Someone created the same type/id between our lock attempt and the insert.
      if ((await this.store.insert(q, row, index.rows)) === undefined) return undefined;
    } else if (kind === 'record' && tx.defer && !index.compartments.length) {
      // Nothing in the transaction looks for a record outside every patient's compartment (the
      // hooks that search match by patient), so its row can go with COMMIT: one round trip less.
      this.store.insertWithCommit(tx as Transaction, row, index.rows);
    } else {
      // A new id: the INSERT can only fail, taking the transaction with it. What follows (the rest
      // of a Bundle's entries) goes out behind it: a transaction's creates cost no round trip each.
      await this.settle(q, this.store.insertNew(q, row, index.rows), () => errors.conflict(`${row.type}/${row.id} already exists`));
    }
    await this.afterStore(stored);
    return {
      version: written,
      created: !current || current.deleted,
      changed: true,
    };
  }

  /** Creates a resource with a new server-assigned id (or `id` when given, e.g. by conditional update). */
  async create(q: Queryable, ctx: RequestContext, resource: Resource, id?: string): Promise<WriteResult> {
    return this.createAs(q, ctx, { ...resource, id: id ?? crypto.randomUUID() } as Resource, false);
  }

  /**
   * Creates a record the server builds itself from values already checked (the Provenance of a
   * write): through the hooks and the index like any resource, but not validated on every write —
   * it was more than half of a single write's validation; its builder's tests validate what it
   * writes. In a transaction, a record outside every patient compartment is stored with COMMIT.
   */
  async createRecord(q: Queryable, ctx: RequestContext, resource: Resource): Promise<WriteResult> {
    return this.createAs(q, ctx, { ...resource, id: crypto.randomUUID() } as Resource, true);
  }

  private async createAs(q: Queryable, ctx: RequestContext, withId: Resource, trusted: boolean): Promise<WriteResult> {
    return (await this.write(q, ctx, await this.applyHooks(q, ctx, withId, 'POST', undefined), 'POST', undefined, trusted ? 'record' : 'create')) as WriteResult;
  }

  /**
   * Updates (or creates, with a client-chosen id) `type/id`. `next` is the new content, or a
   * function of the current content (PATCH), applied while the row is locked so concurrent writers
   * cannot lose each other's changes. An update that changes nothing makes no new version.
   */
  async update(
    q: Queryable,
    ctx: RequestContext,
    type: string,
    id: string,
    next: Resource | ((current: Resource | undefined) => Resource),
    options: { ifMatch?: string; method?: Method } = {},
  ): Promise<WriteResult> {
    // A concurrent create of the same id makes the first attempt find nothing to lock; the
    // second attempt then sees (and locks) the committed row.
    for (let attempt = 0; ; attempt++) {
      const result = await this.tryUpdate(q, ctx, type, id, next, options);
      if (result) return result;
      if (attempt > 0) throw errors.conflict(`${type}/${id} was created by a concurrent request; retry`);
    }
  }

  private async tryUpdate(
    q: Queryable,
    ctx: RequestContext,
    type: string,
    id: string,
    next: Resource | ((current: Resource | undefined) => Resource),
    options: { ifMatch?: string; method?: Method },
  ): Promise<WriteResult | undefined> {
    const locked = this.store.lock(q, type, id);
    const lookups = typeof next !== 'function' && (q as Partial<Transaction>).inTransaction ? this.beforeLock({ q: q as Transaction, ctx, type, id, next }) : [];
    const [current] = await Promise.all([locked, Promise.allSettled(lookups)]);
    const live = current && !current.deleted ? current : undefined;
    if (options.ifMatch !== undefined) {
      const expected = parseETag(options.ifMatch);
      if (!live || live.version !== expected) {
        throw errors.versionConflict(
          live
            ? `Version conflict: ${type}/${id} is at version ${live.version}, not ${expected}; read it again and reapply your change`
            : `Version conflict: ${type}/${id} does not exist, so version ${expected} cannot match`,
        );
      }
    }
    const currentResource = live?.content ? (JSON.parse(live.content) as Resource) : undefined;
    if (live && currentResource) {
      // May the caller change this resource at all? Checked before a patch sees its content or an
      // unchanged update echoes it back.
      ctx.access.checkWrite({ type, current: currentResource, currentCompartments: live.compartments, next: currentResource, nextCompartments: live.compartments });
    }
    const resource = typeof next === 'function' ? next(currentResource) : next;
    if (resource.resourceType !== type) {
      throw errors.badRequest(`The resource is a ${String(resource.resourceType)}, but the URL is for ${type}`, 'resourceType');
    }
    const candidate = await this.applyHooks(q, ctx, { ...resource, id } as Resource, options.method ?? 'PUT', currentResource);
    if (currentResource && isDeepStrictEqual(this.comparable(candidate), this.comparable(currentResource))) {
      // Still validate: an unchanged but invalid body must not be acknowledged as fine.
      this.validate({ ...candidate, meta: currentResource.meta } as Resource);
      return {
        version: { type, id, version: live!.version, lastUpdated: live!.lastUpdated, content: live!.content },
        created: false,
        changed: false,
      };
    }
    return this.write(q, ctx, candidate, options.method ?? 'PUT', current, 'update');
  }

  /**
   * Logically deletes `type/id`: a new version without content; history stays. Deleting what does
   * not exist (or is already deleted) succeeds without a new version, as the spec allows.
   */
  async delete(q: Queryable, ctx: RequestContext, type: string, id: string, options: { ifMatch?: string } = {}): Promise<WrittenVersion | undefined> {
    const current = await this.store.lock(q, type, id);
    if (current && !current.deleted && current.content) {
      ctx.access.checkWrite({ type, current: JSON.parse(current.content) as Resource, currentCompartments: current.compartments, nextCompartments: [] });
    }
    if (options.ifMatch !== undefined) {
      const expected = parseETag(options.ifMatch);
      if (!current || current.deleted || current.version !== expected) {
        throw errors.versionConflict(`Version conflict: ${type}/${id} is not at version ${expected}`);
      }
    }
    if (!current || current.deleted) return undefined;
    const version = current.version + 1;
    const now = new Date(Math.max(Date.now(), current.lastUpdated.getTime() + 1));
    const written: WrittenVersion = { type, id, version, lastUpdated: now, content: null };
    const stored: StoredWrite = { q, ctx, type, id, method: 'DELETE', version: written, previous: JSON.parse(current.content as string) as Resource, compartments: current.compartments, writer: this };
    this.beforeStore(stored);
    await this.updateLocked(q, current, { type, id, version, lastUpdated: now.toISOString(), method: 'DELETE', content: null, compartments: [] }, undefined);
    await this.afterStore(stored);
    return written;
  }

  /**
   * Stores the next version of a row this transaction has locked. The UPDATE's answer is known
   * under the lock, so in a transaction it comes with COMMIT's (what follows that must see the
   * new version is sent after it on the same connection); a row at another version fails it.
   */
  private async updateLocked(q: Queryable, current: StoredResource, row: NewVersion, index: IndexRows | undefined): Promise<void> {
    await this.settle(q, this.store.update(q, current, row, index), () =>
      errors.versionConflict(`${row.type}/${row.id} was changed by someone else; read it again and retry`),
    );
  }

  /**
   * The answer of a statement that fails as a whole rather than do nothing (its transaction with
   * it): in a transaction taken with COMMIT's (Transaction.expect), without waiting for it here;
   * `refusal` is what a false answer throws.
   */
  private async settle(q: Queryable, done: Promise<boolean>, refusal: () => FhirError): Promise<void> {
    const answered = done.then((ok) => {
      if (!ok) throw refusal();
    });
    const tx = q as Partial<Transaction>;
    if (tx.expect) tx.expect(answered);
    else await answered;
  }

  /** What is compared to decide whether an update changes anything. */
  private comparable(resource: Resource): Resource {
    return this.hooks.reduce((r, hook) => (hook.comparable ? hook.comparable(r) : r), withoutServerMeta(resource));
  }

  private beforeLock(w: LockingWrite): Array<Promise<unknown>> {
    const lookups: Array<Promise<unknown>> = [];
    for (const hook of this.hooks) {
      try {
        const lookup = hook.locking?.(w);
        if (lookup) lookups.push(lookup);
      } catch {
        // Only a head start: the lookup is made later if the content still asks for it.
      }
    }
    return lookups;
  }

  private beforeStore(w: StoredWrite): void {
    for (const hook of this.hooks) hook.storing?.(w);
  }

  private async afterStore(w: StoredWrite): Promise<void> {
    for (const hook of this.hooks) await hook.stored?.(w);
  }
}
