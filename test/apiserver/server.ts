import { rm, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { stringify as toYaml } from 'yaml';
import { apiGroupDoc, apiGroupList, apiResourceList, apiVersions, version } from './discovery.js';
import { RESOURCE_LIST, type ResourceDef } from './resources.js';
import {
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
  type FieldSelector,
  type LabelSelector,
} from './selectors.js';
import { continueExpired, status, tooOldResourceVersion, type StatusBody } from './status.js';
import { Store, type Entry, type KubeObject } from './store.js';
import { toTable, type IncludeObject } from './table.js';
import { makeCertificates } from './tls.js';
import { mergePatch, validateEventCreate, validateEventUpdate } from './validation.js';
import { WatchStream } from './watch-stream.js';

export type { KubeObject } from './store.js';

export interface RequestInfo {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
}

export interface RequestRecord extends RequestInfo {
  /** Date.now() when the request arrived. */
  readonly time: number;
  /** The Content-Type header of a request with a body (POST, PATCH). */
  readonly contentType?: string;
}

export type RequestMatcher = (req: RequestInfo) => boolean;

export type ListenOptions = { readonly host?: string; readonly port?: number } | { readonly path: string };

export interface StartOptions {
  readonly tls?: boolean;
  readonly token?: string;
  readonly listen?: ListenOptions;
  /** Events kept for watches to resume from (the watch cache); older RVs get 410. Default 10,000. */
  readonly historyLimit?: number;
  /** Extra IPs or DNS names for the TLS certificate (e.g. the address of a bridge in another namespace). */
  readonly tlsSans?: readonly string[];
}

interface FailRule {
  remaining: number;
  readonly status: number;
  readonly match: RequestMatcher | undefined;
}

interface Route {
  readonly def: ResourceDef;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
}

const JSON_TYPE = 'application/json';

class HttpError extends Error {
  constructor(readonly body: StatusBody) {
    super(body.message);
  }
}

function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');
}

function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { rv?: unknown; start?: unknown };
    if (typeof t.rv === 'number' && typeof t.start === 'string') return { rv: t.rv, start: t.start };
  } catch {
    // fall through to the 400 below
  }
  throw new HttpError(status(400, `continue key is not valid: ${token}`, 'BadRequest'));
}

/** `ns/name` ordering of the store, so a continue key can be compared with entries. */
function entryKey(e: Entry): string {
  return `${e.namespace}\u0000${e.name}`;
}

function tableRequested(req: IncomingMessage): boolean {
  return /as=Table/.test(req.headers.accept ?? '');
}

function includeObject(q: URLSearchParams): IncludeObject {
  const v = q.get('includeObject');
  return v === 'None' || v === 'Object' ? v : 'Metadata';
}

function sendJson(res: ServerResponse, code: number, body: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(code, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendStatus(res: ServerResponse, body: StatusBody): void {
  sendJson(res, body.code, JSON.stringify(body));
}

/** A request body, as the real server reads one (3 MiB at most). */
function readJsonBody(req: IncomingMessage): Promise<KubeObject> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 3 * 1024 * 1024) {
        reject(new HttpError(status(413, 'request entity too large', 'RequestEntityTooLarge')));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (e) {
        reject(new HttpError(status(400, `the body of the request was in an unknown format: ${e instanceof Error ? e.message : String(e)}`, 'BadRequest')));
        return;
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        reject(new HttpError(status(400, 'the body of the request is not a JSON object', 'BadRequest')));
        return;
      }
      resolve(body as KubeObject);
    });
  });
}

function invalid(def: ResourceDef, name: string, errors: readonly string[]): HttpError {
  const list = errors.length === 1 ? errors[0] ?? '' : `[${errors.join(', ')}]`;
  return new HttpError(status(422, `${def.kind}.${def.group || 'core'} "${name}" is invalid: ${list}`, 'Invalid', { name, kind: def.kind, ...(def.group ? { group: def.group } : {}) }));
}

/**
 * An in-process Kubernetes API server for tests: Services, EndpointSlices and Nodes over the real wire
 * protocol (LIST with selectors and pagination, WATCH with bookmarks, timeouts and 410s, discovery and
 * Table output for kubectl), plus faults to inject. See test/apiserver/README.md.
 */
export class TestApiServer {
  readonly caPem: string | undefined;
  private readonly store: Store;
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly watches = new Set<WatchStream>();
  private readonly log: RequestRecord[] = [];
  private readonly failRules: FailRule[] = [];
  private delayRule: { ms: number; match: RequestMatcher | undefined } | undefined;
  private silenced = false;
  private goneRemaining = 0;
  private listenTarget: { host: string; port: number } | { path: string };
  private listening = false;

  private constructor(
    private readonly opts: StartOptions,
    tls: { caPem: string; certPem: string; keyPem: string } | undefined,
  ) {
    this.store = new Store(opts.historyLimit ?? 10_000);
    this.caPem = tls?.caPem;
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((e: unknown) => {
        const body = e instanceof HttpError ? e.body : status(500, `test apiserver: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
        sendStatus(res, body);
      });
    };
    this.server = tls ? https.createServer({ cert: tls.certPem, key: tls.keyPem }, handler) : http.createServer(handler);
    // Track raw sockets so faults and stop() can cut every connection, idle keep-alives included.
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    const l = opts.listen ?? {};
    this.listenTarget = 'path' in l ? { path: l.path } : { host: l.host ?? '127.0.0.1', port: l.port ?? 0 };
  }

  static async start(opts: StartOptions = {}): Promise<TestApiServer> {
    const tls = opts.tls ? await makeCertificates(opts.tlsSans) : undefined;
    const s = new TestApiServer(opts, tls);
    await s.listen();
    return s;
  }

  // ---- addressing and client configuration ----

  /** `http(s)://host:port`, or `unix:<path>` when listening on a Unix socket (pass `server` to kubeconfig() then). */
  get url(): string {
    const t = this.listenTarget;
    if ('path' in t) return `unix:${t.path}`;
    const host = t.host.includes(':') ? `[${t.host}]` : t.host;
    return `${this.opts.tls ? 'https' : 'http'}://${host}:${t.port}`;
  }

  get port(): number | undefined {
    return 'port' in this.listenTarget ? this.listenTarget.port : undefined;
  }

  get socketPath(): string | undefined {
    return 'path' in this.listenTarget ? this.listenTarget.path : undefined;
  }

  /** Kubeconfig YAML for client-node and kubectl. `server` overrides the URL (needed in Unix socket mode). */
  kubeconfig(opts: { server?: string } = {}): string {
    const server = opts.server ?? ('path' in this.listenTarget ? undefined : this.url);
    if (server === undefined) {
      throw new Error(`test apiserver listens on Unix socket ${this.socketPath ?? ''}: kubeconfig() needs opts.server (the bridge URL)`);
    }
    const cluster: Record<string, unknown> = { server };
    // client-node refuses http:// URLs unless TLS verification is explicitly off.
    if (this.caPem !== undefined && server.startsWith('https:')) {
      cluster['certificate-authority-data'] = Buffer.from(this.caPem).toString('base64');
    } else {
      cluster['insecure-skip-tls-verify'] = true;
    }
    return toYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster }],
      users: [{ name: 'test', user: this.opts.token !== undefined ? { token: this.opts.token } : {} }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'test', namespace: 'default' } }],
      'current-context': 'test',
      preferences: {},
    });
  }

  async writeKubeconfig(path: string, opts: { server?: string } = {}): Promise<void> {
    await writeFile(path, this.kubeconfig(opts), { mode: 0o600 });
  }

  // ---- store ----

  /** Creates or updates an object (stamping resourceVersion, uid, creationTimestamp); emits ADDED or MODIFIED. Returns the stored object. */
  apply(obj: KubeObject): KubeObject {
    return this.store.apply(obj);
  }

  /** apply() for many objects at once; cheap per object (one JSON.stringify), for 10,000s of objects. Returns the count. */
  applyMany(objs: Iterable<KubeObject>): number {
    return this.store.applyMany(objs);
  }

  /** Deletes an object (kind: `Service`, `services`, `svc`...); emits DELETED with the last content at a new RV. Returns it, or undefined if absent. */
  remove(kind: string, namespace: string, name: string): KubeObject | undefined {
    return this.store.remove(kind, namespace, name);
  }

  /** A copy of the stored object, or undefined. Namespace is ignored for Nodes. */
  get(kind: string, namespace: string, name: string): KubeObject | undefined {
    return this.store.get(kind, namespace, name);
  }

  /** The current global resourceVersion, as the string the API carries. */
  get resourceVersion(): string {
    return String(this.store.resourceVersion);
  }

  /** Every stored object of a kind (`Event`, `events`, `Service`...), sorted by namespace/name; in one namespace if given. */
  objects(kind: string, namespace?: string): KubeObject[] {
    return this.store.all(kind, namespace);
  }

  /** Every request received, in order. */
  get requests(): ReadonlyArray<RequestRecord> {
    return this.log;
  }

  /** Watches whose response is still open (silent ones included). */
  get watchCount(): number {
    return this.watches.size;
  }

  // ---- faults ----

  /** Sends a BOOKMARK at the current RV to every open watch that asked for bookmarks (allowWatchBookmarks=true). */
  bookmark(): void {
    const rv = this.store.resourceVersion;
    for (const w of this.watches) w.bookmark(rv);
  }

  /** Ends every open, non-silent watch cleanly, as a server-side timeout does (clients resume from their last RV). */
  closeWatches(): void {
    for (const w of this.watches) if (!w.silent) w.end();
  }

  /** Destroys every open socket abruptly (watches, in-flight lists, idle keep-alives): a network cut. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** While on, new watches get headers and then nothing; open watches go silent too and stay silent after silence(false) (a half-open TCP connection). */
  silence(on: boolean): void {
    this.silenced = on;
    if (on) for (const w of this.watches) w.silence();
  }

  /** The next `n` requests that match (all by default) get HTTP `status` (default 500) with a Status body. */
  failNext(n: number, opts: { status?: number; match?: RequestMatcher } = {}): void {
    this.failRules.push({ remaining: n, status: opts.status ?? 500, match: opts.match });
  }

  /** The next `n` watches get a 410 ERROR event (too old resource version) and are closed, whatever RV they ask for. */
  goneNext(n: number): void {
    this.goneRemaining += n;
  }

  /** Forgets all event history and list snapshots: watches and continue tokens from older RVs get 410. */
  compact(): void {
    this.store.compact();
  }

  /** Matching requests (all by default) wait `ms` before their headers are sent (a slow server). delay(0) clears. */
  delay(ms: number, opts: { match?: RequestMatcher } = {}): void {
    this.delayRule = ms > 0 ? { ms, match: opts.match } : undefined;
  }

  /** Closes the listener and every connection. The store is kept for restart(). */
  async stop(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
    if ('path' in this.listenTarget) await rm(this.listenTarget.path, { force: true });
  }

  /** Stops, then listens again on the same port or path with the same store and history (an apiserver restart). */
  async restart(): Promise<void> {
    await this.stop();
    await this.listen();
  }

  // ---- HTTP ----

  private async listen(): Promise<void> {
    const t = this.listenTarget;
    if ('path' in t) await rm(t.path, { force: true }); // a stale socket file makes listen fail with EADDRINUSE
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(new Error(`test apiserver cannot listen on ${'path' in t ? t.path : `${t.host}:${t.port}`}: ${e.message}`, { cause: e }));
      this.server.once('error', onError);
      const done = (): void => {
        this.server.off('error', onError);
        resolve();
      };
      if ('path' in t) this.server.listen(t.path, done);
      else this.server.listen(t.port, t.host, done);
    });
    if (!('path' in t)) this.listenTarget = { host: t.host, port: (this.server.address() as AddressInfo).port };
    this.listening = true;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://apiserver');
    const info: RequestInfo = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams };
    const contentType = req.headers['content-type'];
    this.log.push({ ...info, time: Date.now(), ...(contentType !== undefined ? { contentType } : {}) });

    const d = this.delayRule;
    if (d !== undefined && (d.match === undefined || d.match(info))) {
      await new Promise((r) => setTimeout(r, d.ms));
      if (res.destroyed) return;
    }
    if (this.opts.token !== undefined && req.headers.authorization !== `Bearer ${this.opts.token}`) {
      return sendStatus(res, status(401, 'Unauthorized'));
    }
    const rule = this.failRules.find((r) => r.remaining > 0 && (r.match === undefined || r.match(info)));
    if (rule !== undefined) {
      rule.remaining--;
      return sendStatus(res, status(rule.status, `injected failure (HTTP ${rule.status}) for ${info.method} ${info.path}`));
    }

    const discovery = this.discovery(info.path);
    const route = discovery === undefined ? this.route(info.path) : undefined;
    if (discovery === undefined && route === undefined) {
      return sendStatus(res, status(404, 'the server could not find the requested resource'));
    }
    if (route?.def.writable === true && route.namespace !== undefined) {
      if (info.method === 'POST' && route.name === undefined) return this.create(req, res, route.def, route.namespace);
      if (info.method === 'PATCH' && route.name !== undefined) return this.patch(req, res, route.def, route.namespace, route.name);
    }
    if (info.method !== 'GET') {
      return sendStatus(res, status(405, `the server does not allow this method on the requested resource (${info.method} ${info.path})`));
    }
    if (discovery !== undefined) return sendJson(res, 200, JSON.stringify(discovery));
    if (route === undefined) return;

    const q = url.searchParams;
    const watch = q.get('watch');
    if (watch === 'true' || watch === '1') return this.watch(req, res, route, q);
    if (route.name !== undefined) return this.getOne(req, res, route, q);
    return this.list(req, res, route, q);
  }

  /** POST to a writable resource's collection: validated as the real server validates it, then stored (201). */
  private async create(req: IncomingMessage, res: ServerResponse, def: ResourceDef, namespace: string): Promise<void> {
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
      throw new HttpError(status(415, `the body of the request was in an unknown format - accepted media types include: application/json`, 'UnsupportedMediaType'));
    }
    const obj = await readJsonBody(req);
    if ((obj['kind'] !== undefined && obj['kind'] !== def.kind) || (obj['apiVersion'] !== undefined && obj['apiVersion'] !== def.apiVersion)) {
      throw new HttpError(status(400, `the API version in the data (${String(obj['apiVersion'])}) does not match the expected API version (${def.apiVersion})`, 'BadRequest'));
    }
    const meta = typeof obj['metadata'] === 'object' && obj['metadata'] !== null ? (obj['metadata'] as KubeObject) : {};
    if (meta['namespace'] !== undefined && meta['namespace'] !== namespace) {
      throw new HttpError(status(400, 'the namespace of the provided object does not match the namespace sent on the request', 'BadRequest'));
    }
    const name = typeof meta['name'] === 'string' ? meta['name'] : '';
    const errors = validateEventCreate(obj, namespace);
    if (errors.length > 0) throw invalid(def, name, errors);
    if (this.store.entry(def, namespace, name) !== undefined) {
      throw new HttpError(status(409, `${def.resource}.${def.group} "${name}" already exists`, 'AlreadyExists', { name, group: def.group, kind: def.resource }));
    }
    const stored = this.store.apply({ ...obj, kind: def.kind, apiVersion: def.apiVersion, metadata: { ...meta, namespace } });
    sendJson(res, 201, JSON.stringify(stored));
  }

  /** PATCH (strategic merge or JSON merge; the same for fields without lists) of a stored object (200). */
  private async patch(req: IncomingMessage, res: ServerResponse, def: ResourceDef, namespace: string, name: string): Promise<void> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
    if (type !== 'application/strategic-merge-patch+json' && type !== 'application/merge-patch+json') {
      throw new HttpError(status(415, `the body of the request was in an unknown format - accepted media types include: application/strategic-merge-patch+json, application/merge-patch+json`, 'UnsupportedMediaType'));
    }
    const patch = await readJsonBody(req);
    const entry = this.store.entry(def, namespace, name);
    if (entry === undefined) {
      throw new HttpError(status(404, `${def.resource}.${def.group} "${name}" not found`, 'NotFound', { name, group: def.group, kind: def.resource }));
    }
    const prev = entry.object();
    const next = mergePatch(prev, patch) as KubeObject;
    const meta = next['metadata'] as KubeObject;
    if (meta['name'] !== name || meta['namespace'] !== namespace || next['kind'] !== def.kind || next['apiVersion'] !== def.apiVersion) {
      throw new HttpError(status(400, 'a patch may not change the name, namespace, kind or apiVersion', 'BadRequest'));
    }
    const errors = validateEventUpdate(next, prev);
    if (errors.length > 0) throw invalid(def, name, errors);
    sendJson(res, 200, JSON.stringify(this.store.apply(next)));
  }

  private discovery(path: string): Record<string, unknown> | undefined {
    const p = path.replace(/\/+$/, '');
    if (p === '/version') return version();
    if (p === '/api') return apiVersions();
    if (p === '/apis') return apiGroupList();
    if (p === '/api/v1') return apiResourceList('', 'v1');
    const m = /^\/apis\/([^/]+)(?:\/([^/]+))?$/.exec(p);
    if (m?.[1] !== undefined) return m[2] === undefined ? apiGroupDoc(m[1]) : apiResourceList(m[1], m[2]);
    return undefined;
  }

  private route(path: string): Route | undefined {
    const seg = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
    let group: string;
    let rest: string[];
    if (seg[0] === 'api') {
      group = '';
      rest = seg.slice(1);
    } else if (seg[0] === 'apis' && seg[1] !== undefined) {
      group = seg[1];
      rest = seg.slice(2);
    } else {
      return undefined;
    }
    const [ver, ...tail] = rest;
    let namespace: string | undefined;
    let parts = tail;
    if (tail[0] === 'namespaces' && tail.length >= 3) {
      namespace = tail[1];
      parts = tail.slice(2);
    }
    const [resource, name, ...extra] = parts;
    if (extra.length > 0 || resource === undefined) return undefined;
    const def = RESOURCE_LIST.find((r) => r.group === group && r.version === ver && r.resource === resource);
    if (def === undefined || (namespace !== undefined && !def.namespaced)) return undefined;
    return { def, namespace, name };
  }

  private selectors(q: URLSearchParams): { labels: LabelSelector; fields: FieldSelector } {
    try {
      return { labels: parseLabelSelector(q.get('labelSelector') ?? ''), fields: parseFieldSelector(q.get('fieldSelector') ?? '') };
    } catch (e) {
      if (e instanceof SelectorError) throw new HttpError(status(400, e.message, 'BadRequest'));
      throw e;
    }
  }

  private filterFor(route: Route, q: URLSearchParams): (e: Entry) => boolean {
    const { labels, fields } = this.selectors(q);
    const ns = route.namespace;
    const name = route.name;
    return (e) =>
      (ns === undefined || e.namespace === ns) &&
      (name === undefined || e.name === name) &&
      matchesFields(fields, e.namespace, e.name) &&
      matchesLabels(labels, e.labels);
  }

  private getOne(req: IncomingMessage, res: ServerResponse, route: Route, q: URLSearchParams): void {
    const e = route.name !== undefined ? this.store.entry(route.def, route.namespace ?? '', route.name) : undefined;
    if (e === undefined) {
      return sendStatus(
        res,
        status(404, `${route.def.resource}${route.def.group ? `.${route.def.group}` : ''} "${route.name ?? ''}" not found`, 'NotFound', {
          name: route.name ?? '',
          ...(route.def.group ? { group: route.def.group } : {}),
          kind: route.def.resource,
        }),
      );
    }
    if (tableRequested(req)) {
      const t = toTable(route.def, [JSON.parse(e.body) as KubeObject], { resourceVersion: String(e.rv), include: includeObject(q), headers: true });
      return sendJson(res, 200, JSON.stringify(t));
    }
    sendJson(res, 200, e.fullJson());
  }

  private list(req: IncomingMessage, res: ServerResponse, route: Route, q: URLSearchParams): void {
    const filter = this.filterFor(route, q);
    const limitParam = Number.parseInt(q.get('limit') ?? '', 10);
    const limit = Number.isFinite(limitParam) && limitParam > 0 ? limitParam : 0;
    const token = q.get('continue') ?? '';

    let rv: number;
    let items: readonly Entry[];
    let startAt = 0;
    if (token !== '') {
      const c = decodeContinue(token);
      const snap = this.store.findSnapshot(route.def, c.rv);
      if (snap === undefined) return sendStatus(res, continueExpired());
      rv = c.rv;
      items = snap;
      // Binary search the first entry after the continue key (items are sorted by namespace/name).
      let lo = 0;
      let hi = items.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const e = items[mid];
        if (e !== undefined && entryKey(e) <= c.start) lo = mid + 1;
        else hi = mid;
      }
      startAt = lo;
    } else if (limit > 0) {
      ({ rv, items } = this.store.snapshot(route.def));
    } else {
      rv = this.store.resourceVersion;
      items = this.store.list(route.def);
    }

    const page: Entry[] = [];
    let more = false;
    for (let i = startAt; i < items.length; i++) {
      const e = items[i];
      if (e === undefined || !filter(e)) continue;
      if (limit > 0 && page.length === limit) {
        more = true;
        break;
      }
      page.push(e);
    }
    const last = page[page.length - 1];
    const next = more && last !== undefined ? encodeContinue(rv, entryKey(last)) : undefined;

    if (tableRequested(req)) {
      const t = toTable(route.def, page.map((e) => JSON.parse(e.body) as KubeObject), {
        resourceVersion: String(rv),
        ...(next !== undefined ? { continue: next } : {}),
        include: includeObject(q),
        headers: true,
      });
      return sendJson(res, 200, JSON.stringify(t));
    }
    const meta = `{"resourceVersion":"${rv}"${next !== undefined ? `,"continue":"${next}"` : ''}}`;
    const body = `{"kind":"${route.def.listKind}","apiVersion":"${route.def.apiVersion}","metadata":${meta},"items":[${page.map((e) => e.body).join(',')}]}`;
    sendJson(res, 200, body);
  }

  private watch(req: IncomingMessage, res: ServerResponse, route: Route, q: URLSearchParams): void {
    const filter = this.filterFor(route, q);
    const rvParam = q.get('resourceVersion') ?? '';
    if (rvParam !== '' && !/^\d+$/.test(rvParam)) {
      return sendStatus(res, status(400, `resourceVersion: Invalid value: "${rvParam}": must be an integer`, 'BadRequest'));
    }
    const timeoutParam = q.get('timeoutSeconds');
    const timeoutSeconds = timeoutParam !== null && /^\d+$/.test(timeoutParam) ? Number(timeoutParam) : 0;
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    const sendInitial = q.get('sendInitialEvents') === 'true';

    res.writeHead(200, { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const stream = new WatchStream({
      def: route.def,
      res,
      filter,
      bookmarks,
      table: tableRequested(req) ? includeObject(q) : undefined,
      silent: this.silenced,
    });

    if (this.goneRemaining > 0) {
      this.goneRemaining--;
      const requested = rvParam === '' ? 0 : Number(rvParam);
      return stream.error(tooOldResourceVersion(requested, this.store.floor));
    }

    if (rvParam === '' || rvParam === '0' || sendInitial) {
      // Watch from "now" with the current state first, as synthetic ADDED events (the real server does the same).
      for (const e of this.store.list(route.def)) stream.initial(e);
      if (sendInitial) stream.bookmark(this.store.resourceVersion, { 'k8s.io/initial-events-end': 'true' });
    } else {
      const requested = Number(rvParam);
      const events = this.store.eventsSince(requested);
      if (events === undefined) return stream.error(tooOldResourceVersion(requested, this.store.floor));
      for (const ev of events) stream.offer(ev);
    }

    this.watches.add(stream);
    const unsubscribe = this.store.subscribe((ev) => stream.offer(ev));
    // A silent watch ignores its timeout too: nothing, not even the end of the response, gets through.
    const timer = timeoutSeconds > 0 ? setTimeout(() => { if (!stream.silent) stream.end(); }, timeoutSeconds * 1000) : undefined;
    stream.onClose(() => {
      unsubscribe();
      if (timer !== undefined) clearTimeout(timer);
      this.watches.delete(stream);
    });
  }
}
