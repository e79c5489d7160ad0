// Kubernetes Events from the agent, written as kube-proxy writes them: events.k8s.io/v1, through client-go's
// tools/events broadcaster (cmd/kube-proxy/app/server.go: events.NewBroadcaster(&events.EventSinkImpl{Interface:
// client.EventsV1()}) and NewRecorder(scheme, "kube-proxy")), not the older core/v1 record package.
//
// What follows upstream (client-go tools/events: event_broadcaster.go, event_recorder.go):
// - reportingController "kube-proxy", reportingInstance "kube-proxy-<os.Hostname()>", eventTime in microseconds;
// - the name is "<regarding.name>.<unix nanoseconds in hex>", the namespace the regarding object's ("default" if none);
// - repeats of an event form a series: the first occurrence is created (POST); the second patches
//   series {count: 2, lastObservedTime} (strategic merge patch); later ones are only counted in memory. The
//   count is written every 30 min (which also keeps the Event from expiring; the API server's TTL is 1 h) and
//   once more when the series has been quiet for 6 min; then it is forgotten, and a later repeat starts a new Event;
// - a series patch that finds no Event creates it; a write that fails on the transport, with 5xx or 429 is
//   retried (12 tries, 10 s apart, jittered); any other rejection is logged and dropped.
// Differences, on purpose:
// - the note is part of what makes two events the same, so another failure (another port, another error) is
//   a new Event rather than a count under the first message;
// - at most maxEntries (default 1000, upstream's queue length) distinct events are tracked at once; beyond
//   that new ones are dropped, and logged;
// - a note over 1024 bytes is cut, as kube-scheduler does, since API validation rejects longer ones.
// record() never throws and never waits: writes run in the background, one at a time per event, and a write
// still waiting its turn is not queued twice (it sends the count as it is when it runs).
import { hostname } from 'node:os';
import { pino } from 'pino';
import type { Logger } from '../../log/logger.js';
import type { JsonObject } from '../../model/fields.js';
import { ApiError, type KubeApiClient } from './api-client.js';

export interface ObjectReference {
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly uid?: string;
  readonly apiVersion?: string;
}

export interface EventSpec {
  readonly regarding: ObjectReference;
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly action: string;
  readonly note: string;
}

export interface EventRecorderOptions {
  /** Upstream: the component name given to NewRecorder ("kube-proxy"). */
  readonly reportingController: string;
  /** Upstream: "<reportingController>-<hostname>". */
  readonly reportingInstance: string;
  readonly log?: Logger;
  /** A series quiet this long is finished (final count written) and forgotten. Default 6 min. */
  readonly finishMs?: number;
  /** An ongoing series' count is written this often. Default 30 min. */
  readonly refreshMs?: number;
  /** Writes failing on the transport, 5xx or 429. Default 12 tries, 10 s apart (jittered by up to 25%). */
  readonly retry?: { readonly tries: number; readonly delayMs: number };
  /** Distinct events tracked at once. Default 1000. */
  readonly maxEntries?: number;
}

/** kube-proxy's recorder identity: controller "kube-proxy", instance "kube-proxy-<hostname>". */
export function kubeProxyReporter(host: string = hostname()): { reportingController: string; reportingInstance: string } {
  return { reportingController: 'kube-proxy', reportingInstance: `kube-proxy-${host}` };
}

/** events.k8s.io/v1 validation limit on note (bytes). */
const NOTE_LIMIT = 1024;

interface Entry {
  readonly namespace: string;
  readonly name: string;
  /** The Event as first created, without series. */
  readonly event: JsonObject;
  /** For log lines. */
  readonly what: JsonObject;
  count: number;
  lastObserved: number;
  /** The count the server holds (0: nothing written yet). */
  written: number;
  lastWrite: number;
  /** Created on the server, as far as we know: series writes then PATCH. */
  exists: boolean;
  /** A write is queued and not started: a further one is redundant (it reads the count when it runs). */
  queued: boolean;
  chain: Promise<void>;
}

export class EventRecorder {
  private readonly controller: string;
  private readonly instance: string;
  private readonly log: Logger;
  private readonly finishMs: number;
  private readonly refreshMs: number;
  private readonly tries: number;
  private readonly delayMs: number;
  private readonly maxEntries: number;
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private sweepTimer: NodeJS.Timeout | undefined;
  private full = false;
  private seq = 0;

  constructor(
    private readonly client: KubeApiClient,
    opts: EventRecorderOptions,
  ) {
    this.controller = opts.reportingController;
    this.instance = opts.reportingInstance;
    this.log = opts.log ?? pino({ level: 'silent' });
    this.finishMs = positive('finishMs', opts.finishMs ?? 6 * 60_000);
    this.refreshMs = positive('refreshMs', opts.refreshMs ?? 30 * 60_000);
    this.tries = positive('retry.tries', opts.retry?.tries ?? 12);
    this.delayMs = positive('retry.delayMs', opts.retry?.delayMs ?? 10_000);
    this.maxEntries = positive('maxEntries', opts.maxEntries ?? 1000);
  }

  /** Records one occurrence; returns at once. */
  record(spec: EventSpec): void {
    if (this.abort.signal.aborted) return;
    try {
      this.observe(spec);
    } catch (e) {
      // A bug here must not reach the caller (the health server's listen loop).
      this.log.error({ reason: spec.reason, err: errorText(e) }, 'cannot record event');
    }
  }

  /** Resolves once every write queued so far, and any queued meanwhile, has finished (for tests). */
  async settled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  /** Stops: pending retries and the series timer end; nothing more is written. */
  close(): void {
    this.abort.abort();
    this.stopSweep();
  }

  private observe(spec: EventSpec): void {
    const now = Date.now();
    const note = truncateNote(spec.note);
    const ref = spec.regarding;
    const key = JSON.stringify([spec.type, spec.action, spec.reason, ref.apiVersion, ref.kind, ref.namespace, ref.name, ref.uid, note]);
    const seen = this.entries.get(key);
    if (seen !== undefined) {
      seen.count++;
      seen.lastObserved = now;
      // Upstream writes the series as soon as it exists; later counts wait for the refresh or the finish.
      if (seen.count === 2) this.write(seen);
      return;
    }
    if (this.entries.size >= this.maxEntries) {
      if (!this.full) this.log.warn({ maxEntries: this.maxEntries, reason: spec.reason }, 'too many distinct events in flight; new events are dropped until some finish');
      this.full = true;
      return;
    }
    const namespace = ref.namespace !== undefined && ref.namespace !== '' ? ref.namespace : 'default';
    const name = `${ref.name}.${this.nanos(now).toString(16)}`;
    const regarding: JsonObject = {
      ...(ref.apiVersion !== undefined ? { apiVersion: ref.apiVersion } : {}),
      kind: ref.kind,
      ...(ref.namespace !== undefined && ref.namespace !== '' ? { namespace: ref.namespace } : {}),
      name: ref.name,
      ...(ref.uid !== undefined ? { uid: ref.uid } : {}),
    };
    const event: JsonObject = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name, namespace },
      eventTime: microTime(now),
      reportingController: this.controller,
      reportingInstance: this.instance,
      action: spec.action,
      reason: spec.reason,
      regarding,
      note,
      type: spec.type,
    };
    const entry: Entry = {
      namespace,
      name,
      event,
      what: { namespace, name, type: spec.type, reason: spec.reason, regarding: `${ref.kind} ${ref.namespace ?? ''}/${ref.name}` },
      count: 1,
      lastObserved: now,
      written: 0,
      lastWrite: now,
      exists: false,
      queued: false,
      chain: Promise.resolve(),
    };
    this.entries.set(key, entry);
    this.write(entry);
    this.startSweep();
  }

  private write(entry: Entry): void {
    if (entry.queued || this.abort.signal.aborted) return;
    entry.queued = true;
    const run = entry.chain.then(async () => {
      entry.queued = false;
      try {
        await this.attempt(entry);
      } catch (e) {
        this.log.error({ event: entry.what, err: errorText(e) }, 'event write failed unexpectedly');
      }
    });
    entry.chain = run;
    this.inflight.add(run);
    void run.then(() => this.inflight.delete(run));
  }

  private async attempt(entry: Entry): Promise<void> {
    for (let tries = 1; ; tries++) {
      if (this.abort.signal.aborted) return;
      const count = entry.count;
      try {
        await this.writeOnce(entry, count, entry.lastObserved);
        entry.written = count;
        entry.lastWrite = Date.now();
        this.log.debug({ event: entry.what, count }, count === 1 ? 'event created' : 'event series updated');
        return;
      } catch (e) {
        if (this.abort.signal.aborted) return;
        const status = e instanceof ApiError ? e.status : 0;
        if (!retriable(e)) {
          this.log.warn({ event: entry.what, count, status, err: errorText(e) }, 'event rejected by the API server; not retried');
          return;
        }
        if (tries >= this.tries) {
          this.log.warn({ event: entry.what, count, tries, err: errorText(e) }, 'cannot write event; giving up');
          return;
        }
        this.log.debug({ event: entry.what, count, tries, err: errorText(e) }, 'cannot write event; retrying');
        // Jittered, so the nodes of a cluster do not all come back at once after an API outage.
        if (!(await this.sleep(this.delayMs * (1 + Math.random() / 4)))) return;
      }
    }
  }

  private async writeOnce(entry: Entry, count: number, lastObserved: number): Promise<void> {
    const base = `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(entry.namespace)}/events`;
    const series = count >= 2 ? { count, lastObservedTime: microTime(lastObserved) } : undefined;
    const signal = this.abort.signal;
    const patch = (body: JsonObject): Promise<JsonObject> =>
      this.client.send('PATCH', `${base}/${encodeURIComponent(entry.name)}`, { contentType: 'application/strategic-merge-patch+json', body }, signal);
    if (series !== undefined && entry.exists) {
      try {
        await patch({ series });
        return;
      } catch (e) {
        // Gone (expired, deleted, or never created): create it, series included, as upstream.
        if (!(e instanceof ApiError && e.status === 404)) throw e;
        entry.exists = false;
      }
    }
    try {
      await this.client.send('POST', base, { contentType: 'application/json', body: series === undefined ? entry.event : { ...entry.event, series } }, signal);
      entry.exists = true;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 409)) throw e;
      // Already there: an earlier create whose answer was lost. A series still has to reach it.
      entry.exists = true;
      if (series !== undefined) await patch({ series });
    }
  }

  /** Finishes quiet series and refreshes long ones (upstream's finishSeries and refreshExistingEventSeries). */
  private sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) {
      if (now - entry.lastObserved >= this.finishMs) {
        if (entry.count > entry.written && entry.count >= 2) this.write(entry);
        this.entries.delete(key);
      } else if (entry.count >= 2 && now - entry.lastWrite >= this.refreshMs) {
        this.write(entry);
      }
    }
    if (this.entries.size < this.maxEntries) this.full = false;
    if (this.entries.size === 0) this.stopSweep();
  }

  private startSweep(): void {
    if (this.sweepTimer !== undefined) return;
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(this.finishMs, this.refreshMs));
    // Remembered events must not keep the process alive.
    this.sweepTimer.unref();
  }

  private stopSweep(): void {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /** False when stopped while waiting. */
  private sleep(ms: number): Promise<boolean> {
    const signal = this.abort.signal;
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve(ok);
      };
      const onAbort = (): void => done(false);
      const timer = setTimeout(() => done(true), ms);
      timer.unref();
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Unix nanoseconds for the name; the sub-millisecond part counts, so two events in one millisecond differ. */
  private nanos(ms: number): bigint {
    this.seq = (this.seq + 1) % 1_000_000;
    return BigInt(ms) * 1_000_000n + BigInt(this.seq);
  }
}

/** Transport failures, timeouts, 5xx and 429 may pass; any other status will not (upstream's rule). */
function retriable(e: unknown): boolean {
  if (!(e instanceof ApiError)) return true;
  if (e.reason === 'Config') return false;
  return e.status === 0 || e.status === 429 || e.status >= 500;
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

function truncateNote(note: string): string {
  if (Buffer.byteLength(note, 'utf8') <= NOTE_LIMIT) return note;
  const suffix = ' ...';
  let cut = note.slice(0, NOTE_LIMIT - suffix.length);
  while (Buffer.byteLength(cut, 'utf8') > NOTE_LIMIT - suffix.length) cut = cut.slice(0, -1);
  // Not half a surrogate pair.
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return cut + suffix;
}

function positive(what: string, n: number): number {
  if (!Number.isFinite(n) || n <= 0) throw new Error(`event recorder: ${what} must be a positive number, got ${n}`);
  return n;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
