import { type CleanupPlan, describeCleanup, planCleanupDetailed } from '../backends/iptables/cleanup.js';
import { KUBE_LOOP_BACK, KUBE_LOOP_BACK_NEXT } from '../backends/shared/iptables-fixed.js';
import { ToolError } from '../kernel/exec.js';
import { type IptablesTools, defaultIptablesTools, iptablesCommands, restoreTool, saveAll } from '../kernel/iptables.js';
import type { IptablesMode } from '../kernel/iptables-mode.js';
import { destroyTool, listIpsets } from '../kernel/ipset.js';
import { runStep } from '../kernel/tool.js';
import type { IPFamily } from '../model/ip.js';
import { toolFailureText } from './report.js';
import { type IpvsCleanup, cleanupIpvs } from '../backends/ipvs/cleanup.js';
import { KUBE_CLUSTER_IP, KUBE_IPVS_IPS } from '../backends/ipvs/rules.js';
import { type NftablesCleanup, cleanupNftables } from '../backends/nftables/cleanup.js';

export interface CleanupIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface CleanupOptions {
  /** Print the restore payloads instead of applying them (the machine is still read). */
  readonly dryRun?: boolean;
}

/** The two programs cleanup runs; replaceable so the command's contract is testable without root. */
export interface CleanupTools {
  save(family: IPFamily): Promise<string>;
  restore(payload: string, family: IPFamily): Promise<void>;
  /** Names of all ipsets; undefined when the ipset tool is missing (so no set of ours can exist). */
  listSets(): Promise<string[] | undefined>;
  destroySet(name: string): Promise<void>;
  /** IPVS mode's virtual servers and kube-ipvs0 (see backends/ipvs/cleanup.ts). */
  cleanupIpvs(dryRun: boolean): Promise<IpvsCleanup>;
  /** nftables mode's table (see backends/nftables/cleanup.ts). */
  cleanupNftables(dryRun: boolean): Promise<NftablesCleanup>;
}

function systemTools(toolsOf: (family: IPFamily) => IptablesTools): CleanupTools {
  return {
    save: (family) => saveAll(toolsOf(family)),
    restore: (payload, family) => runStep({ kind: 'input', tool: restoreTool(toolsOf(family)), input: [payload], atomic: true }, [payload]),
    listSets: listIpsets,
    destroySet: (name) => runStep({ kind: 'command', tool: destroyTool(name) }, []),
    cleanupIpvs,
    cleanupNftables,
  };
}

export const SYSTEM_TOOLS: CleanupTools = systemTools(defaultIptablesTools);

/** The binaries of one iptables mode, so cleanup removes rules from the same backend the agent wrote them with. */
export function modeTools(mode: IptablesMode): CleanupTools {
  return systemTools((family) => iptablesCommands(mode, family));
}

const TOOL: Record<IPFamily, string> = { IPv4: 'iptables-restore', IPv6: 'ip6tables-restore' };

/**
 * `switchboard cleanup`: removes Switchboard's chains and jumps, IPv4 then IPv6, one atomic restore per family.
 * IPv6 is best effort as in kube-proxy: if ip6tables-save cannot run (no tool, no kernel support) it is skipped.
 * Both families are attempted even if one fails. Returns 0 when done (or nothing to do), 1 when a tool failed.
 */
export async function runCleanup(io: CleanupIo, opts: CleanupOptions = {}, tools: CleanupTools = SYSTEM_TOOLS): Promise<number> {
  const dryRun = opts.dryRun === true;
  const summary: string[] = [];
  let failed = false;
  for (const family of ['IPv4', 'IPv6'] as const) {
    let plan: CleanupPlan;
    try {
      plan = planCleanupDetailed(await tools.save(family));
    } catch (e) {
      if (!(e instanceof ToolError)) throw e;
      if (family === 'IPv6') {
        summary.push(`IPv6: skipped (${e.message}${e.stderr ? `: ${firstLine(e.stderr)}` : ''})`);
        continue;
      }
      reportFailure(io, e);
      summary.push(`${family}: failed (see above)`);
      failed = true;
      continue;
    }
    if (plan.payload === '') {
      summary.push(`${family}: nothing to remove`);
      continue;
    }
    if (dryRun) {
      io.stdout(`# ${family}: ${TOOL[family]} --noflush\n${plan.payload}`);
      summary.push(`${family}: would remove ${describeCleanup(plan)}`);
      continue;
    }
    try {
      await tools.restore(plan.payload, family);
      summary.push(`${family}: removed ${describeCleanup(plan)}`);
    } catch (e) {
      if (!(e instanceof ToolError)) throw e;
      reportFailure(io, e);
      // Each table's COMMIT is atomic; a re-run removes whatever an earlier table left.
      summary.push(`${family}: failed (see above)`);
      failed = true;
    }
  }
  // IPVS mode's virtual servers and device, and nftables mode's table: after the rules, before the sets.
  for (const [name, step] of [
    ['ipvs', tools.cleanupIpvs],
    ['nftables', tools.cleanupNftables],
  ] as const) {
    try {
      const done = await step(dryRun);
      if (done.printed !== '') io.stdout(done.printed);
      summary.push(done.summary);
    } catch (e) {
      if (!(e instanceof ToolError)) throw e;
      reportFailure(io, e);
      summary.push(`${name}: failed (see above)`);
      failed = true;
    }
  }
  // The sets (the flat layout's and IPVS mode's) go last: the rules naming them are gone by now.
  try {
    const sets = await tools.listSets();
    const ours = (sets ?? []).filter((name) => OUR_SETS.includes(name));
    if (ours.length === 0) summary.push('ipsets: nothing to remove');
    else if (dryRun) {
      io.stdout(ours.map((name) => `# ipset destroy ${name}\n`).join(''));
      summary.push(`ipsets: would destroy ${ours.join(', ')}`);
    } else {
      for (const name of ours) await tools.destroySet(name);
      summary.push(`ipsets: destroyed ${ours.join(', ')}`);
    }
  } catch (e) {
    if (!(e instanceof ToolError)) throw e;
    // Typically "in use by a kernel component": another agent's rule still names the set.
    reportFailure(io, e);
    summary.push('ipsets: failed (see above)');
    failed = true;
  }
  io.stderr(`cleanup${dryRun ? ' (dry run)' : ''}: ${summary.join('; ')}\n`);
  return failed ? 1 : 0;
}

const OUR_SETS: readonly string[] = [KUBE_LOOP_BACK, KUBE_LOOP_BACK_NEXT, KUBE_CLUSTER_IP, KUBE_IPVS_IPS];

function reportFailure(io: CleanupIo, e: ToolError): void {
  io.stderr(toolFailureText(e));
}

const firstLine = (text: string): string => text.split('\n', 1)[0] ?? '';
