// A whole fake node (FakeNft, FakeIptables per family, FakeIpset, FakeIpvs, FakeIpLinks) and the applier that
// applies plan steps to it the way the kernel applier runs them, so unit tests can follow the agent's syncs
// without root: nft steps as typed transactions, every other tool's input as the text it would read.
import {
  KUBE_EXTERNAL_SERVICES,
  KUBE_NODEPORTS,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
  nodePortsTailRules,
} from '../../../src/backends/shared/iptables-fixed.js';
import { ToolError } from '../../../src/kernel/exec.js';
import { type Step, stepInput } from '../../../src/kernel/tool.js';
import type { Applier } from '../../../src/sync/applier.js';
import { FakeIpset } from './ipset.js';
import { FakeIptables } from './iptables.js';
import { FakeIpLinks, FakeIpvs } from './ipvs.js';
import { FakeNft } from './nft.js';

export class FakeKernel {
  readonly nft = new FakeNft();
  readonly iptables = { IPv4: new FakeIptables(), IPv6: new FakeIptables() };
  /** A set a rule still names cannot be destroyed, as in the kernel. */
  readonly ipset = new FakeIpset((name) => this.iptables.IPv4.usesSet(name) || this.iptables.IPv6.usesSet(name));
  readonly ipvs = new FakeIpvs();
  readonly links = new FakeIpLinks();

  /**
   * Everything, in one canonical text. KUBE-SERVICES' order does not matter (a partial sync inserts at the top,
   * a full sync appends), but the NodePorts rule must stay last.
   */
  dump(): string {
    const tails = [true, false].flatMap((localhostNodePorts) => nodePortsTailRules({ nodePortAddresses: 'all', localhostNodePorts, family: 'IPv4' }));
    const iptables = { unorderedChains: [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_EXTERNAL_SERVICES, KUBE_PROXY_FIREWALL], lastRules: tails };
    return [
      '## nft',
      this.nft.dump(),
      '## iptables',
      this.iptables.IPv4.dump(iptables),
      '## ip6tables',
      this.iptables.IPv6.dump(iptables),
      '## ipset',
      this.ipset.dump(),
      '## ipvs',
      this.ipvs.dump(),
      '## ip',
      this.links.dump(),
    ].join('\n');
  }
}

/** Applies steps to a FakeKernel; what a fake refuses becomes the ToolError the real tool's refusal would be. */
export class FakeApplier implements Applier {
  /** Every step applied, in order (tests look at what a sync ran). */
  readonly steps: Step[] = [];

  constructor(
    private readonly kernel: FakeKernel,
    /** A refusal to inject, by step, before the fake sees it (a test of the failure path). */
    private readonly refuse: (step: Step) => ToolError | undefined = () => undefined,
  ) {}

  async apply(steps: readonly Step[]): Promise<number> {
    let bytes = 0;
    for (const step of steps) {
      const injected = this.refuse(step);
      if (injected !== undefined) throw injected;
      const input = [...stepInput(step)].join('');
      try {
        this.applyStep(step, input);
      } catch (e) {
        if (e instanceof ToolError) throw e;
        throw new ToolError({ code: 'TOOL_REFUSED', what: step.tool.label, reason: 'refused by the fake', command: step.tool.label, tool: step.tool.name, stderr: e instanceof Error ? e.message : String(e) });
      }
      this.steps.push(step);
      bytes += input.length;
    }
    return bytes;
  }

  private applyStep(step: Step, input: string): void {
    const k = this.kernel;
    if (step.kind === 'nft') return k.nft.apply(step.transaction);
    if (step.kind === 'command') {
      const label = step.tool.label;
      const link = /^ip link (add|del) (\S+)/.exec(label);
      if (link !== null) return link[1] === 'add' ? (k.links.hasLink(link[2]!) ? undefined : k.links.linkAdd(link[2]!)) : k.links.linkDel(link[2]!);
      const destroy = /^ipset destroy (\S+)$/.exec(label);
      if (destroy !== null) return k.ipset.restore(`destroy ${destroy[1]!}\n`);
      throw new Error(`FakeApplier: no fake for the command '${label}'`);
    }
    if (input === '') return;
    switch (step.tool.name) {
      case 'iptables-restore':
        return k.iptables.IPv4.restore(input);
      case 'ip6tables-restore':
        return k.iptables.IPv6.restore(input);
      case 'ipset':
        return k.ipset.restore(input);
      case 'ipvsadm':
        return k.ipvs.restore(input);
      case 'ip':
        return k.links.batch(input);
      default:
        throw new Error(`FakeApplier: no fake for ${step.tool.label}`);
    }
  }
}
