import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';
import { type JsonObject, isObject } from '../../model/fields.js';

/**
 * HTTP(S) transport for LIST and WATCH (and the few writes, Events), on top of client-node's KubeConfig
 * (kubeconfig files, in-cluster config, rotating service-account tokens, client certificates, proxies).
 * client-node 1.4's own Watch cannot abort a request whose headers never arrive and has no idle timeout, and
 * its typed list calls deserialize every object into model classes; this transport owns its deadlines and
 * hands raw JSON to the reflector.
 */

/** A non-2xx answer, or a Status carried in a watch ERROR event. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly reason: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** 410: the resourceVersion (or continue token) is too old; only a fresh LIST helps. */
  get gone(): boolean {
    return this.status === 410;
  }
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  readonly type: WatchEventType;
  readonly object: JsonObject;
}

/** Why a watch stream ended. */
export type WatchEnd =
  | { readonly kind: 'closed' } // the server ended it cleanly (timeoutSeconds, apiserver shutdown)
  | { readonly kind: 'idle' } // nothing, not even a bookmark, for idleTimeoutMs
  | { readonly kind: 'aborted' } // we stopped it
  | { readonly kind: 'error'; readonly error: Error };

export interface WatchHandle {
  /** Settles once the stream is over; never rejects. */
  readonly ended: Promise<WatchEnd>;
  abort(): void;
}

export interface RequestTimeouts {
  /** Headers must arrive within this; a hung LIST or WATCH is otherwise invisible. */
  readonly headersMs: number;
  /** A LIST body must complete within this. */
  readonly bodyMs: number;
}

export const DEFAULT_TIMEOUTS: RequestTimeouts = { headersMs: 10_000, bodyMs: 60_000 };

type Query = Readonly<Record<string, string | undefined>>;

type Method = 'GET' | 'POST' | 'PATCH';

/** A request body: the object, sent as JSON, and its media type (PATCH needs a patch type, not application/json). */
export interface Payload {
  readonly contentType: 'application/json' | 'application/strategic-merge-patch+json' | 'application/merge-patch+json';
  readonly body: JsonObject;
}

export class KubeApiClient {
  constructor(
    private readonly kc: KubeConfig,
    private readonly timeouts: RequestTimeouts = DEFAULT_TIMEOUTS,
  ) {}

  get server(): string {
    return this.kc.getCurrentCluster()?.server ?? '<no cluster>';
  }

  /** GET a JSON document (a LIST page, a single object). */
  getJson(path: string, query: Query, signal?: AbortSignal): Promise<JsonObject> {
    return this.json('GET', path, query, undefined, signal);
  }

  /** POST (create) or PATCH a JSON document; resolves with the server's copy, rejects with ApiError. */
  send(method: 'POST' | 'PATCH', path: string, payload: Payload, signal?: AbortSignal): Promise<JsonObject> {
    return this.json(method, path, {}, payload, signal);
  }

  private async json(method: Method, path: string, query: Query, payload: Payload | undefined, signal?: AbortSignal): Promise<JsonObject> {
    const res = await this.request(method, path, query, signal, payload);
    const text = await readBody(res, this.timeouts.bodyMs, signal);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new ApiError(`${method} ${path}: response is not JSON (${text.slice(0, 80)})`, res.statusCode ?? 0, 'BadResponse');
    }
    if (!isObject(body)) throw new ApiError(`${method} ${path}: response is not a JSON object`, res.statusCode ?? 0, 'BadResponse');
    return body;
  }

  /**
   * Opens a watch; resolves once the server answered 200 (rejects with ApiError otherwise). Events are handed to
   * `onEvent` in order; lines that are not JSON events end the stream with an error rather than being skipped.
   */
  async watch(path: string, query: Query, onEvent: (e: WatchEvent) => void, idleTimeoutMs: number): Promise<WatchHandle> {
    const controller = new AbortController();
    const res = await this.request('GET', path, { ...query, watch: 'true' }, controller.signal);
    let settle!: (end: WatchEnd) => void;
    const ended = new Promise<WatchEnd>((resolve) => {
      settle = resolve;
    });
    let done = false;
    let idleTimer: NodeJS.Timeout | undefined;
    const finish = (end: WatchEnd): void => {
      if (done) return;
      done = true;
      clearTimeout(idleTimer);
      res.destroy();
      settle(end);
    };
    const armIdle = (): void => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => finish({ kind: 'idle' }), idleTimeoutMs);
    };
    controller.signal.addEventListener('abort', () => finish({ kind: 'aborted' }), { once: true });
    armIdle();
    const lines = createInterface({ input: res, crlfDelay: Infinity });
    lines.on('line', (line) => {
      if (done || line.trim() === '') return;
      armIdle();
      const event = parseWatchLine(line);
      if (event instanceof Error) {
        finish({ kind: 'error', error: event });
        return;
      }
      try {
        onEvent(event);
      } catch (e) {
        finish({ kind: 'error', error: e instanceof Error ? e : new Error(String(e)) });
      }
    });
    res.on('error', (e) => finish({ kind: 'error', error: e }));
    lines.on('error', (e) => finish({ kind: 'error', error: e }));
    res.on('aborted', () => finish({ kind: 'error', error: new Error('connection reset during watch') }));
    lines.on('close', () => finish(res.complete ? { kind: 'closed' } : { kind: 'error', error: new Error('watch connection dropped') }));
    return { ended, abort: () => controller.abort() };
  }

  private async request(method: Method, path: string, query: Query, signal?: AbortSignal, payload?: Payload): Promise<http.IncomingMessage> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new ApiError('kubeconfig has no current cluster', 0, 'Config');
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);

    const headers: http.OutgoingHttpHeaders = { Accept: 'application/json' };
    let data: Buffer | undefined;
    if (payload !== undefined) {
      data = Buffer.from(JSON.stringify(payload.body), 'utf8');
      headers['Content-Type'] = payload.contentType;
      headers['Content-Length'] = data.length;
    }
    const opts: https.RequestOptions = { method, headers };
    await this.kc.applyToHTTPSOptions(opts);
    const mod = url.protocol === 'http:' ? http : https;
    return new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = mod.request(url, { ...opts, ...(signal ? { signal } : {}) });
      const fail = (e: Error): void => {
        req.destroy();
        reject(e);
      };
      const timer = setTimeout(
        () => fail(new ApiError(`${method} ${url.pathname}: no response headers within ${this.timeouts.headersMs} ms`, 0, 'Timeout')),
        this.timeouts.headersMs,
      );
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(new ApiError(`${method} ${url.pathname}: ${e.message}`, 0, 'ConnectionError'));
      });
      req.on('response', (res) => {
        clearTimeout(timer);
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve(res);
          return;
        }
        readBody(res, this.timeouts.bodyMs, signal)
          .catch(() => '')
          .then((text) => reject(statusError(`${method} ${url.pathname}`, status, text)), reject);
      });
      req.end(data);
    });
  }
}

function readBody(res: http.IncomingMessage, timeoutMs: number, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onAbort = (): void => void res.destroy();
    // One reflector signal spans many pages: the listener must go when the page is read.
    const settle = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const timer = setTimeout(() => {
      settle();
      res.destroy();
      reject(new ApiError(`response body not complete within ${timeoutMs} ms`, 0, 'Timeout'));
    }, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      settle();
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    res.on('error', (e) => {
      settle();
      reject(new ApiError(`reading response: ${e.message}`, 0, 'ConnectionError'));
    });
    res.on('aborted', () => {
      settle();
      reject(new ApiError('connection reset while reading response', 0, 'ConnectionError'));
    });
  });
}

/** Builds an ApiError from an HTTP status and (if any) the Kubernetes Status body. */
function statusError(what: string, status: number, text: string): ApiError {
  let reason = 'Unknown';
  let message = text.slice(0, 200);
  try {
    const body: unknown = JSON.parse(text);
    if (isObject(body)) {
      if (typeof body['reason'] === 'string') reason = body['reason'];
      if (typeof body['message'] === 'string') message = body['message'];
    }
  } catch {
    // not a Status: keep the raw text
  }
  return new ApiError(`${what}: HTTP ${status} ${reason}: ${message}`, status, reason);
}

const EVENT_TYPES: ReadonlySet<string> = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

export function parseWatchLine(line: string): WatchEvent | Error {
  let data: unknown;
  try {
    data = JSON.parse(line);
  } catch {
    return new Error(`watch stream: line is not JSON: ${line.slice(0, 120)}`);
  }
  if (!isObject(data) || typeof data['type'] !== 'string' || !EVENT_TYPES.has(data['type']) || !isObject(data['object'])) {
    return new Error(`watch stream: not a watch event: ${line.slice(0, 120)}`);
  }
  return { type: data['type'] as WatchEventType, object: data['object'] };
}

/** The Status object of an ERROR event, as an ApiError (410 Expired/Gone is the common one). */
export function errorEventToApiError(object: JsonObject): ApiError {
  const code = typeof object['code'] === 'number' ? object['code'] : 500;
  const reason = typeof object['reason'] === 'string' ? object['reason'] : 'Unknown';
  const message = typeof object['message'] === 'string' ? object['message'] : 'watch error';
  return new ApiError(`watch ERROR event: ${code} ${reason}: ${message}`, code, reason);
}
