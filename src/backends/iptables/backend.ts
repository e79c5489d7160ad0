import { type IptablesTools, defaultIptablesTools, restoreTool, saveAll } from '../../kernel/iptables.js';
import { IPSET_RESTORE } from '../../kernel/ipset.js';
import { EMPTY_LIVE_RULES } from '../../kernel/syntax/iptables-save.js';
import type { Step } from '../../kernel/tool.js';
import type { ClusterState } from '../../model/state.js';
import type { ServiceKey } from '../../model/types.js';
import type { Plan, PlanOptions, ProxyBackend } from '../backend.js';
import { canaryChainsPresent } from '../shared/canary.js';
import { IptablesCompiler } from './compiler.js';
import { parseLiveRules } from './live-rules.js';
import { type IptablesOptions, localhostNodePortsOn } from './options.js';
import { writeSysctl } from '../../kernel/sysctl.js';

/**
 * The agent's iptables backend: the pure compiler, iptables-save for a full sync's live rules, and plans of an
 * `ipset restore` (flat layout) and an `iptables-restore --noflush`.
 */
export class IptablesBackend implements ProxyBackend {
  readonly name = 'iptables';
  private readonly compiler: IptablesCompiler;
  private prepared = false;

  constructor(
    private readonly options: IptablesOptions,
    private readonly tools: IptablesTools = defaultIptablesTools(options.family),
  ) {
    this.compiler = new IptablesCompiler(options);
  }

  update(state: ClusterState, changed: Iterable<ServiceKey>): void {
    this.compiler.update(state, changed);
  }


  async plan(full: boolean, { readKernel }: PlanOptions): Promise<Plan | undefined> {
    if (readKernel && !this.prepared) {
      // As kube-proxy at start: localhost NodePorts need packets to 127.0.0.0/8 routed (KUBE-FIREWALL guards it).
      if (localhostNodePortsOn(this.options)) await writeSysctl('net/ipv4/conf/all/route_localnet', '1');
      this.prepared = true;
    }
    const sync = full ? this.compiler.planFull(readKernel ? parseLiveRules(await saveAll(this.tools)) : EMPTY_LIVE_RULES) : this.compiler.planPartial();
    if (sync === undefined) return undefined;
    const { payload, ipset } = sync;
    const steps: Step[] = [];
    // The set first: rules never name a missing set or DNAT to an endpoint the set lacks.
    if (ipset) steps.push({ kind: 'input', tool: IPSET_RESTORE, input: ipset.chunks, atomic: false });
    if (payload.kind === 'full' || payload.length > 0) {
      steps.push({ kind: 'input', tool: restoreTool(this.tools), input: payload.chunks, atomic: payload.atomic });
    }
    const { stats } = payload;
    return {
      kind: payload.kind,
      steps,
      stats: {
        ruleTotals: { nat: stats.natRulesTotal, filter: stats.filterRulesTotal },
        rulesWritten: { nat: stats.natRulesWritten, filter: stats.filterRulesWritten },
        deleted: stats.chainsDeleted,
      },
      commit: sync.commit,
      abort: sync.abort,
    };
  }

  canaryPresent(): Promise<boolean> {
    return canaryChainsPresent(this.tools);
  }

  get serviceCount(): number {
    return this.compiler.serviceCount;
  }
}
