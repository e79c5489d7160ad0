// The Event recorder against the wire-level test API server, which validates events.k8s.io/v1 Events as the
// real one does: what an Event carries, how repeats become one series (created, patched at the 2nd, counted
// in memory, refreshed, finished), and that failures to write are retried or dropped, logged, never thrown.
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeApiClient } from '../../src/sources/kube/api-client.js';
import { EventRecorder, type EventRecorderOptions, type EventSpec, kubeProxyReporter } from '../../src/sources/kube/event-recorder.js';
import { waitFor } from '../apiserver/helpers.js';
import { type KubeObject, TestApiServer } from '../apiserver/server.js';

const EVENTS = '/apis/events.k8s.io/v1/namespaces/shop/events';

function failure(note = 'node node-a failed to start healthcheck "shop/lb" on port 32111: listen EADDRINUSE: address already in use :::32111'): EventSpec {
  return {
    regarding: { kind: 'Service', namespace: 'shop', name: 'lb', uid: 'shop/lb' },
    type: 'Warning',
    reason: 'FailedToStartServiceHealthcheck',
    action: 'Listen',
    note,
  };
}

type LogLine = Record<string, unknown> & { level: number; msg: string };

describe('EventRecorder', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(opts: Partial<EventRecorderOptions> = {}) {
    const server = await TestApiServer.start({ tls: true, token: 'sekret' });
    cleanups.push(() => server.stop());
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig());
    const logs: LogLine[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) });
    const recorder = new EventRecorder(new KubeApiClient(kc, { headersMs: 2_000, bodyMs: 2_000 }), {
      ...kubeProxyReporter('node-a.example'),
      log,
      retry: { tries: 3, delayMs: 10 },
      ...opts,
    });
    cleanups.push(() => recorder.close());
    const writes = () => server.requests.filter((r) => r.method !== 'GET');
    const events = () => server.objects('Event');
    return { server, recorder, logs, writes, events };
  }

  it('creates an events.k8s.io/v1 Event as kube-proxy does, in the regarding object\'s namespace', async () => {
    const { recorder, writes, events } = await setup();
    const before = Date.now();
    recorder.record(failure());
    await recorder.settled();

    expect(writes().map((r) => `${r.method} ${r.path} ${r.contentType ?? ''}`)).toEqual([`POST ${EVENTS} application/json`]);
    const [ev] = events();
    expect(ev).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { namespace: 'shop' },
      reportingController: 'kube-proxy',
      reportingInstance: 'kube-proxy-node-a.example',
      type: 'Warning',
      reason: 'FailedToStartServiceHealthcheck',
      action: 'Listen',
      regarding: { kind: 'Service', namespace: 'shop', name: 'lb', uid: 'shop/lb' },
      note: 'node node-a failed to start healthcheck "shop/lb" on port 32111: listen EADDRINUSE: address already in use :::32111',
    });
    expect(ev?.['series']).toBeUndefined();
    // Upstream's name: "<regarding name>.<unix nanoseconds in hex>".
    const name = String((ev?.['metadata'] as KubeObject)['name']);
    const [, hex] = /^lb\.([0-9a-f]+)$/.exec(name) ?? [];
    const ms = Number(BigInt(`0x${hex ?? '0'}`) / 1_000_000n);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(Date.now());
    expect(String(ev?.['eventTime'])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('turns repeats into one series: patched at the 2nd, counted in memory, refreshed, then finished', async () => {
    const { recorder, writes, events } = await setup({ refreshMs: 300, finishMs: 600 });
    recorder.record(failure());
    await recorder.settled();
    // The 2nd occurrence writes the series; the ones before that write runs are in its count.
    for (let i = 0; i < 9; i++) recorder.record(failure());
    await recorder.settled();
    expect(writes().map((r) => `${r.method} ${r.contentType ?? ''}`)).toEqual(['POST application/json', 'PATCH application/strategic-merge-patch+json']);
    expect(events()).toHaveLength(1);
    expect(events()[0]?.['series']).toMatchObject({ count: 10 });
    expect(String((events()[0]?.['series'] as KubeObject)['lastObservedTime'])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const name = String((events()[0]?.['metadata'] as KubeObject)['name']);
    // Later occurrences are only counted until the refresh.
    recorder.record(failure());
    await recorder.settled();
    expect(writes()).toHaveLength(2);

    // Still failing (as a listen retried every few seconds): the refresh writes the count so far.
    let recorded = 11;
    const keepFailing = setInterval(() => {
      recorder.record(failure());
      recorded++;
    }, 50);
    cleanups.push(() => clearInterval(keepFailing));
    await waitFor('a refresh of the series', () => writes().length >= 3, 3_000);
    clearInterval(keepFailing);
    await recorder.settled();
    expect((events()[0]?.['series'] as KubeObject)['count']).toBeGreaterThan(10);

    // Quiet for finishMs: the final count is written and the series forgotten, so the next repeat is a new Event.
    await new Promise((r) => setTimeout(r, 1_200));
    await recorder.settled();
    expect((events()[0]?.['series'] as KubeObject)['count']).toBe(recorded);
    recorder.record(failure());
    await recorder.settled();
    expect(writes().at(-1)?.method).toBe('POST');
    const names = events().map((e) => String((e['metadata'] as KubeObject)['name']));
    expect(names).toHaveLength(2);
    expect(names).toContain(name);
    expect(events().every((e) => e['note'] === failure().note)).toBe(true);
  });

  it('writes a different note (another port, another error) as a separate Event', async () => {
    const { recorder, events } = await setup();
    recorder.record(failure());
    recorder.record(failure('node node-a failed to start healthcheck "shop/lb" on port 32112: listen EACCES: permission denied'));
    await recorder.settled();
    expect(events().map((e) => e['note']).sort()).toEqual([failure().note, failure('node node-a failed to start healthcheck "shop/lb" on port 32112: listen EACCES: permission denied').note].sort());
    expect(events().every((e) => e['series'] === undefined)).toBe(true);
  });

  it('retries a write that meets a 5xx, and drops one the server rejects (4xx) after one try; both only logged', async () => {
    const { server, recorder, writes, events, logs } = await setup();
    server.failNext(2, { status: 503, match: (r) => r.method === 'POST' });
    recorder.record(failure());
    await recorder.settled();
    expect(writes().map((r) => r.method)).toEqual(['POST', 'POST', 'POST']);
    expect(events()).toHaveLength(1);
    expect(logs.filter((l) => l.msg === 'cannot write event; retrying')).toHaveLength(2);

    server.failNext(5, { status: 403, match: (r) => r.method === 'POST' });
    recorder.record(failure('another failure'));
    await recorder.settled();
    expect(writes()).toHaveLength(4);
    expect(events()).toHaveLength(1);
    const rejected = logs.find((l) => l.msg === 'event rejected by the API server; not retried');
    expect(rejected).toMatchObject({ level: 40, status: 403, event: { namespace: 'shop', reason: 'FailedToStartServiceHealthcheck', regarding: 'Service shop/lb' } });
    expect(String(rejected?.['err'])).toContain(`POST ${EVENTS}: HTTP 403`);
  });

  it('gives up after the retries when the API server is unreachable, without throwing or blocking', async () => {
    const { server, recorder, logs } = await setup();
    await server.stop();
    const start = Date.now();
    recorder.record(failure());
    expect(Date.now() - start).toBeLessThan(50);
    await recorder.settled();
    expect(logs.filter((l) => l.msg === 'cannot write event; retrying')).toHaveLength(2);
    expect(logs.find((l) => l.msg === 'cannot write event; giving up')).toMatchObject({ level: 40, tries: 3 });
  });

  it('re-creates an Event that is gone when its series is written, series included', async () => {
    const { server, recorder, writes, events } = await setup();
    recorder.record(failure());
    await recorder.settled();
    const name = String((events()[0]?.['metadata'] as KubeObject)['name']);
    server.remove('Event', 'shop', name);
    recorder.record(failure());
    await recorder.settled();
    expect(writes().map((r) => r.method)).toEqual(['POST', 'PATCH', 'POST']);
    expect(events()).toHaveLength(1);
    expect(events()[0]).toMatchObject({ metadata: { name }, series: { count: 2 } });
  });

  it('cuts a note to the 1024 bytes the API accepts', async () => {
    const { recorder, events } = await setup();
    recorder.record(failure(`listen failed: ${'é'.repeat(2_000)}`));
    await recorder.settled();
    const note = String(events()[0]?.['note']);
    expect(Buffer.byteLength(note)).toBeLessThanOrEqual(1024);
    expect(note).toMatch(/^listen failed: é+ \.\.\.$/);
  });

  it('tracks at most maxEntries distinct events, logging the drop once', async () => {
    const { recorder, events, logs } = await setup({ maxEntries: 2 });
    for (let i = 0; i < 5; i++) recorder.record(failure(`failure ${i}`));
    await recorder.settled();
    expect(events().map((e) => e['note']).sort()).toEqual(['failure 0', 'failure 1']);
    expect(logs.filter((l) => l.msg.startsWith('too many distinct events'))).toHaveLength(1);
  });

  it('stops retrying once closed', async () => {
    const { server, recorder, writes } = await setup({ retry: { tries: 12, delayMs: 200 } });
    server.failNext(100, { status: 500 });
    recorder.record(failure());
    await waitFor('the first try', () => writes().length === 1);
    recorder.close();
    await recorder.settled();
    await new Promise((r) => setTimeout(r, 400));
    expect(writes()).toHaveLength(1);
    recorder.record(failure('after close'));
    await new Promise((r) => setTimeout(r, 50));
    expect(writes()).toHaveLength(1);
  });
});
