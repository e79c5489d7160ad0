import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/model/fields.js';
import { goTimeJSON, isNodeEligible, ProxyHealth, type HealthResponse } from '../../src/serve/health.js';
import { TO_BE_DELETED_TAINT, readNodeInfo } from '../../src/sources/kube/cluster-source.js';

// Scenarios follow upstream's testProxyHealthUpdater / TestHealthzServer / TestLivezServer
// (pkg/proxy/healthcheck/healthcheck_test.go), with a 10 s timeout and a stepped fake clock.
const T0 = Date.UTC(2025, 0, 2, 3, 4, 5, 678);

function tracker() {
  let now = T0;
  const health = new ProxyHealth({ healthTimeoutMs: 10_000, now: () => now });
  return { health, step: (ms: number) => (now += ms), now: () => now };
}

interface Body {
  lastUpdated: string;
  currentTime: string;
  nodeEligible?: boolean;
  healthy: boolean;
  status?: Record<string, { lastUpdated: string; healthy: boolean }>;
}
const body = (r: HealthResponse): Body => JSON.parse(r.body) as Body;

describe('ProxyHealth', () => {
  it('is healthy before any update, and reports no per-family status yet', () => {
    const { health } = tracker();
    const r = health.healthz();
    expect(r.status).toBe(200);
    expect(r.headers).toEqual({ 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' });
    // Exact upstream shape: key order, nodeEligible present on healthz, status omitted while empty.
    expect(r.body).toBe(
      '{"lastUpdated":"2025-01-02T03:04:05.678Z","currentTime":"2025-01-02T03:04:05.678Z","nodeEligible":true,"healthy":true}',
    );
    expect(health.livez().body).toBe('{"lastUpdated":"2025-01-02T03:04:05.678Z","currentTime":"2025-01-02T03:04:05.678Z","healthy":true}');
  });

  it('ignores queued updates until the family has been updated once (upstream judges only families it has seen sync)', () => {
    const { health, step } = tracker();
    health.queuedUpdate();
    step(60_000);
    expect(health.healthz().status).toBe(200);
  });

  it('turns 503 exactly when the oldest queued update is healthTimeout old, and recovers on updated()', () => {
    const { health, step } = tracker();
    health.updated();
    step(25_000);
    expect(health.healthz().status).toBe(200); // nothing queued: idle is healthy

    health.queuedUpdate();
    step(9_999);
    expect(health.healthz().status).toBe(200);
    health.queuedUpdate(); // a later change does not reset the oldest pending one
    step(1);
    const late = health.healthz();
    expect(late.status).toBe(503);
    expect(health.livez().status).toBe(503);
    const b = body(late);
    expect(b.healthy).toBe(false);
    // Unhealthy: lastUpdated is the real time of the last successful sync.
    expect(b.lastUpdated).toBe(goTimeJSON(T0));
    expect(b.currentTime).toBe(goTimeJSON(T0 + 35_000));
    expect(b.status).toEqual({ IPv4: { lastUpdated: goTimeJSON(T0), healthy: false } });

    step(5_000);
    health.updated();
    const ok = body(health.healthz());
    expect(health.healthz().status).toBe(200);
    expect(ok.healthy).toBe(true);
    // Healthy: lastUpdated is "now", as upstream keeps for compatibility; status keeps the real time.
    expect(ok.lastUpdated).toBe(ok.currentTime);
    expect(ok.status).toEqual({ IPv4: { lastUpdated: goTimeJSON(T0 + 40_000), healthy: true } });
  });

  it('is unhealthy while any family is late (dual-stack shape)', () => {
    const { health, step } = tracker();
    health.updated('IPv4');
    health.updated('IPv6');
    health.queuedUpdate('IPv6');
    step(25_000);
    expect(health.healthz().status).toBe(503);
    health.updated('IPv4');
    expect(health.healthz().status).toBe(503);
    expect(body(health.healthz()).status?.['IPv4']?.healthy).toBe(true);
    health.updated('IPv6');
    expect(health.healthz().status).toBe(200);
  });

  it('healthz is 503 while the node is being deleted or drained by the autoscaler; livez ignores the node', () => {
    const { health } = tracker();
    health.updated();
    // Node objects as the API sends them, read as the agent reads them.
    const cases: Array<[string, JsonObject | null, 200 | 503]> = [
      ['plain node', { metadata: { name: 'n' }, spec: {} }, 200],
      ['other taint', { metadata: { name: 'n' }, spec: { taints: [{ key: 'other', effect: 'NoSchedule' }] } }, 200],
      ['ToBeDeletedByClusterAutoscaler taint', { metadata: { name: 'n' }, spec: { taints: [{ key: TO_BE_DELETED_TAINT, effect: 'NoSchedule' }] } }, 503],
      ['deletionTimestamp', { metadata: { name: 'n', deletionTimestamp: '2025-01-02T03:04:05Z' } }, 503],
      ['node object gone', null, 503],
      ['back to a plain node', { metadata: { name: 'n' } }, 200],
    ];
    for (const [name, node, code] of cases) {
      health.setNode(node === null ? null : readNodeInfo(node));
      const hz = health.healthz();
      expect(hz.status, name).toBe(code);
      expect(body(hz).nodeEligible, name).toBe(code === 200);
      // The body's "healthy" is proxier health only, as upstream.
      expect(body(hz).healthy, name).toBe(true);
      expect(health.livez().status, name).toBe(200);
      expect(body(health.livez()), name).not.toHaveProperty('nodeEligible');
    }
  });

  it('isNodeEligible matches upstream NodeEligible', () => {
    expect(isNodeEligible({ deleting: false, toBeDeleted: false })).toBe(true);
    expect(isNodeEligible(null)).toBe(false);
    expect(isNodeEligible(readNodeInfo({ spec: { taints: [{ key: 'node.kubernetes.io/unschedulable' }] } }))).toBe(true);
    expect(isNodeEligible(readNodeInfo({ spec: { taints: [{ key: 'a' }, { key: TO_BE_DELETED_TAINT }] } }))).toBe(false);
  });

  it('formats times like Go encodes time.Time in JSON', () => {
    expect(goTimeJSON(undefined)).toBe('0001-01-01T00:00:00Z');
    expect(goTimeJSON(Date.UTC(2025, 5, 1, 0, 0, 0, 0))).toBe('2025-06-01T00:00:00Z');
    expect(goTimeJSON(Date.UTC(2025, 5, 1, 0, 0, 0, 120))).toBe('2025-06-01T00:00:00.12Z');
    expect(goTimeJSON(Date.UTC(2025, 5, 1, 0, 0, 0, 7))).toBe('2025-06-01T00:00:00.007Z');
  });

  it('rejects a non-positive timeout', () => {
    expect(() => new ProxyHealth({ healthTimeoutMs: 0 })).toThrow(/positive/);
  });
});
