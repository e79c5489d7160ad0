// The agent with --backend nftables, end to end: partial syncs (element changes, load-balancing chains coming
// and going, affinity chains emptied then deleted) followed in real packets, and the table restored after an
// outside `nft flush ruleset`.
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';
import { type ApiFixture, eventually, useAgentLab } from './agent-harness.js';
import { NODE_NAME, nftTable, outcomes, resetNftables } from './helpers.js';
import type { Lab } from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.2' }; // the client

const WEB_IP = '10.96.6.10';
const STICKY_IP = '10.96.6.11';
const CHANGE_BOUND_MS = 5_000;
const NFT = ['--backend', 'nftables'];

const node: K8sObject = { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_NAME, labels: { 'kubernetes.io/hostname': NODE_NAME } } };
const svc = (name: string, clusterIP: string, affinityTimeoutSeconds?: number): K8sObject =>
  service({ name, clusterIP, ports: [{ name: 'http', port: 80, targetPort: 'http' }], ...(affinityTimeoutSeconds ? { affinityTimeoutSeconds } : {}) });
const slice = (name: string, ips: string[]): K8sObject =>
  endpointSlice({ name: `${name}-1`, service: name, ports: [{ name: 'http', port: 8080 }], endpoints: ips.map((ip) => ({ ip })) });

describe('switchboard run --backend nftables (end to end)', () => {
  let lab: Lab;
  let api: ApiFixture;

  /** Distinct outcomes of `count` TCP probes from the client pod, sorted. */
  async function seen(ip: string, count = 8): Promise<string[]> {
    return [...new Set(outcomes(await lab.probe('c', { proto: 'tcp', ip, port: 80, count, timeoutMs: 300 })))].sort();
  }

  async function expectSeen(ip: string, expected: string[], what: string): Promise<void> {
    await eventually(async () => JSON.stringify(await seen(ip)) === JSON.stringify(expected) || JSON.stringify(await seen(ip)), CHANGE_BOUND_MS, what);
  }

  const chains = async (): Promise<string[]> => [...(await nftTable(lab)).matchAll(/^\tchain (\S+) \{$/gm)].map((m) => m[1]!);

  const ctx = useAgentLab([A, B, C], [node]);
  beforeAll(() => {
    ({ lab, api } = ctx);
  });
  beforeEach(async () => {
    await lab.resetNetfilter();
    await resetNftables(lab);
  });

  it('follows endpoint changes, affinity and deletion through partial syncs, and never fails a sync', async () => {
    const agent = api.startAgent({ extraArgs: NFT });
    await agent.ready();
    api.server.apply(svc('web', WEB_IP));
    api.server.apply(slice('web', [A.ip]));
    await expectSeen(WEB_IP, ['ok:a'], 'web with endpoint a');
    expect(await chains()).toContain('lb-tcp-1');

    api.server.apply(slice('web', [A.ip, B.ip]));
    await expectSeen(WEB_IP, ['ok:a', 'ok:b'], 'scaled up to a and b');
    api.server.apply(slice('web', [B.ip]));
    await expectSeen(WEB_IP, ['ok:b'], 'scaled down to b');
    // lb-tcp-2 fell out of use with that sync; the next transaction deletes it.
    api.server.apply(slice('web', []));
    await expectSeen(WEB_IP, ['refused'], 'no endpoints: reject');
    await eventually(async () => !(await chains()).includes('lb-tcp-2'), CHANGE_BOUND_MS, 'the unused load-balancing chain deleted');

    // ClientIP affinity: one client sticks to one pod, whichever the random pick was.
    api.server.apply(svc('sticky', STICKY_IP, 600));
    api.server.apply(slice('sticky', [A.ip, B.ip]));
    await eventually(async () => (await seen(STICKY_IP, 10)).length === 1 || JSON.stringify(await seen(STICKY_IP)), CHANGE_BOUND_MS, 'sticky to one pod');
    const endpointChains = (await chains()).filter((c) => c.startsWith('endpoint-'));
    expect(endpointChains).toHaveLength(2);
    api.server.apply(slice('sticky', [A.ip]));
    await expectSeen(STICKY_IP, ['ok:a'], 'sticky scaled down to a');

    // Deleting the Service removes its elements at once; its chains are emptied, then deleted by a later sync.
    api.server.remove('Service', 'default', 'sticky');
    api.server.remove('EndpointSlice', 'default', 'sticky-1');
    api.server.apply(slice('web', [A.ip]));
    await expectSeen(WEB_IP, ['ok:a'], 'web back with a');
    expect(await seen(STICKY_IP, 2)).toEqual(['timeout']);
    api.server.apply(slice('web', [B.ip]));
    await expectSeen(WEB_IP, ['ok:b'], 'web moved to b');
    await eventually(async () => !(await nftTable(lab)).includes('sticky'), CHANGE_BOUND_MS, 'sticky chains and sets deleted');
    // Changes close together may share a sync; these were partial syncs, not full ones.
    expect(agent.records().filter((r) => r['msg'] === 'partial sync applied').length).toBeGreaterThanOrEqual(5);
    expect(agent.records().filter((r) => String(r['msg']).includes('failed'))).toEqual([]);
    api.server.remove('Service', 'default', 'web');
    api.server.remove('EndpointSlice', 'default', 'web-1');
  });

  it('restores its table after `nft flush ruleset` from outside', async () => {
    api.server.apply(svc('web', WEB_IP));
    api.server.apply(slice('web', [A.ip]));
    const agent = api.startAgent({ extraArgs: NFT, syncPeriod: '1h' }); // only the canary check can notice
    await agent.ready();
    await expectSeen(WEB_IP, ['ok:a'], 'initial state');
    await lab.exec('node', 'nft', ['flush', 'ruleset']);
    await eventually(async () => JSON.stringify(await seen(WEB_IP)) === '["ok:a"]', 10_000, 'table restored after the flush');
    await agent.waitFor((l) => l.includes('canary chain missing'), 1_000, 'the canary warning');
    expect(await nftTable(lab)).toContain(`${WEB_IP} . tcp . 80 comment "default/web:http cluster IP" : goto lb-tcp-1`);
    api.server.remove('Service', 'default', 'web');
    api.server.remove('EndpointSlice', 'default', 'web-1');
  });
});
