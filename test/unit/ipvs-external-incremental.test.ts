// Incremental equivalence for IPVS mode's external traffic (the shared random cluster has no external Services
// yet): random sequences of NodePort, external-IP and LB Services (traffic policies, source ranges, health-check
// ports, endpoints local, remote or none) and node IP changes, synced partially as the agent does, leave the
// same fake kernel as one full sync of the final state.
import { describe, expect, it } from 'vitest';
import { IpvsBackend } from '../../src/backends/ipvs/backend.js';
import { defaultIpvsOptions } from '../../src/backends/ipvs/options.js';
import { ClusterState } from '../../src/model/state.js';
import { syncBackend } from '../../src/sync/applier.js';
import { setObject } from '../support/compile.js';
import { FakeApplier, FakeKernel } from '../support/fakes/kernel.js';
import { type K8sObject, endpointSlice, service } from '../support/objects.js';
import { prng } from '../support/random-cluster.js';

const NODE = 'node-a';
const RUNS = 60;
const STEPS = 15;

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)]!;
}

/** A random variant of one of four Services, or of its endpoints. */
function randomObject(random: () => number): K8sObject {
  const i = Math.floor(random() * 4);
  const name = `svc${i}`;
  if (random() < 0.4) {
    const endpoints = pick(random, [[], [{ ip: `10.244.1.${i + 1}`, nodeName: NODE }], [{ ip: `10.244.2.${i + 1}`, nodeName: 'node-b' }], [
      { ip: `10.244.1.${i + 1}`, nodeName: NODE },
      { ip: `10.244.2.${i + 1}`, nodeName: 'node-b' },
    ]]);
    return endpointSlice({ name: `${name}-1`, service: name, ports: [{ name: 'p', port: 8080, protocol: i === 3 ? 'UDP' : 'TCP' }], endpoints });
  }
  return service({
    name,
    type: pick(random, ['ClusterIP', 'NodePort', 'LoadBalancer'] as const),
    clusterIP: `10.96.0.${10 + i}`,
    ports: [{ name: 'p', port: 80, targetPort: 8080, protocol: i === 3 ? 'UDP' : 'TCP', ...(random() < 0.7 ? { nodePort: 30000 + pick(random, [i, 9]) } : {}) }],
    externalTrafficPolicy: pick(random, ['Cluster', 'Local'] as const),
    ...(random() < 0.5 ? { externalIPs: [pick(random, ['192.0.2.1', `192.0.2.${10 + i}`])] } : {}),
    ...(random() < 0.5 ? { loadBalancerIngress: [{ ip: pick(random, ['198.51.100.1', `198.51.100.${10 + i}`]) }] } : {}),
    ...(random() < 0.4 ? { loadBalancerSourceRanges: [pick(random, ['203.0.113.0/24', '0.0.0.0/0', '192.168.0.0/16'])] } : {}),
    ...(random() < 0.3 ? { healthCheckNodePort: 32000 + i } : {}),
    ...(random() < 0.2 ? { affinityTimeoutSeconds: 60 } : {}),
  });
}

function randomChange(state: ClusterState, random: () => number): string {
  const r = random();
  if (r < 0.1) {
    const ips = pick(random, [['192.168.0.2'], ['192.168.0.3'], ['192.168.0.2', '10.0.0.2'], []]);
    state.setNodeIPs(ips);
    return `node ips ${ips.join(',')}`;
  }
  if (r < 0.2) {
    const name = `svc${Math.floor(random() * 4)}`;
    state.deleteService(`default/${name}` as Parameters<ClusterState['deleteService']>[0]);
    return `delete ${name}`;
  }
  const obj = randomObject(random);
  setObject(state, obj);
  return JSON.stringify(obj);
}

const create = () => new IpvsBackend(defaultIpvsOptions({ clusterCidr: '10.244.0.0/16' }));

async function settle(backend: IpvsBackend, kernel: FakeKernel): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const outcome = await syncBackend(backend, false, { applier: new FakeApplier(kernel), readKernel: false });
    if (outcome.kind === 'none') return;
  }
  throw new Error('still changing after three syncs with no change');
}

describe('IPVS external traffic: partial syncs converge to a full sync', () => {
  it(`over ${RUNS} random sequences of ${STEPS} changes`, async () => {
    for (let seed = 1; seed <= RUNS; seed++) {
      const random = prng(seed);
      const state = new ClusterState(NODE, undefined, ['192.168.0.2']);
      const incremental = create();
      const kernel = new FakeKernel();
      const applier = new FakeApplier(kernel);
      const log = [randomChange(state, random), randomChange(state, random)];
      incremental.update(state, state.takeChanges());
      await syncBackend(incremental, true, { applier, readKernel: false });
      for (let step = 0; step < STEPS; step++) {
        for (let n = 1 + Math.floor(random() * 3); n > 0; n--) log.push(randomChange(state, random));
        incremental.update(state, state.takeChanges());
        await syncBackend(incremental, false, { applier, readKernel: false }).catch((e: unknown) => {
          throw new Error(`seed ${seed}, step ${step}: refused: ${String(e)}\n${log.join('\n')}`);
        });
      }
      await settle(incremental, kernel);
      const fresh = create();
      const expected = new FakeKernel();
      fresh.update(state, [...state.allServices()].map((s) => s.key));
      await syncBackend(fresh, true, { applier: new FakeApplier(expected), readKernel: false });
      await settle(fresh, expected);
      expect(kernel.dump(), `seed ${seed}\n${log.join('\n')}`).toBe(expected.dump());
    }
  });
});
