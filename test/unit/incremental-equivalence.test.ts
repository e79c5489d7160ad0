// The central promise of incremental sync, for every backend: after any sequence of Service, EndpointSlice and
// node changes, the kernel programmed by one full sync and then partial syncs (as the agent runs) holds exactly
// what one full sync of the final state writes onto a fresh node. Checked against fakes of the kernel tools
// (FakeNft; the iptables-restore, ipset, ipvsadm and ip models), over many random sequences; a failure names
// the seed and the changes, so it can be replayed.
import { describe, expect, it } from 'vitest';
import type { ProxyBackend } from '../../src/backends/backend.js';
import { IptablesBackend } from '../../src/backends/iptables/backend.js';
import { type IptablesLayout, defaultIptablesOptions } from '../../src/backends/iptables/options.js';
import { IpvsBackend } from '../../src/backends/ipvs/backend.js';
import { defaultIpvsOptions } from '../../src/backends/ipvs/options.js';
import { NftablesBackend } from '../../src/backends/nftables/backend.js';
import { defaultNftablesOptions } from '../../src/backends/nftables/options.js';
import { ClusterState } from '../../src/model/state.js';
import { syncBackend } from '../../src/sync/applier.js';
import { FakeApplier, FakeKernel } from '../support/fakes/kernel.js';
import { NODE, prng, randomChange } from '../support/random-cluster.js';

const RUNS = 150;
const STEPS = 25;
const CLUSTER_CIDR = '10.244.0.0/16';

interface Flavour {
  readonly name: string;
  readonly backend: () => ProxyBackend;
}

const FLAVOURS: readonly Flavour[] = [
  ...(['kube-proxy', 'flat'] as const satisfies readonly IptablesLayout[]).map((layout) => ({
    name: `iptables (${layout} layout)`,
    // A small transaction limit, so large partial syncs are split into several COMMITs too.
    backend: () => new IptablesBackend(defaultIptablesOptions({ clusterCidr: CLUSTER_CIDR, layout, maxChainsPerTransaction: 4, largeClusterEndpointsThreshold: 12 })),
  })),
  { name: 'nftables', backend: () => new NftablesBackend(defaultNftablesOptions({ clusterCidr: CLUSTER_CIDR })) },
  { name: 'ipvs', backend: () => new IpvsBackend(defaultIpvsOptions({ clusterCidr: CLUSTER_CIDR })) },
];

/** Syncs (partial, or full) until the backend has nothing left to write: deferred deletions happen one sync later. */
async function settle(backend: ProxyBackend, kernel: FakeKernel): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const outcome = await syncBackend(backend, false, { applier: new FakeApplier(kernel), readKernel: false });
    if (outcome.kind === 'none') return;
  }
  throw new Error('the backend still had changes to write after three syncs with no change');
}

describe.each(FLAVOURS)('partial syncs converge to a full sync: $name', ({ backend: create }) => {
  it(`over ${RUNS} random sequences of ${STEPS} changes`, async () => {
    for (let seed = 1; seed <= RUNS; seed++) {
      const random = prng(seed);
      const state = new ClusterState(NODE);
      const incremental = create();
      const kernel = new FakeKernel();
      const applier = new FakeApplier(kernel);
      const log: string[] = [];
      // As the agent starts: a full sync of whatever the first changes made, then partial syncs.
      log.push(randomChange(state, random), randomChange(state, random));
      incremental.update(state, state.takeChanges());
      await syncBackend(incremental, true, { applier, readKernel: false });
      for (let step = 0; step < STEPS; step++) {
        for (let n = 1 + Math.floor(random() * 3); n > 0; n--) log.push(randomChange(state, random));
        incremental.update(state, state.takeChanges());
        await syncBackend(incremental, false, { applier, readKernel: false }).catch((e: unknown) => {
          throw new Error(`seed ${seed}, step ${step}: the partial sync was refused: ${String(e)}\nchanges:\n${log.join('\n')}`);
        });
      }
      await settle(incremental, kernel);

      const fresh = create();
      const expected = new FakeKernel();
      fresh.update(state, [...state.allServices()].map((s) => s.key));
      await syncBackend(fresh, true, { applier: new FakeApplier(expected), readKernel: false });
      await settle(fresh, expected);
      expect(kernel.dump(), `seed ${seed}: partial syncs left another kernel than a full sync\nchanges:\n${log.join('\n')}`).toBe(expected.dump());
    }
  });
});
