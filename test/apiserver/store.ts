import { randomUUID } from 'node:crypto';
import { RESOURCE_LIST, resourceByName, resourceOf, type ResourceDef, type ResourceName } from './resources.js';

/** A Kubernetes object as JSON: `kind`, `apiVersion`, `metadata`, and whatever else it carries. */
export type KubeObject = Record<string, unknown>;

/**
 * One version of one object. The JSON text is built once per version and reused by every LIST and WATCH;
 * it leaves out kind/apiVersion because LIST items carry neither (as the real server writes them).
 */
export class Entry {
  constructor(
    readonly def: ResourceDef,
    readonly namespace: string,
    readonly name: string,
    readonly rv: number,
    readonly labels: Readonly<Record<string, string>> | undefined,
    readonly uid: string,
    readonly created: string,
    /** The object without kind/apiVersion, as JSON. */
    readonly body: string,
  ) {}

  /** The object with kind and apiVersion first, as WATCH events and GETs carry it. */
  fullJson(): string {
    return `{"kind":"${this.def.kind}","apiVersion":"${this.def.apiVersion}",${this.body.slice(1)}`;
  }

  /** A fresh copy of the object (callers may mutate it). */
  object(): KubeObject {
    return JSON.parse(this.fullJson()) as KubeObject;
  }

  /** The same content stamped with another resourceVersion: what DELETED events carry. */
  atVersion(rv: number): Entry {
    const body = JSON.parse(this.body) as KubeObject;
    body['metadata'] = { ...(body['metadata'] as KubeObject), resourceVersion: String(rv) };
    return new Entry(this.def, this.namespace, this.name, rv, this.labels, this.uid, this.created, JSON.stringify(body));
  }
}

export type StoreEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One change. `prev` is the version before (MODIFIED, DELETED); `cur` the version after (ADDED, MODIFIED). */
export interface StoreEvent {
  readonly type: StoreEventType;
  readonly rv: number;
  readonly def: ResourceDef;
  readonly cur: Entry | undefined;
  readonly prev: Entry | undefined;
}

export type StoreListener = (ev: StoreEvent) => void;

const SNAPSHOTS_KEPT = 32;

function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function byKey(a: Entry, b: Entry): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function nowTimestamp(): string {
  // Kubernetes timestamps have second precision (RFC 3339, no fraction).
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The objects, one global resourceVersion counter (like etcd's revision) and a bounded event history
 * (like the apiserver's watch cache). Everything is synchronous, so a LIST or a watch's replay never
 * interleaves with a write.
 */
export class Store {
  private rvCounter = 1; // etcd starts at revision 1
  private readonly objects = new Map<ResourceName, Map<string, Entry>>();
  private readonly sorted = new Map<ResourceName, readonly Entry[]>();
  private readonly history: (StoreEvent | undefined)[] = [];
  private historyHead = 0;
  /** Watches from an RV below this get 410: the events after it are no longer all in the history. */
  private floorRV = 1;
  private readonly listeners = new Set<StoreListener>();
  /** Sorted item arrays LIST pages were served from, by `${resource}@${rv}`, oldest first. */
  private readonly snapshots = new Map<string, readonly Entry[]>();

  constructor(private readonly historyLimit: number) {
    if (!Number.isInteger(historyLimit) || historyLimit < 1) throw new Error(`historyLimit must be a positive integer, got ${historyLimit}`);
    for (const r of RESOURCE_LIST) this.objects.set(r.resource, new Map());
  }

  get resourceVersion(): number {
    return this.rvCounter;
  }

  get floor(): number {
    return this.floorRV;
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  apply(obj: KubeObject, timestamp: string = nowTimestamp()): KubeObject {
    const def = resourceOf(obj['kind'], obj['apiVersion']);
    if (def === undefined) {
      throw new Error(`test apiserver: cannot store ${String(obj['apiVersion'])} ${String(obj['kind'])}: not a served kind`);
    }
    const meta = (obj['metadata'] ?? {}) as KubeObject;
    const name = meta['name'];
    if (typeof name !== 'string' || name === '') {
      throw new Error(`test apiserver: cannot store ${def.kind} without metadata.name`);
    }
    const namespace = def.namespaced ? (typeof meta['namespace'] === 'string' && meta['namespace'] !== '' ? meta['namespace'] : 'default') : '';
    const table = this.table(def.resource);
    const key = keyOf(namespace, name);
    const prev = table.get(key);
    const rv = ++this.rvCounter;
    // An update keeps the object's identity (uid) and age, as the real server does.
    const uid = prev?.uid ?? (typeof meta['uid'] === 'string' ? meta['uid'] : randomUUID());
    const created = prev?.created ?? (typeof meta['creationTimestamp'] === 'string' ? meta['creationTimestamp'] : timestamp);
    const metadata: KubeObject = {
      ...meta,
      name,
      ...(def.namespaced ? { namespace } : {}),
      uid,
      resourceVersion: String(rv),
      creationTimestamp: created,
    };
    if (!def.namespaced) delete metadata['namespace'];
    const { kind: _kind, apiVersion: _apiVersion, metadata: _metadata, ...rest } = obj;
    const body = JSON.stringify({ metadata, ...rest });
    const labels = metadata['labels'] as Record<string, string> | undefined;
    const cur = new Entry(def, namespace, name, rv, labels ? { ...labels } : undefined, uid, created, body);
    table.set(key, cur);
    this.sorted.delete(def.resource);
    this.record({ type: prev ? 'MODIFIED' : 'ADDED', rv, def, cur, prev });
    return cur.object();
  }

  /** Applies many objects with one timestamp; per object: one JSON.stringify and one event. */
  applyMany(objs: Iterable<KubeObject>): number {
    const ts = nowTimestamp();
    let n = 0;
    for (const o of objs) {
      this.apply(o, ts);
      n++;
    }
    return n;
  }

  remove(kind: string, namespace: string, name: string): KubeObject | undefined {
    const def = this.def(kind);
    const table = this.table(def.resource);
    const key = keyOf(def.namespaced ? namespace : '', name);
    const prev = table.get(key);
    if (prev === undefined) return undefined;
    table.delete(key);
    this.sorted.delete(def.resource);
    const rv = ++this.rvCounter;
    this.record({ type: 'DELETED', rv, def, cur: undefined, prev });
    return prev.atVersion(rv).object();
  }

  get(kind: string, namespace: string, name: string): KubeObject | undefined {
    return this.entry(this.def(kind), namespace, name)?.object();
  }

  /** Copies of every object of a kind, sorted by namespace/name; only `namespace`'s if given. */
  all(kind: string, namespace?: string): KubeObject[] {
    return this.list(this.def(kind))
      .filter((e) => namespace === undefined || e.namespace === namespace)
      .map((e) => e.object());
  }

  entry(def: ResourceDef, namespace: string, name: string): Entry | undefined {
    return this.table(def.resource).get(keyOf(def.namespaced ? namespace : '', name));
  }

  /** Every current object of a resource, sorted by namespace/name. The array is never mutated afterwards. */
  list(def: ResourceDef): readonly Entry[] {
    let s = this.sorted.get(def.resource);
    if (s === undefined) {
      s = [...this.table(def.resource).values()].sort(byKey);
      this.sorted.set(def.resource, s);
    }
    return s;
  }

  /** Keeps the current sorted list so later pages of a paginated LIST see the same state. */
  snapshot(def: ResourceDef): { rv: number; items: readonly Entry[] } {
    const rv = this.rvCounter;
    const items = this.list(def);
    const key = `${def.resource}@${rv}`;
    this.snapshots.delete(key);
    this.snapshots.set(key, items);
    while (this.snapshots.size > SNAPSHOTS_KEPT) {
      const oldest = this.snapshots.keys().next().value;
      if (oldest === undefined) break;
      this.snapshots.delete(oldest);
    }
    return { rv, items };
  }

  /** The snapshot a continue token points at, or undefined when it expired (compacted or evicted). */
  findSnapshot(def: ResourceDef, rv: number): readonly Entry[] | undefined {
    if (rv < this.floorRV) return undefined;
    return this.snapshots.get(`${def.resource}@${rv}`);
  }

  /** Events with rv > `after`, oldest first; undefined when some of them were already forgotten. */
  eventsSince(after: number): readonly StoreEvent[] | undefined {
    if (after < this.floorRV) return undefined;
    // History is ordered by rv: binary search the first event after `after`.
    let lo = this.historyHead;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const ev = this.history[mid];
      if (ev !== undefined && ev.rv <= after) lo = mid + 1;
      else hi = mid;
    }
    return this.history.slice(lo).filter((e): e is StoreEvent => e !== undefined);
  }

  /** Forgets all history: watches and continue tokens from older RVs now get 410. */
  compact(): void {
    this.history.length = 0;
    this.historyHead = 0;
    this.floorRV = this.rvCounter;
    this.snapshots.clear();
  }

  private record(ev: StoreEvent): void {
    this.history.push(ev);
    if (this.history.length - this.historyHead > this.historyLimit) {
      const dropped = this.history[this.historyHead];
      this.history[this.historyHead] = undefined; // release the entries now
      this.historyHead++;
      if (dropped !== undefined) this.floorRV = dropped.rv;
      // Trim the dead prefix now and then rather than shifting on every event (O(1) amortised).
      if (this.historyHead > this.historyLimit) {
        this.history.splice(0, this.historyHead);
        this.historyHead = 0;
      }
    }
    for (const l of this.listeners) l(ev);
  }

  private def(kind: string): ResourceDef {
    const def = resourceByName(kind);
    if (def === undefined) throw new Error(`test apiserver: unknown kind or resource "${kind}"`);
    return def;
  }

  private table(resource: ResourceName): Map<string, Entry> {
    const t = this.objects.get(resource);
    if (t === undefined) throw new Error(`test apiserver: no table for ${resource}`);
    return t;
  }
}
