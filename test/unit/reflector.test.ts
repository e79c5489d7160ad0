// The agent's list/watch layer against the wire-level test API server: pagination, resume from the last
// resourceVersion, 410 re-list with deletions, silent watches, 500s, slow responses and dropped connections.
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/model/fields.js';
import { ClusterState } from '../../src/model/state.js';
import { type ServiceKey } from '../../src/model/types.js';
import { KubeApiClient } from '../../src/sources/kube/api-client.js';
import { ClusterSource, PROXY_LABEL_SELECTOR } from '../../src/sources/kube/cluster-source.js';
import { Reflector, type ReflectorEvent, type ReflectorOptions } from '../../src/sources/kube/reflector.js';
import { TestApiServer } from '../apiserver/server.js';
import { endpointSlice, service } from '../support/objects.js';

const FAST: ReflectorOptions = { pageSize: 500, watchTimeoutSeconds: 300, idleTimeoutMs: 60_000, backoff: { initialMs: 20, maxMs: 200 } };

function svc(i: number, labels?: Record<string, string>): JsonObject {
  return service({ name: `svc-${i}`, clusterIP: `10.96.${i >> 8}.${i & 255}`, ports: [{ port: 80 }], ...(labels ? { labels } : {}) });
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A sink that mirrors what the reflector reports. */
class Mirror {
  readonly objects = new Map<string, JsonObject>();
  upserts = 0;
  removes = 0;
  synced = 0;
  upsert(key: string, o: JsonObject): void {
    this.upserts++;
    this.objects.set(key, o);
  }
  remove(key: string): void {
    this.removes++;
    this.objects.delete(key);
  }
}

describe('reflector against the test API server', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(opts: Partial<ReflectorOptions> = {}, timeouts?: { headersMs: number; bodyMs: number }) {
    const server = await TestApiServer.start({ tls: true, token: 'sekret' });
    cleanups.push(() => server.stop());
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig());
    const client = new KubeApiClient(kc, timeouts);
    const mirror = new Mirror();
    const events: ReflectorEvent[] = [];
    const reflector = new Reflector(
      client,
      { name: 'services', path: '/api/v1/services', labelSelector: PROXY_LABEL_SELECTOR },
      { upsert: (k, o) => mirror.upsert(k, o), remove: (k) => mirror.remove(k), synced: () => void mirror.synced++ },
      { ...FAST, ...opts, onEvent: (e) => events.push(e) },
    );
    cleanups.push(() => reflector.stop());
    return { server, mirror, events, reflector };
  }

  it('lists in pages with the proxy label selector over TLS with a token, then follows the watch', async () => {
    const { server, mirror, events, reflector } = await setup({ pageSize: 7 });
    for (let i = 0; i < 30; i++) server.apply(svc(i));
    server.apply(svc(99, { 'service.kubernetes.io/service-proxy-name': 'other' }));
    reflector.start();
    await until(() => mirror.synced === 1, 'the first list');
    expect(mirror.objects.size).toBe(30);
    const listed = events.find((e) => e.kind === 'listed');
    expect(listed).toMatchObject({ items: 30, pages: 5 });
    const lists = server.requests.filter((r) => r.path === '/api/v1/services' && r.query.get('watch') === null);
    expect(lists.map((r) => r.query.get('limit'))).toEqual(['7', '7', '7', '7', '7']);
    expect(lists.every((r) => r.query.get('labelSelector') === PROXY_LABEL_SELECTOR)).toBe(true);

    server.remove('Service', 'default', 'svc-3');
    server.apply(svc(31));
    await until(() => mirror.objects.has('default/svc-31') && !mirror.objects.has('default/svc-3'), 'watch events');
    const watch = server.requests.find((r) => r.query.get('watch') === 'true')!;
    expect(watch.query.get('allowWatchBookmarks')).toBe('true');
    expect(watch.query.get('timeoutSeconds')).toBe('300');
  });

  it('resumes from the last resourceVersion (bookmarks included) after a clean close, without listing again', async () => {
    const { server, mirror, reflector } = await setup();
    server.apply(svc(1));
    reflector.start();
    await until(() => mirror.synced === 1, 'list');
    server.apply(svc(2));
    await until(() => mirror.objects.has('default/svc-2'), 'svc-2');
    server.bookmark();
    await new Promise((r) => setTimeout(r, 50));
    const rvAfterBookmark = reflector.lastResourceVersion;
    expect(rvAfterBookmark).toBe(server.resourceVersion);
    server.closeWatches();
    server.apply(svc(3));
    await until(() => mirror.objects.has('default/svc-3'), 'svc-3 after the reconnect');
    const watches = server.requests.filter((r) => r.query.get('watch') === 'true');
    expect(watches.length).toBeGreaterThanOrEqual(2);
    expect(watches[1]!.query.get('resourceVersion')).toBe(rvAfterBookmark);
    expect(server.requests.filter((r) => r.query.get('watch') === null)).toHaveLength(1);
  });

  it('re-lists on 410 Gone and reports objects deleted meanwhile, without re-reporting unchanged ones', async () => {
    const { server, mirror, events, reflector } = await setup();
    for (let i = 0; i < 5; i++) server.apply(svc(i));
    reflector.start();
    await until(() => mirror.synced === 1, 'list');
    const upsertsBefore = mirror.upserts;
    await server.stop();
    server.remove('Service', 'default', 'svc-0');
    server.apply(svc(7));
    server.compact();
    await server.restart();
    await until(() => mirror.objects.has('default/svc-7') && !mirror.objects.has('default/svc-0'), 'the re-list diff');
    expect(events.some((e) => e.kind === 'relist')).toBe(true);
    // Only the new object was reported again: unchanged resourceVersions are skipped.
    expect(mirror.upserts - upsertsBefore).toBe(1);
    expect(mirror.removes).toBe(1);
  });

  it('detects a silent watch and reconnects', async () => {
    const { server, mirror, events, reflector } = await setup({ idleTimeoutMs: 300 });
    reflector.start();
    await until(() => mirror.synced === 1, 'list');
    server.silence(true);
    server.dropConnections(); // the next watch is silent from the start
    await until(() => events.some((e) => e.kind === 'watch-ended' && e.reason === 'idle'), 'idle detection');
    server.silence(false);
    server.apply(svc(5));
    await until(() => mirror.objects.has('default/svc-5'), 'svc-5 after the silent watch', 8_000);
  });

  it('retries 500s and connection drops with growing backoff, and never stops', async () => {
    const { server, mirror, events, reflector } = await setup();
    server.failNext(4, { status: 500 });
    reflector.start();
    await until(() => mirror.synced === 1, 'list after four 500s');
    const retries = events.filter((e): e is Extract<ReflectorEvent, { kind: 'retry' }> => e.kind === 'retry');
    expect(retries).toHaveLength(4);
    expect(retries[3]!.delayMs).toBeGreaterThan(retries[0]!.delayMs);
    expect(retries[0]!.error).toContain('500');
    server.dropConnections();
    server.apply(svc(8));
    await until(() => mirror.objects.has('default/svc-8'), 'svc-8 after a dropped connection');
  });

  it('gives up on a response whose headers do not come, and retries', async () => {
    const { server, mirror, events, reflector } = await setup({}, { headersMs: 200, bodyMs: 1_000 });
    server.delay(1_000);
    reflector.start();
    await until(() => events.some((e) => e.kind === 'retry' && e.error.includes('no response headers')), 'a header timeout');
    server.delay(0);
    await until(() => mirror.synced === 1, 'the list once the server is fast again');
  });
});

describe('cluster source', () => {
  it('turns Services and EndpointSlices into the compact state, and skips headless and other proxies objects', async () => {
    const server = await TestApiServer.start();
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig());
    const state = new ClusterState();
    const changed: string[] = [];
    const rejected: string[] = [];
    const source = new ClusterSource(new KubeApiClient(kc), state, 'node-a', {
      changed: (_k, key) => void changed.push(key),
      nodeChanged: () => undefined,
      rejected: (_r, key, errors) => void rejected.push(`${key}: ${errors.join(', ')}`),
    });
    try {
      server.apply(svc(1));
      server.apply(endpointSlice({ name: 'svc-1-a', service: 'svc-1', ports: [{ port: 80 }], endpoints: [{ ip: '10.244.0.5' }] }));
      server.apply(service({ name: 'headless', clusterIP: 'None', ports: [{ port: 80 }] }));
      server.apply(
        endpointSlice({ name: 'headless-a', service: 'headless', ports: [{ port: 80 }], endpoints: [{ ip: '10.244.0.6' }], labels: { 'service.kubernetes.io/headless': '' } }),
      );
      source.start();
      await source.whenSynced();
      expect([...state.allServices()].map((s) => s.key)).toEqual(['default/svc-1']);
      expect(state.slicesOf('default/svc-1' as ServiceKey)).toHaveLength(1);
      expect(state.getSlice('default', 'headless-a')).toBeUndefined();

      // An invalid update is rejected and the previous version stays in effect.
      const bad = svc(1);
      (bad['spec'] as { ports: { port: number }[] }).ports[0]!.port = 0;
      server.apply(bad);
      await until(() => rejected.length === 1, 'the rejection');
      expect(rejected[0]).toContain('default/svc-1: spec.ports[0].port');
      expect(state.getService('default/svc-1' as ServiceKey)?.ports[0]?.port).toBe(80);

      server.remove('EndpointSlice', 'default', 'svc-1-a');
      await until(() => state.slicesOf('default/svc-1' as ServiceKey).length === 0, 'slice removal');
      expect(changed.filter((k) => k === 'default/svc-1').length).toBeGreaterThanOrEqual(3);
    } finally {
      await source.stop();
      await server.stop();
    }
  });
});
