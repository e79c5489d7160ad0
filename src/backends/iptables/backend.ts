import type { ClusterState } from '../../model/state.js';
import type { ServiceKey } from '../../model/types.js';
import { countedChunks } from '../counted.js';
import { rebuiltForZone } from '../zone.js';
import type { ProxyBackend, SyncOutcome } from '../../sync/backend.js';
import { batches } from '../../kernel/exec.js';
import { type IptablesTools, defaultIptablesTools, restoreTool, saveAll } from '../../kernel/iptables.js';
import { IPSET_RESTORE } from '../../kernel/ipset.js';
import { EMPTY_LIVE_RULES } from '../../kernel/syntax/iptables-save.js';
import { runStep } from '../../kernel/tool.js';
import { canaryChainsPresent } from '../shared/iptables-fixed.js';
import { IptablesCompiler, type SyncPlan } from './compiler.js';
import { parseLiveRules } from './live-rules.js';
import { ipsetPlanAsComments } from './loopback-set.js';
import type { IptablesOptions } from './options.js';

/** The agent's iptables backend: the pure compiler plus iptables-save/-restore. */
export class IptablesBackend implements ProxyBackend {
  readonly name = 'iptables';
  private compiler: IptablesCompiler;

  constructor(
    private options: IptablesOptions,
    private readonly tools: IptablesTools = defaultIptablesTools(options.family),
  ) {
    this.compiler = new IptablesCompiler(options);
  }

  update(state: ClusterState, changed: Iterable<ServiceKey>): void {
    this.compiler.update(state, changed);
  }

  setNodeZone(state: ClusterState, zone: string | undefined): void {
    const rebuilt = rebuiltForZone(this.options, zone, state, (o) => new IptablesCompiler(o));
    if (rebuilt !== undefined) ({ options: this.options, compiler: this.compiler } = rebuilt);
  }


  async sync(full: boolean, print?: (payload: Iterable<string>) => void): Promise<SyncOutcome> {
    let plan: SyncPlan | undefined;
    if (full) {
      // A dry run never reads the machine: it shows the full sync onto a node without our rules.
      const live = print ? EMPTY_LIVE_RULES : parseLiveRules(await saveAll(this.tools));
      plan = this.compiler.planFull(live);
    } else {
      plan = this.compiler.planPartial();
    }
    if (plan === undefined) return { kind: 'none', bytes: 0, ruleTotals: {}, chainsDeleted: 0 };
    const { payload } = plan;
    // Counted while streamed, so the payload is generated once (again only for an error report).
    const { chunks: counted, bytes } = countedChunks(payload.chunks);
    const { ipset } = plan;
    if (print) {
      // Streamed like a restore: a 10,000-Service payload is never joined into one piece.
      print(
        (function* () {
          if (ipset) yield* ipsetPlanAsComments(ipset);
          yield* batches(counted);
        })(),
      );
    } else {
      try {
        if (ipset) await runStep({ kind: 'input', tool: IPSET_RESTORE, input: ipset.chunks, atomic: false }, ipset.chunks);
        if (payload.kind === 'full' || payload.length > 0) {
          await runStep({ kind: 'input', tool: restoreTool(this.tools), input: payload.chunks, atomic: true }, counted);
        }
      } catch (e) {
        plan.abort();
        throw e;
      }
    }
    plan.commit();
    return {
      kind: payload.kind,
      bytes: bytes(),
      ruleTotals: { nat: payload.stats.natRulesTotal, filter: payload.stats.filterRulesTotal },
      chainsDeleted: payload.stats.chainsDeleted,
    };
  }

  canaryPresent(): Promise<boolean> {
    return canaryChainsPresent(this.tools);
  }

  get serviceCount(): number {
    return this.compiler.serviceCount;
  }
}
