import { type JsonObject, isObject } from '../../model/fields.js';
import { ApiError, type KubeApiClient, type WatchEnd, type WatchHandle, errorEventToApiError } from './api-client.js';
import { Backoff } from '../../backoff.js';

/** One watched resource: where it lives and which objects of it we want. */
export interface ResourceSpec {
  /** Short name for logs and metrics: services, endpointslices, nodes. */
  readonly name: string;
  readonly path: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
}

/** What the reflector reports. `key` is "namespace/name" (or "name" for cluster-scoped objects). */
export interface ReflectorSink {
  upsert(key: string, object: JsonObject): void;
  remove(key: string): void;
  /** The first complete LIST has been delivered (once per reflector). */
  synced?(): void;
}

export type ReflectorEvent =
  | { readonly kind: 'listed'; readonly resource: string; readonly items: number; readonly pages: number; readonly resourceVersion: string }
  | { readonly kind: 'watching'; readonly resource: string; readonly resourceVersion: string }
  | { readonly kind: 'watch-ended'; readonly resource: string; readonly reason: string; readonly error?: string }
  | { readonly kind: 'retry'; readonly resource: string; readonly delayMs: number; readonly error: string }
  | { readonly kind: 'relist'; readonly resource: string; readonly reason: string }
  | { readonly kind: 'event'; readonly resource: string; readonly type: string };

export interface ReflectorOptions {
  /** LIST page size (kube-proxy's informers use 500). */
  readonly pageSize: number;
  /** Asked of the server so it rotates watches; the server ends the stream cleanly after this. */
  readonly watchTimeoutSeconds: number;
  /** With bookmarks requested, a healthy watch is never silent this long; past it, the watch is presumed dead. */
  readonly idleTimeoutMs: number;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly onEvent?: (e: ReflectorEvent) => void;
}

export const DEFAULT_REFLECTOR_OPTIONS: ReflectorOptions = {
  pageSize: 500,
  watchTimeoutSeconds: 300,
  idleTimeoutMs: 90_000,
  backoff: { initialMs: 500, maxMs: 30_000 },
};

/**
 * A reflector as client-go has one, which client-node 1.4's informer is not: LIST (paginated) then WATCH
 * from the list's resourceVersion with bookmarks and a server-side timeout; a watch that ends cleanly resumes
 * from the last resourceVersion seen; 410 Gone (HTTP or ERROR event) re-lists and reports the difference;
 * every other failure retries with capped exponential backoff, forever, until stop(). Only keys and
 * resourceVersions are kept here; objects go straight to the sink.
 */
export class Reflector {
  /** key → resourceVersion of every object the sink holds. */
  private readonly known = new Map<string, string>();
  private resourceVersion = '';
  private lastGoneAt = 0;
  private stopped = false;
  private everSynced = false;
  private watchHandle: WatchHandle | undefined;
  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly backoff: Backoff;

  constructor(
    private readonly client: KubeApiClient,
    readonly spec: ResourceSpec,
    private readonly sink: ReflectorSink,
    private readonly options: ReflectorOptions = DEFAULT_REFLECTOR_OPTIONS,
  ) {
    this.backoff = new Backoff(options.backoff.initialMs, options.backoff.maxMs);
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Ends the loop and any open request; the sink keeps what it has. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopController.abort();
    this.watchHandle?.abort();
    this.wake?.();
    await this.loop;
  }

  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  get hasSynced(): boolean {
    return this.everSynced;
  }

  private emit(e: ReflectorEvent): void {
    this.options.onEvent?.(e);
  }

  private async run(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list();
          needList = false;
        }
        const openedAt = Date.now();
        const { end, events } = await this.watchOnce();
        if (this.stopped) break;
        if (end.kind === 'error') throw end.error;
        this.emit({ kind: 'watch-ended', resource: this.spec.name, reason: end.kind });
        // A silent stream may be a half-open connection, and a server that closes every watch at once would
        // otherwise be hammered: reconnect either way, but after a backoff.
        if (end.kind === 'idle' || (events === 0 && Date.now() - openedAt < 1000)) await this.sleep(this.backoff.next());
      } catch (e) {
        if (this.stopped) break;
        const error = e instanceof Error ? e : new Error(String(e));
        if (error instanceof ApiError && error.gone) {
          this.emit({ kind: 'relist', resource: this.spec.name, reason: error.message });
          this.resourceVersion = '';
          needList = true;
          // A 410 is an answer, not an outage: re-list at once, unless the server keeps saying it.
          if (Date.now() - this.lastGoneAt < 1000) await this.sleep(this.backoff.next());
          this.lastGoneAt = Date.now();
          continue;
        }
        const delayMs = this.backoff.next();
        this.emit({ kind: 'retry', resource: this.spec.name, delayMs, error: error.message });
        await this.sleep(delayMs);
      }
    }
  }

  /** Pages through the collection, feeding the sink as it goes, then removes what the collection no longer has. */
  private async list(): Promise<void> {
    const seen = new Set<string>();
    let continueToken: string | undefined;
    let pages = 0;
    let listRV = '';
    do {
      const page = await this.client.getJson(
        this.spec.path,
        {
          labelSelector: this.spec.labelSelector,
          fieldSelector: this.spec.fieldSelector,
          limit: String(this.options.pageSize),
          continue: continueToken,
        },
        this.stopController.signal,
      );
      if (this.stopped) return;
      pages++;
      const metadata = isObject(page['metadata']) ? page['metadata'] : {};
      if (pages === 1) listRV = typeof metadata['resourceVersion'] === 'string' ? metadata['resourceVersion'] : '';
      const items = Array.isArray(page['items']) ? page['items'] : [];
      for (const item of items) {
        if (!isObject(item)) continue;
        const key = objectKey(item);
        if (key === undefined) continue;
        seen.add(key);
        const rv = resourceVersionOf(item);
        if (this.known.get(key) === rv) continue;
        this.known.set(key, rv);
        this.sink.upsert(key, item);
      }
      const next = metadata['continue'];
      continueToken = typeof next === 'string' && next !== '' ? next : undefined;
    } while (continueToken !== undefined);
    for (const key of [...this.known.keys()]) {
      if (seen.has(key)) continue;
      this.known.delete(key);
      this.sink.remove(key);
    }
    this.resourceVersion = listRV;
    this.backoff.reset();
    this.emit({ kind: 'listed', resource: this.spec.name, items: seen.size, pages, resourceVersion: listRV });
    if (!this.everSynced) {
      this.everSynced = true;
      this.sink.synced?.();
    }
  }

  private async watchOnce(): Promise<{ end: WatchEnd; events: number }> {
    let failure: ApiError | undefined;
    let events = 0;
    const handle = await this.client.watch(
      this.spec.path,
      {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: 'true',
        timeoutSeconds: String(this.options.watchTimeoutSeconds),
        labelSelector: this.spec.labelSelector,
        fieldSelector: this.spec.fieldSelector,
      },
      (event) => {
        if (event.type === 'ERROR') {
          failure = errorEventToApiError(event.object);
          handle.abort();
          return;
        }
        events++;
        const rv = resourceVersionOf(event.object);
        if (rv !== '') this.resourceVersion = rv;
        this.backoff.reset();
        this.emit({ kind: 'event', resource: this.spec.name, type: event.type });
        if (event.type === 'BOOKMARK') return;
        const key = objectKey(event.object);
        if (key === undefined) return;
        if (event.type === 'DELETED') {
          if (this.known.delete(key)) this.sink.remove(key);
        } else {
          this.known.set(key, rv);
          this.sink.upsert(key, event.object);
        }
      },
      this.options.idleTimeoutMs,
    );
    this.watchHandle = handle;
    if (this.stopped) handle.abort();
    this.emit({ kind: 'watching', resource: this.spec.name, resourceVersion: this.resourceVersion });
    const end = await handle.ended;
    this.watchHandle = undefined;
    if (failure !== undefined) throw failure;
    return { end, events };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }
}

export function objectKey(object: JsonObject): string | undefined {
  const metadata = object['metadata'];
  if (!isObject(metadata) || typeof metadata['name'] !== 'string') return undefined;
  const ns = metadata['namespace'];
  return typeof ns === 'string' && ns !== '' ? `${ns}/${metadata['name']}` : metadata['name'];
}

function resourceVersionOf(object: JsonObject): string {
  const metadata = object['metadata'];
  return isObject(metadata) && typeof metadata['resourceVersion'] === 'string' ? metadata['resourceVersion'] : '';
}
