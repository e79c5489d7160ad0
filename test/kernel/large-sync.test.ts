// A full sync above MAX_CHAINS_PER_TRANSACTION is several COMMITs: check in a real kernel that it lands
// complete, that a re-sync over it (with stale chains to delete) works, and that traffic flows.
import { describe, expect, it } from 'vitest';
import { endpointSlice, service, syntheticCluster, type K8sObject } from '../support/objects.js';
import { applyObjects, podsHit, useKernelLab } from './helpers.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.2' };
const REAL_IP = '10.99.0.10';

const real: K8sObject[] = [
  service({ name: 'real', clusterIP: REAL_IP, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
  endpointSlice({ name: 'real-1', service: 'real', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: A.ip }] }),
];

describe('batched full sync (large clusters)', () => {
  const k = useKernelLab([A, C]);

  it('applies 400 Services x 10 endpoints in several transactions, then re-syncs down to 200', async () => {
    const countChains = async (prefix: string) =>
      (await k.lab.iptablesSave('nat')).split('\n').filter((l) => l.startsWith(`:${prefix}`)).length;

    await applyObjects(k.lab, k.files, [...real, ...syntheticCluster(400, 10)]);
    expect(await countChains('KUBE-SVC-')).toBe(401);
    expect(await countChains('KUBE-SEP-')).toBe(4001);
    const nat = await k.lab.iptablesSave('nat');
    expect(nat.split('\n').filter((l) => l.startsWith('-A KUBE-SERVICES ')).length).toBe(402);
    expect(podsHit(await k.lab.probe('c', { proto: 'tcp', ip: REAL_IP, port: 80, count: 3 }))).toEqual(['a', 'a', 'a']);

    await applyObjects(k.lab, k.files, [...real, ...syntheticCluster(200, 10)]);
    expect(await countChains('KUBE-SVC-')).toBe(201);
    expect(await countChains('KUBE-SEP-')).toBe(2001);
    expect(podsHit(await k.lab.probe('c', { proto: 'tcp', ip: REAL_IP, port: 80, count: 3 }))).toEqual(['a', 'a', 'a']);
  });
});
