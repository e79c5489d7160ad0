import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, CoreV1Api, KubeConfig, makeInformer, Watch, type V1Service } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { service, syntheticCluster } from '../support/objects.js';
import { rawRequest, requireKubectl, runKubectl, waitFor } from './helpers.js';
import { TestApiServer, type StartOptions } from './server.js';

type WatchEvent = { type: string; object: { kind?: string; code?: number; message?: string; reason?: string; metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> } } };

function svc(name: string, opts: { namespace?: string; labels?: Record<string, string>; port?: number } = {}): Record<string, unknown> {
  return service({
    name,
    namespace: opts.namespace ?? 'default',
    clusterIP: `10.96.0.${(name.length * 7 + (opts.port ?? 80)) % 250}`,
    ports: [{ port: opts.port ?? 80 }],
    ...(opts.labels ? { labels: opts.labels } : {}),
  });
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'switchboard-apiserver-test-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const MODES: readonly { name: string; opts: StartOptions }[] = [
  { name: 'http', opts: {} },
  { name: 'https+token', opts: { tls: true, token: 's3cret-token' } },
];

describe.each(MODES)('TestApiServer over $name', ({ opts }) => {
  const servers: TestApiServer[] = [];
  const cleanups: (() => unknown)[] = [];
  async function start(extra: StartOptions = {}): Promise<{ server: TestApiServer; kc: KubeConfig; core: CoreV1Api }> {
    const server = await TestApiServer.start({ ...opts, ...extra });
    servers.push(server);
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig());
    return { server, kc, core: kc.makeApiClient(CoreV1Api) };
  }
  /** Opens a raw client-node Watch and records its events and how it ended. */
  async function watch(kc: KubeConfig, path: string, params: Record<string, string | number | boolean>) {
    const events: WatchEvent[] = [];
    let ended: { err: unknown } | undefined;
    const controller = await new Watch(kc).watch(
      path,
      params,
      (type: string, object: WatchEvent['object']) => events.push({ type, object }),
      (err: unknown) => (ended = { err }),
    );
    cleanups.push(() => controller.abort());
    return { events, ended: () => ended };
  }
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
    for (const s of servers.splice(0)) await s.stop();
  });

  it('paginates a label-selected LIST consistently at the first page RV, and expires continue tokens on compaction', async () => {
    const { server, core } = await start();
    for (const n of ['a', 'b', 'c', 'd', 'e']) server.apply(svc(n, { namespace: n === 'c' ? 'kube-system' : 'default', labels: { tier: 'web' } }));
    server.apply(svc('unlabelled'));
    const first = await core.listServiceForAllNamespaces({ limit: 2, labelSelector: 'tier=web' });
    const rv = first.metadata?.resourceVersion;
    expect(rv).toBe(server.resourceVersion);
    server.apply(svc('aa', { labels: { tier: 'web' } })); // after the first page: must not show up in later pages
    const names = first.items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`);
    let token = first.metadata?._continue;
    let pages = 1;
    while (token !== undefined && token !== '') {
      const page = await core.listServiceForAllNamespaces({ limit: 2, labelSelector: 'tier=web', _continue: token });
      expect(page.metadata?.resourceVersion).toBe(rv);
      names.push(...page.items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`));
      token = page.metadata?._continue;
      pages++;
    }
    expect(pages).toBe(3);
    expect(names).toEqual(['default/a', 'default/b', 'default/d', 'default/e', 'kube-system/c']);

    const again = await core.listServiceForAllNamespaces({ limit: 1 });
    server.compact();
    const err = await core.listServiceForAllNamespaces({ limit: 1, _continue: again.metadata?._continue ?? '' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiException);
    expect((err as ApiException<unknown>).code).toBe(410);
    expect(String((err as ApiException<unknown>).body)).toContain('"reason":"Expired"');
  });

  it('serves namespaced LIST, field selectors, single GET and 404 as the real server', async () => {
    const { server, core } = await start();
    server.apply(svc('web', { namespace: 'shop' }));
    server.apply(svc('db', { namespace: 'shop' }));
    server.apply(svc('web'));
    const shop = await core.listNamespacedService({ namespace: 'shop' });
    expect(shop.items.map((s) => s.metadata?.name)).toEqual(['db', 'web']);
    const byName = await core.listServiceForAllNamespaces({ fieldSelector: 'metadata.name=web' });
    expect(byName.items.map((s) => s.metadata?.namespace)).toEqual(['default', 'shop']);
    const one = await core.readNamespacedService({ namespace: 'shop', name: 'web' });
    expect(one.metadata?.resourceVersion).toMatch(/^\d+$/);
    expect(one.metadata?.uid).toBeTruthy();
    const missing = await core.readNamespacedService({ namespace: 'shop', name: 'nope' }).catch((e: unknown) => e);
    expect((missing as ApiException<unknown>).code).toBe(404);

    const raw = await rawRequest(server, '/api/v1/services', opts.token !== undefined ? { token: opts.token } : {});
    expect(raw.contentType).toBe('application/json');
    const list = JSON.parse(raw.body) as { kind: string; apiVersion: string; items: Record<string, unknown>[] };
    expect(list.kind).toBe('ServiceList');
    expect(list.items[0]?.['kind']).toBeUndefined(); // items carry no kind/apiVersion on the wire
  });

  it('rejects bad tokens, unknown paths and methods with Status bodies', async () => {
    const { server } = await start();
    const token = opts.token !== undefined ? { token: opts.token } : {};
    const notFound = await rawRequest(server, '/api/v1/configmaps', token);
    expect(notFound.status).toBe(404);
    expect(JSON.parse(notFound.body)).toMatchObject({ kind: 'Status', code: 404, reason: 'NotFound' });
    const post = await rawRequest(server, '/api/v1/services', { ...token, method: 'POST' });
    expect(post.status).toBe(405);
    const badSelector = await rawRequest(server, '/api/v1/services?fieldSelector=spec.clusterIP%3D1', token);
    expect(badSelector.status).toBe(400);
    if (opts.token !== undefined) {
      const noAuth = await rawRequest(server, '/api/v1/services', { token: 'wrong' });
      expect(noAuth.status).toBe(401);
      expect(JSON.parse(noAuth.body)).toMatchObject({ kind: 'Status', code: 401, reason: 'Unauthorized' });
    }
  });

  it('creates and patches events.k8s.io/v1 Events, validated as the real server validates them', async () => {
    const { server } = await start();
    const auth = opts.token !== undefined ? { token: opts.token } : {};
    const path = '/apis/events.k8s.io/v1/namespaces/shop/events';
    const event = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: 'lb.17f0000000000001', namespace: 'shop' },
      eventTime: '2026-01-02T03:04:05.123456Z',
      reportingController: 'kube-proxy',
      reportingInstance: 'kube-proxy-node-a',
      action: 'Listen',
      reason: 'FailedToStartServiceHealthcheck',
      regarding: { kind: 'Service', namespace: 'shop', name: 'lb', uid: 'shop/lb' },
      note: 'port taken',
      type: 'Warning',
    };
    const post = (body: unknown, contentType = 'application/json') =>
      rawRequest(server, path, { ...auth, method: 'POST', headers: { 'Content-Type': contentType }, body: JSON.stringify(body) });
    const patch = (name: string, body: unknown, contentType = 'application/strategic-merge-patch+json') =>
      rawRequest(server, `${path}/${name}`, { ...auth, method: 'PATCH', headers: { 'Content-Type': contentType }, body: JSON.stringify(body) });

    const created = await post(event);
    expect(created.status).toBe(201);
    expect(JSON.parse(created.body)).toMatchObject({ ...event, metadata: { ...event.metadata, resourceVersion: expect.stringMatching(/^\d+$/) } });
    expect((await post(event)).status).toBe(409);
    const listed = JSON.parse((await rawRequest(server, path, auth)).body) as { kind: string; items: unknown[] };
    expect(listed.kind).toBe('EventList');
    expect(listed.items).toHaveLength(1);

    const bad = await post({ ...event, metadata: { name: 'lb.2' }, eventTime: '2026-01-02T03:04:05.123Z', reportingController: '' });
    expect(bad.status).toBe(422);
    expect(JSON.parse(bad.body)).toMatchObject({ reason: 'Invalid' });
    expect(JSON.parse(bad.body).message).toMatch(/eventTime: Invalid value.*reportingController: Required value/);
    expect((await post({ ...event, metadata: { name: 'lb.3', namespace: 'other' } })).status).toBe(400);
    expect((await post(event, 'application/yaml')).status).toBe(415);

    const series = { series: { count: 2, lastObservedTime: '2026-01-02T03:04:10.000000Z' } };
    const patched = await patch('lb.17f0000000000001', series);
    expect(patched.status).toBe(200);
    expect(server.get('Event', 'shop', 'lb.17f0000000000001')).toMatchObject({ ...series, note: 'port taken' });
    expect((await patch('lb.17f0000000000001', { series: { count: 3, lastObservedTime: '2026-01-02T03:04:15.000000Z' } }, 'application/merge-patch+json')).status).toBe(200);
    expect((await patch('lb.17f0000000000001', { series: { count: 1 } })).status).toBe(422);
    expect((await patch('lb.17f0000000000001', { note: 'changed' })).status).toBe(422);
    expect((await patch('lb.17f0000000000001', series, 'application/json-patch+json')).status).toBe(415);
    expect((await patch('missing', series)).status).toBe(404);
    expect(server.objects('Event')).toHaveLength(1);
  });

  it('feeds an informer add, update and delete events', async () => {
    const { server, kc, core } = await start();
    server.apply(svc('web'));
    const seen: string[] = [];
    const inf = makeInformer<V1Service>(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
    for (const verb of ['add', 'update', 'delete'] as const) inf.on(verb, (o) => seen.push(`${verb} ${o.metadata?.name}`));
    cleanups.push(() => inf.stop());
    await inf.start();
    await waitFor('initial add', () => seen.includes('add web'));
    server.apply(svc('web', { port: 81 }));
    server.apply(svc('api'));
    server.remove('Service', 'default', 'web');
    await waitFor('update, add and delete', () => seen.length === 4);
    expect(seen).toEqual(['add web', 'update web', 'add api', 'delete web']);
  });

  it('makes an informer re-list after a 410 for a compacted resourceVersion', async () => {
    const { server, kc, core } = await start();
    server.apply(svc('web'));
    server.apply(svc('gone'));
    const seen: string[] = [];
    const inf = makeInformer<V1Service>(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
    inf.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
    inf.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
    inf.on('error', () => undefined); // stop() reports an AbortError
    cleanups.push(() => inf.stop());
    await inf.start();
    await waitFor('initial adds', () => seen.length === 2);
    await inf.stop();
    server.remove('svc', 'default', 'gone');
    server.apply(svc('new'));
    server.compact();
    const lists = () => server.requests.filter((r) => r.path === '/api/v1/services' && r.query.get('watch') === null).length;
    expect(lists()).toBe(1);
    await inf.start(); // watches from its old RV: ERROR 410, the server closes, the informer re-lists and diffs
    await waitFor('re-list diff', () => seen.length === 4);
    expect(seen.slice(2).sort()).toEqual(['add new', 'delete gone']);
    expect(lists()).toBe(2);
    expect(inf.list().map((s) => s.metadata?.name).sort()).toEqual(['new', 'web']);
  });

  it('sends a 410 ERROR event for a watch older than the history, and for goneNext', async () => {
    const { server, kc } = await start({ historyLimit: 3 });
    const startRV = server.resourceVersion;
    for (const n of ['a', 'b', 'c', 'd', 'e']) server.apply(svc(n));
    const old = await watch(kc, '/api/v1/services', { resourceVersion: startRV });
    await waitFor('old watch to end', () => old.ended() !== undefined);
    expect(old.ended()?.err).toBeNull();
    expect(old.events).toHaveLength(1);
    expect(old.events[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
    expect(old.events[0]?.object.message).toMatch(/^too old resource version: \d+ \(\d+\)$/);

    server.goneNext(1);
    const gone = await watch(kc, '/api/v1/services', { resourceVersion: server.resourceVersion });
    await waitFor('goneNext watch to end', () => gone.ended() !== undefined);
    expect(gone.events.map((e) => e.object.code)).toEqual([410]);

    const fromZero = await watch(kc, '/api/v1/services', { resourceVersion: '0' });
    await waitFor('synthetic ADDED events', () => fromZero.events.length === 5);
    expect(fromZero.events.every((e) => e.type === 'ADDED')).toBe(true);
  });

  it('turns label changes into ADDED/DELETED for a label-selected watch', async () => {
    const { server, kc } = await start();
    const w = await watch(kc, '/api/v1/services', { resourceVersion: server.resourceVersion, labelSelector: 'tier=web' });
    server.apply(svc('web', { labels: { tier: 'web' } }));
    server.apply(svc('web', { labels: { tier: 'web' }, port: 81 }));
    server.apply(svc('web', { labels: { tier: 'db' } }));
    server.apply(svc('other'));
    server.apply(svc('web', { labels: { tier: 'web' } }));
    await waitFor('four events', () => w.events.length === 4);
    expect(w.events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED', 'ADDED']);
    // DELETED carries the last matching content at the change's RV, as upstream's cacher sends it.
    expect(w.events[2]?.object.metadata?.labels).toEqual({ tier: 'web' });
    expect(Number(w.events[2]?.object.metadata?.resourceVersion)).toBe(Number(w.events[1]?.object.metadata?.resourceVersion) + 1);
  });

  it('sends BOOKMARKs only to watches that allow them', async () => {
    const { server, kc } = await start();
    server.apply(svc('web'));
    const withBm = await watch(kc, '/api/v1/services', { resourceVersion: server.resourceVersion, allowWatchBookmarks: true });
    const without = await watch(kc, '/api/v1/services', { resourceVersion: server.resourceVersion });
    server.apply(svc('api'));
    server.bookmark();
    await waitFor('bookmark', () => withBm.events.length === 2);
    expect(withBm.events[1]).toEqual({ type: 'BOOKMARK', object: { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: server.resourceVersion } } });
    await waitFor('the ADDED on the other watch', () => without.events.length === 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(without.events.map((e) => e.type)).toEqual(['ADDED']);
  });

  it('fails the next matching requests with failNext', async () => {
    const { server, kc, core } = await start();
    server.failNext(1, { status: 503 });
    const err = await core.listServiceForAllNamespaces().catch((e: unknown) => e);
    expect((err as ApiException<unknown>).code).toBe(503);
    await expect(core.listServiceForAllNamespaces()).resolves.toMatchObject({ kind: 'ServiceList' });

    server.failNext(1, { match: (r) => r.query.get('watch') === 'true' });
    await expect(core.listServiceForAllNamespaces()).resolves.toBeDefined(); // a LIST does not match
    const w = await watch(kc, '/api/v1/services', { resourceVersion: server.resourceVersion });
    await waitFor('failed watch', () => w.ended() !== undefined);
    expect((w.ended()?.err as { statusCode?: number } | undefined)?.statusCode).toBe(500);
  });

  it('delays responses with delay() until cleared', async () => {
    const { server, core } = await start();
    server.delay(300, { match: (r) => r.path === '/api/v1/services' });
    let t = Date.now();
    await core.listServiceForAllNamespaces();
    expect(Date.now() - t).toBeGreaterThanOrEqual(290);
    server.delay(0);
    t = Date.now();
    await core.listServiceForAllNamespaces();
    expect(Date.now() - t).toBeLessThan(250);
  });

  it('closes a watch cleanly after timeoutSeconds, but a silent watch sends nothing, not even its end', async () => {
    const { server, kc } = await start();
    const before = await watch(kc, '/api/v1/services', { resourceVersion: server.resourceVersion, allowWatchBookmarks: true });
    server.silence(true); // silences `before` too
    const during = await watch(kc, '/api/v1/services', { resourceVersion: server.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 1 });
    expect(server.watchCount).toBe(2);
    server.apply(svc('web'));
    server.bookmark();
    server.silence(false);
    const started = Date.now();
    const timed = await watch(kc, '/api/v1/services', { resourceVersion: '0', timeoutSeconds: 1 });
    await waitFor('the new watch to see web', () => timed.events.length === 1);
    expect(timed.events.map((e) => `${e.type} ${e.object.metadata?.name}`)).toEqual(['ADDED web']);
    await waitFor('server-side timeout', () => timed.ended() !== undefined, 3000);
    expect(timed.ended()?.err).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);

    const closed = await watch(kc, '/api/v1/services', { resourceVersion: server.resourceVersion });
    server.closeWatches(); // ends live watches; silent ones hear nothing, not even the end
    await waitFor('closeWatches to end the live watch', () => closed.ended() !== undefined);
    expect(closed.ended()?.err).toBeNull();
    await new Promise((r) => setTimeout(r, 50));
    expect(before.events).toEqual([]);
    expect(during.events).toEqual([]); // its timeoutSeconds passed too
    expect(before.ended()).toBeUndefined();
    expect(during.ended()).toBeUndefined();
    expect(server.watchCount).toBe(2);
  });

  it('ends watches with an error or close on dropConnections', async () => {
    const { server, kc } = await start();
    const w = await watch(kc, '/api/v1/services', { resourceVersion: server.resourceVersion });
    server.silence(true); // even a silent watch is cut
    server.dropConnections();
    await waitFor('watch to end', () => w.ended() !== undefined);
    await waitFor('server to forget the watch', () => server.watchCount === 0);
  });

  it('keeps the store, port and history across restart()', async () => {
    const { server, core, kc } = await start();
    server.apply(svc('web'));
    const rv = server.resourceVersion;
    const url = server.url;
    const w = await watch(kc, '/api/v1/services', { resourceVersion: rv });
    await server.restart();
    await waitFor('watch cut by the restart', () => w.ended() !== undefined);
    expect(server.url).toBe(url);
    const list = await core.listServiceForAllNamespaces();
    expect(list.metadata?.resourceVersion).toBe(rv);
    expect(list.items.map((s) => s.metadata?.name)).toEqual(['web']);
    server.apply(svc('api'));
    const resumed = await watch(kc, '/api/v1/services', { resourceVersion: rv });
    await waitFor('resumed watch', () => resumed.events.length === 1);
    expect(resumed.events[0]?.object.metadata?.name).toBe('api');
  });

  it('works with kubectl get and get --watch', async () => {
    requireKubectl();
    const { server } = await start();
    const web = server.apply(svc('web', { namespace: 'shop' }));
    const webIP = (web['spec'] as { clusterIP: string }).clusterIP;
    server.apply(service({ namespace: 'kube-system', name: 'dns', clusterIP: '10.96.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }));
    const kubeconfig = join(tmp, `kubeconfig-${opts.tls ? 'tls' : 'plain'}`);
    await server.writeKubeconfig(kubeconfig);
    const base = ['--kubeconfig', kubeconfig, '--cache-dir', join(tmp, `cache-${opts.tls ? 'tls' : 'plain'}`)];
    const get = await runKubectl([...base, 'get', 'services', '-A']).exited;
    expect(get.stderr).toBe('');
    expect(get.code).toBe(0);
    const lines = get.stdout.trim().split('\n').map((l) => l.split(/\s+/));
    expect(lines[0]).toEqual(['NAMESPACE', 'NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE']);
    expect(lines.slice(1).map((l) => l.slice(0, 6))).toEqual([
      ['kube-system', 'dns', 'ClusterIP', '10.96.0.10', '<none>', '53/UDP'],
      ['shop', 'web', 'ClusterIP', webIP, '<none>', '80/TCP'],
    ]);

    const w = runKubectl([...base, 'get', 'services', '-A', '--watch']);
    cleanups.push(() => w.kill());
    await w.waitForLine((l) => /^shop\s+web\s/.test(l));
    server.apply(service({ namespace: 'shop', name: 'late', clusterIP: '10.96.7.7', ports: [{ port: 8443 }] }));
    await w.waitForLine((l) => /^shop\s+late\s+ClusterIP\s+10\.96\.7\.7\s+<none>\s+8443\/TCP/.test(l));
    w.kill();
    const end = await w.exited;
    expect(end.stderr).toBe('');
  });
});

describe('TestApiServer on a Unix socket', () => {
  it('serves LIST over the socket and needs an explicit server URL for kubeconfig', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'switchboard-apiserver-sock-'));
    const server = await TestApiServer.start({ listen: { path: join(dir, 'api.sock') } });
    try {
      server.apply(svc('web'));
      expect(server.url).toBe(`unix:${join(dir, 'api.sock')}`);
      expect(() => server.kubeconfig()).toThrow(/needs opts.server/);
      expect(server.kubeconfig({ server: 'http://10.0.0.1:6443' })).toContain('server: http://10.0.0.1:6443');
      const res = await rawRequest(server, '/api/v1/services');
      expect(JSON.parse(res.body)).toMatchObject({ kind: 'ServiceList', items: [{ metadata: { name: 'web' } }] });
      await server.restart();
      const again = await rawRequest(server, '/api/v1/namespaces/default/services/web');
      expect(JSON.parse(again.body)).toMatchObject({ kind: 'Service', apiVersion: 'v1', metadata: { name: 'web' } });
    } finally {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('TestApiServer at benchmark scale', () => {
  it('takes 10,000 Services x 10 endpoints with applyMany quickly and lists them', async () => {
    const server = await TestApiServer.start();
    try {
      const objs = syntheticCluster(10_000, 10);
      const t0 = performance.now();
      expect(server.applyMany(objs)).toBe(20_000);
      const applyMs = performance.now() - t0;
      expect(applyMs).toBeLessThan(2000);
      const kc = new KubeConfig();
      kc.loadFromString(server.kubeconfig());
      const list = await kc.makeApiClient(CoreV1Api).listServiceForAllNamespaces({ limit: 500 });
      expect(list.items).toHaveLength(500);
      const raw = await rawRequest(server, '/apis/discovery.k8s.io/v1/endpointslices');
      expect((JSON.parse(raw.body) as { items: unknown[] }).items).toHaveLength(10_000);
    } finally {
      await server.stop();
    }
  });
});
