import type { ClusterState } from '../../model/state.js';
import type { ServiceKey } from '../../model/types.js';
import type { ApplyFailure, ProxyBackend, SyncOutcome } from '../../sync/backend.js';
import { applyFailureOf } from '../iptables/apply.js';
import { countedChunks } from '../counted.js';
import { rebuiltForZone } from '../zone.js';
import { dispatchPresent, nftApply, readLiveTable } from './apply.js';
import { NO_TABLE, NftablesCompiler } from './compiler.js';
import type { NftablesOptions } from './options.js';

/**
 * `--backend nftables`: kube-proxy's nftables mode (one `ip kube-proxy` table) behind the same sync loop.
 * Every sync is one `nft -f` transaction. A partial sync writes only changed elements and chains; a full sync
 * (at start, after a failure, every sync period) rewrites the fixed chains and refills every set, after
 * listing the table's chains and sets to find stale ones.
 */
export class NftablesBackend implements ProxyBackend {
  readonly name = 'nftables';
  private compiler: NftablesCompiler;

  constructor(private options: NftablesOptions) {
    this.compiler = new NftablesCompiler(options);
  }

  update(state: ClusterState, changed: Iterable<ServiceKey>): void {
    this.compiler.update(state, changed);
  }

  setNodeZone(state: ClusterState, zone: string | undefined): void {
    const rebuilt = rebuiltForZone(this.options, zone, state, (o) => new NftablesCompiler(o));
    if (rebuilt !== undefined) ({ options: this.options, compiler: this.compiler } = rebuilt);
  }

  async sync(full: boolean, print?: (payload: Iterable<string>) => void): Promise<SyncOutcome> {
    // A dry run never reads the machine: its full sync is onto a node without our table.
    const plan = full ? this.compiler.planFull(print ? NO_TABLE : await readLiveTable(this.options.family)) : this.compiler.planPartial();
    if (plan === undefined) return { kind: 'none', bytes: 0, ruleTotals: {}, chainsDeleted: 0 };
    const { chunks: counted, bytes } = countedChunks(plan.chunks);
    if (print) print(counted);
    else {
      try {
        await nftApply(counted);
      } catch (e) {
        plan.abort();
        throw e;
      }
    }
    plan.commit();
    return { kind: plan.kind, bytes: bytes(), ruleTotals: {}, chainsDeleted: plan.deleted };
  }

  /** nftables needs no canary chain (no one flushes a private table by accident), but `flush ruleset` happens. */
  canaryPresent(): Promise<boolean> {
    return dispatchPresent(this.options.family);
  }

  asApplyFailure(e: unknown): ApplyFailure | undefined {
    return applyFailureOf(e);
  }

  get serviceCount(): number {
    return this.compiler.serviceCount;
  }
}
