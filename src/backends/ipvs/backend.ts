import { ToolError } from '../../kernel/exec.js';
import { IP_BATCH, addDummyLinkTool, deviceExists } from '../../kernel/ip.js';
import { type IptablesTools, defaultIptablesTools, restoreTool, saveAll } from '../../kernel/iptables.js';
import { IPSET_RESTORE } from '../../kernel/ipset.js';
import { IPVSADM_RESTORE } from '../../kernel/ipvsadm.js';
import { EMPTY_LIVE_RULES, type LiveRules, parseIptablesSave } from '../../kernel/syntax/iptables-save.js';
import type { Step } from '../../kernel/tool.js';
import type { ClusterState } from '../../model/state.js';
import type { ServiceKey } from '../../model/types.js';
import type { Plan, PlanOptions, ProxyBackend } from '../backend.js';
import { canaryChainsPresent } from '../shared/canary.js';
import { countLines } from '../shared/iptables-fixed.js';
import { readConnectionCounts, readDeviceAddresses, readIpvsTable, readSets, requireIpvs, setSysctls } from './live.js';
import { IpvsCompiler } from './compiler.js';
import type { ConnectionCounts } from './ipvsadm.js';
import type { IpvsOptions } from './options.js';
import { type IpvsDesired, type IpvsKernelState, type IpvsPlan, KUBE_IPVS0, UNKNOWN_KERNEL_STATE, needsCounts, ourVirtualServers, planIpvs } from './plan.js';
import { KUBE_IPVS_IPS, ipvsRulesPayload } from './rules.js';

/**
 * `--backend ipvs`: kube-proxy's IPVS mode behind the same sync loop. A partial sync diffs against the state
 * the last successful sync left; a full sync (at start, after any failure, every sync period) reads the
 * kernel (ipvsadm -S -n, ipset save, kube-ipvs0's addresses, iptables-save) and reconciles against that.
 */
export class IpvsBackend implements ProxyBackend {
  readonly name = 'ipvs';
  private readonly compiler: IpvsCompiler;
  /** What the kernel holds after the last successful sync; unknown after a failure (the next sync is full). */
  private applied: IpvsKernelState = UNKNOWN_KERNEL_STATE;
  private prepared = false;

  constructor(
    private readonly options: IpvsOptions,
    private readonly iptables: IptablesTools = defaultIptablesTools(options.family),
  ) {
    this.compiler = new IpvsCompiler(options);
  }

  update(state: ClusterState, changed: Iterable<ServiceKey>): void {
    this.compiler.update(state, changed);
  }



  async plan(full: boolean, { readKernel }: PlanOptions): Promise<Plan | undefined> {
    const { take: desired, commit, abort } = this.compiler.desired();
    const family = this.options.family;
    let observed: IpvsKernelState;
    let live: LiveRules | undefined;
    let counts: ConnectionCounts;
    if (readKernel) {
      if (!this.prepared) {
        await requireIpvs();
        await setSysctls();
        this.prepared = true;
      }
      observed = full ? await readKernelState(family, ownedAddresses(desired)) : this.applied;
      live = full ? parseIptablesSave(await saveAll(this.iptables)) : undefined;
      counts = await readConnectionCounts(needsCounts(desired, observed));
    } else {
      // A dry run never reads the machine: a full sync shows everything as if onto a node without our state.
      observed = full ? UNKNOWN_KERNEL_STATE : this.applied;
      live = full ? EMPTY_LIVE_RULES : undefined;
      counts = new Map();
    }
    const plan = planIpvs(desired, observed, counts, family, (b) => ipvsRulesPayload(b, live));
    if (plan.empty) {
      this.applied = plan.after;
      commit();
      return undefined;
    }
    const body = plan.after.rulesBody;
    return {
      kind: full ? 'full' : 'partial',
      steps: ipvsSteps(plan, this.iptables, (e) => withUnappliedLines(e, desired, family)),
      stats: {
        ruleTotals: body === undefined ? {} : { nat: countLines(body.nat), filter: countLines(body.filter) },
        rulesWritten: {},
        deleted: 0,
      },
      commit: () => {
        this.applied = plan.after;
        commit();
      },
      // Whatever part of it took effect, the next (full) sync reads the kernel again.
      abort: () => {
        this.applied = UNKNOWN_KERNEL_STATE;
        abort();
      },
    };
  }

  async canaryPresent(): Promise<boolean> {
    // Deleting kube-ipvs0 unbinds every ClusterIP: as bad as a flush, and repaired the same way.
    return (await canaryChainsPresent(this.iptables)) && (await deviceExists(KUBE_IPVS0));
  }

  get serviceCount(): number {
    return this.compiler.serviceCount;
  }
}

/** Addresses whose virtual servers are ours: the wanted ones on kube-ipvs0 and the NodePort addresses. */
function ownedAddresses(desired: IpvsDesired): Set<string> {
  return new Set([...desired.addresses, ...desired.nodePortAddresses]);
}

/** The kernel's IPVS-mode state: see ourVirtualServers for which virtual servers are ours. */
async function readKernelState(family: IpvsOptions['family'], wanted: ReadonlySet<string>): Promise<IpvsKernelState> {
  const addresses = await readDeviceAddresses(family);
  const sets = await readSets();
  const owned = new Set([...(addresses ?? []), ...(sets.get(KUBE_IPVS_IPS) ?? []), ...wanted]);
  return { table: ourVirtualServers(await readIpvsTable(), owned, sets), addresses, sets, rulesBody: undefined };
}

/**
 * In the order that never leaves a rule or virtual server pointing at something missing. A refused
 * `ipvsadm -R` is rethrown as `explain` makes it (the input does not say which line failed).
 */
function ipvsSteps(plan: IpvsPlan, iptables: IptablesTools, explain: (e: ToolError) => Promise<ToolError>): Step[] {
  const steps: Step[] = [];
  if (plan.createDevice) steps.push({ kind: 'command', tool: addDummyLinkTool(KUBE_IPVS0) });
  steps.push({ kind: 'input', tool: IPSET_RESTORE, input: [plan.ipsetAdds], atomic: false });
  // Three COMMITs (filter, nat, mangle), each applied on its own.
  if (plan.rules !== undefined) steps.push({ kind: 'input', tool: restoreTool(iptables), input: [plan.rules], atomic: false });
  steps.push({ kind: 'input', tool: IP_BATCH, input: [plan.addressAdds], atomic: false });
  steps.push({ kind: 'input', tool: IPVSADM_RESTORE, input: [plan.ipvsadm], atomic: false, explain });
  if (plan.addressDels !== '') steps.push({ kind: 'input', tool: IP_BATCH, input: [plan.addressDels], atomic: false });
  if (plan.ipsetDels !== '') steps.push({ kind: 'input', tool: IPSET_RESTORE, input: [plan.ipsetDels], atomic: false });
  return steps;
}

/**
 * ipvsadm -R does not say which line failed. Reading the table back and planning again names them: the
 * lines still needed are the ones that did not take effect.
 */
async function withUnappliedLines(e: ToolError, desired: IpvsDesired, family: IpvsOptions['family']): Promise<ToolError> {
  try {
    const observed = await readKernelState(family, ownedAddresses(desired));
    const again = planIpvs(desired, observed, await readConnectionCounts(needsCounts(desired, observed)), family, (b) => ipvsRulesPayload(b, undefined));
    const lines = again.ipvsadm.split('\n').filter((l) => l !== '');
    return e.withOffendingLines(lines.slice(0, 20).map((l) => `not applied: ${l}`));
  } catch {
    return e;
  }
}
