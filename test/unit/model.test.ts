import { describe, expect, it } from 'vitest';
import { categorizeEndpoints } from '../../src/model/categorize.js';
import { normalizeEndpointSlice } from '../../src/model/endpoint-slice.js';
import { parseIP } from '../../src/model/ip.js';
import { normalizeService } from '../../src/model/service.js';
import type { Endpoint } from '../../src/model/types.js';
import { load } from '../support/compile.js';
import { endpointSlice, service } from '../support/objects.js';

const ep = (ip: string, o: Partial<Endpoint> = {}): Endpoint => ({
  ip,
  port: 80,
  hostPort: `${ip}:80`,
  ready: true,
  serving: true,
  terminating: false,
  isLocal: false,
  zoneHints: [],
  nodeHints: [],
  ...o,
});
const node = { name: 'node-a', zone: 'zone-a', ips: [] };
const cluster = { internalTrafficPolicy: 'Cluster', externalTrafficPolicy: 'Cluster', externallyAccessible: false } as const;
const local = { ...cluster, internalTrafficPolicy: 'Local' } as const;
const ips = (list: readonly Endpoint[]) => list.map((e) => e.ip);

describe('categorizeEndpoints', () => {
  it('uses ready endpoints and ignores not-ready ones', () => {
    const sel = categorizeEndpoints([ep('10.0.0.1'), ep('10.0.0.2', { ready: false, serving: false })], cluster, node);
    expect(ips(sel.clusterEndpoints)).toEqual(['10.0.0.1']);
    expect(sel.hasAnyEndpoints).toBe(true);
  });

  it('falls back to serving-terminating endpoints only when no endpoint is ready', () => {
    const term = ep('10.0.0.2', { ready: false, serving: true, terminating: true });
    expect(ips(categorizeEndpoints([ep('10.0.0.1'), term], cluster, node).clusterEndpoints)).toEqual(['10.0.0.1']);
    expect(ips(categorizeEndpoints([term], cluster, node).clusterEndpoints)).toEqual(['10.0.0.2']);
    const gone = ep('10.0.0.3', { ready: false, serving: false, terminating: true });
    const sel = categorizeEndpoints([gone], cluster, node);
    expect(sel.clusterEndpoints).toEqual([]);
    expect(sel.hasAnyEndpoints).toBe(false);
  });

  it('applies zone hints only when every ready endpoint has one and one matches this zone', () => {
    const a = ep('10.0.0.1', { zoneHints: ['zone-a'] });
    const b = ep('10.0.0.2', { zoneHints: ['zone-b'] });
    expect(ips(categorizeEndpoints([a, b], cluster, node).clusterEndpoints)).toEqual(['10.0.0.1']);
    const unhinted = ep('10.0.0.3');
    expect(ips(categorizeEndpoints([a, b, unhinted], cluster, node).clusterEndpoints)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    // Not-ready endpoints without hints do not disable hints.
    const notReady = ep('10.0.0.4', { ready: false, serving: false });
    expect(ips(categorizeEndpoints([a, b, notReady], cluster, node).clusterEndpoints)).toEqual(['10.0.0.1']);
    // A node without a zone label ignores zone hints.
    expect(ips(categorizeEndpoints([a, b], cluster, { name: 'node-a', zone: undefined, ips: [] }).clusterEndpoints)).toEqual(['10.0.0.1', '10.0.0.2']);
    // No endpoint for this zone: hints ignored.
    expect(ips(categorizeEndpoints([b], cluster, node).clusterEndpoints)).toEqual(['10.0.0.2']);
  });

  it('prefers node hints over zone hints', () => {
    const a = ep('10.0.0.1', { zoneHints: ['zone-a'], nodeHints: ['node-x'] });
    const b = ep('10.0.0.2', { zoneHints: ['zone-a'], nodeHints: ['node-a'] });
    expect(ips(categorizeEndpoints([a, b], cluster, node).clusterEndpoints)).toEqual(['10.0.0.2']);
  });

  it('Local policy: local ready endpoints, else local serving-terminating, never hints', () => {
    const l1 = ep('10.0.0.1', { isLocal: true, zoneHints: ['zone-b'] });
    const r1 = ep('10.0.0.2', { zoneHints: ['zone-a'] });
    expect(ips(categorizeEndpoints([l1, r1], local, node).localEndpoints)).toEqual(['10.0.0.1']);
    const lt = ep('10.0.0.3', { isLocal: true, ready: false, serving: true, terminating: true });
    const sel = categorizeEndpoints([lt, r1], local, node);
    expect(ips(sel.localEndpoints)).toEqual(['10.0.0.3']);
    expect(ips(sel.allReachable)).toEqual(['10.0.0.3']);
    const remoteOnly = categorizeEndpoints([r1], local, node);
    expect(remoteOnly.localEndpoints).toEqual([]);
    expect(remoteOnly.hasAnyEndpoints).toBe(true);
  });
});

describe('endpoint merging', () => {
  it('resolves a named targetPort through the slice port of the same name and protocol, sorted by ip:port text', () => {
    const { state } = load([
      service({ name: 'web', clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'http', port: 80, protocol: 'UDP' }] }),
      endpointSlice({ name: 'web-1', service: 'web', ports: [{ name: 'http', port: 8080 }, { name: 'http', port: 9090, protocol: 'UDP' }], endpoints: [{ ip: '10.1.1.1' }] }),
      endpointSlice({ name: 'web-2', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.1.1.11' }, { ip: '10.1.1.1', terminating: true, ready: false }] }),
    ]);
    const slices = state.slicesOf(state.allServices().next().value!.key);
    expect(slices.map((s) => s.name)).toEqual(['web-1', 'web-2']);
  });

  it('keeps the non-terminating copy of a duplicate endpoint', async () => {
    const { endpointCountForPort, endpointsForPort } = await import('../../src/model/endpoints.js');
    const { state } = load([
      endpointSlice({ name: 'a', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.1.1.1', ready: false, serving: true, terminating: true }, { ip: '10.1.1.11' }] }),
      endpointSlice({ name: 'b', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.1.1.1' }] }),
    ]);
    const slices = state.slicesOf('default/web' as never);
    const eps = endpointsForPort(slices, { name: 'http', port: 80, protocol: 'TCP', nodePort: 0 }, 'IPv4', 'node-a');
    expect(eps.map((e) => [e.hostPort, e.ready])).toEqual([
      ['10.1.1.11:8080', true],
      ['10.1.1.1:8080', true],
    ]);
    expect(endpointsForPort(slices, { name: 'http', port: 80, protocol: 'UDP', nodePort: 0 }, 'IPv4', 'node-a')).toEqual([]);
    // The compiler counts before it renders: the count must be the merged list's length.
    expect(endpointCountForPort(slices, { name: 'http', port: 80, protocol: 'TCP', nodePort: 0 }, 'IPv4')).toBe(2);
    expect(endpointCountForPort(slices, { name: 'http', port: 80, protocol: 'UDP', nodePort: 0 }, 'IPv4')).toBe(0);
  });
});

describe('normalization', () => {
  it('rejects a malformed Service naming every bad field', () => {
    const bad = service({ name: 'web', clusterIP: '10.96.0.300', ports: [{ port: 70000 }] });
    (bad['spec'] as Record<string, unknown>)['ports'] = [{ port: 70000, protocol: 'ICMP' }];
    const r = normalizeService(bad);
    expect(r.status).toBe('invalid');
    if (r.status !== 'invalid') return;
    expect(r.errors.map((e) => e.field)).toEqual(['spec.clusterIP', 'spec.ports[0].port', 'spec.ports[0].protocol']);
  });

  it('skips headless, ExternalName, unallocated and other-proxy Services', () => {
    expect(normalizeService(service({ name: 'h', clusterIP: 'None', ports: [{ port: 80 }] })).status).toBe('skipped');
    expect(normalizeService(service({ name: 'e', clusterIP: '', type: 'ExternalName', ports: [] })).status).toBe('skipped');
    expect(normalizeService(service({ name: 'u', clusterIP: '', ports: [{ port: 80 }] })).status).toBe('skipped');
    const other = service({ name: 'o', clusterIP: '10.96.0.9', ports: [{ port: 80 }], labels: { 'service.kubernetes.io/service-proxy-name': 'x' } });
    expect(normalizeService(other).status).toBe('skipped');
  });

  it('normalizes leading-zero IPv4 octets the way kube-proxy does', () => {
    expect(parseIP('172.30.0.041')?.text).toBe('172.30.0.41');
    expect(parseIP('10.180.00.001')?.text).toBe('10.180.0.1');
    expect(parseIP('FD00:0:0::1')?.text).toBe('fd00::1');
    expect(parseIP('10.0.0.256')).toBeUndefined();
  });

  it('rejects a slice with a bad address or a missing service-name label, and skips headless slices', () => {
    const bad = endpointSlice({ name: 's', service: 'web', ports: [{ port: 80 }], endpoints: [{ ip: 'not-an-ip' }] });
    const r = normalizeEndpointSlice(bad);
    expect(r.status === 'invalid' && r.errors[0]?.field).toBe('endpoints[0].addresses[0]');
    const unlabelled = endpointSlice({ name: 's', service: 'web', ports: [], endpoints: [] });
    (unlabelled['metadata'] as Record<string, unknown>)['labels'] = {};
    expect(normalizeEndpointSlice(unlabelled).status).toBe('invalid');
    const headless = endpointSlice({ name: 's', service: 'web', ports: [], endpoints: [], labels: { 'service.kubernetes.io/headless': '' } });
    expect(normalizeEndpointSlice(headless).status).toBe('skipped');
  });

  it('reads nil conditions as ready and serving, not terminating', () => {
    const s = endpointSlice({ name: 's', service: 'web', ports: [{ port: 80 }], endpoints: [{ ip: '10.0.0.1' }] });
    delete ((s['endpoints'] as Record<string, unknown>[])[0] as Record<string, unknown>)['conditions'];
    const r = normalizeEndpointSlice(s);
    expect(r.status === 'ok' && r.value.endpoints[0]).toMatchObject({ ready: true, serving: true, terminating: false });
  });
});
