import { NFT_APPLY, listNames } from '../../kernel/nft.js';
import type { IPFamily } from '../../model/ip.js';
import type { ClusterState } from '../../model/state.js';
import type { ServiceKey } from '../../model/types.js';
import type { Plan, PlanOptions, ProxyBackend } from '../backend.js';
import { type LiveTable, NO_TABLE, NftablesCompiler } from './compiler.js';
import { TABLE_NAME, type NftablesOptions, ourTable } from './options.js';
import { SERVICES } from './fixed-chains.js';

/**
 * `--backend nftables`: kube-proxy's nftables mode (one `ip kube-proxy` table) behind the same sync loop.
 * Every sync is one `nft -f` transaction. A partial sync writes only changed elements and chains; a full sync
 * (at start, after a failure, every sync period) rewrites the fixed chains and refills every set, after
 * listing the table's chains and sets to find stale ones.
 */
export class NftablesBackend implements ProxyBackend {
  readonly name = 'nftables';
  private readonly compiler: NftablesCompiler;

  constructor(private readonly options: NftablesOptions) {
    this.compiler = new NftablesCompiler(options);
  }

  update(state: ClusterState, changed: Iterable<ServiceKey>): void {
    this.compiler.update(state, changed);
  }


  async plan(full: boolean, { readKernel }: PlanOptions): Promise<Plan | undefined> {
    const sync = full ? this.compiler.planFull(readKernel ? await readLiveTable(this.options.family) : NO_TABLE) : this.compiler.planPartial();
    if (sync === undefined) return undefined;
    return {
      kind: sync.kind,
      steps: [{ kind: 'nft', tool: NFT_APPLY, transaction: { table: ourTable(this.options.family), ops: sync.ops } }],
      stats: { ruleTotals: {}, rulesWritten: {}, deleted: sync.deleted },
      commit: sync.commit,
      abort: sync.abort,
    };
  }

  /**
   * nftables needs no canary chain (no one flushes a private table by accident), but `flush ruleset` happens
   * (a firewall service restarting). Our `services` chain gone means our table went. A `flush table` (rules
   * gone, chains and sets kept) is not seen here: listing any chain's rules costs nft 1.0.6 a fetch of every
   * set element (4-5 s at 10,000 Services, every canary period), so the periodic full sync repairs that.
   */
  async canaryPresent(): Promise<boolean> {
    return (await listNames('chains', this.options.family, TABLE_NAME)).includes(SERVICES);
  }

  get serviceCount(): number {
    return this.compiler.serviceCount;
  }
}

/** The names of our table's chains and sets (not maps: those are all fixed); empty without the table. */
async function readLiveTable(family: IPFamily): Promise<LiveTable> {
  const [chains, sets] = await Promise.all([listNames('chains', family, TABLE_NAME), listNames('sets', family, TABLE_NAME)]);
  return { chains, sets };
}
