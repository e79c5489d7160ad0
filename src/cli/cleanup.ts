import type { BackendCleanup, CleanupStage } from '../backends/backend.js';
import { iptablesCleanup } from '../backends/iptables/cleanup.js';
import { IPVS_CLEANUP } from '../backends/ipvs/cleanup.js';
import { NFTABLES_CLEANUP } from '../backends/nftables/cleanup.js';
import { ipsetCleanup } from '../backends/shared/ipset-cleanup.js';
import { ToolError } from '../kernel/exec.js';
import { defaultIptablesTools, iptablesCommands } from '../kernel/iptables.js';
import type { IptablesMode } from '../kernel/iptables-mode.js';
import { type Applier, KernelApplier, PrintApplier } from '../sync/applier.js';
import { toolFailureText } from './report.js';

export interface CleanupIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface CleanupOptions {
  /** Print the removal steps instead of applying them (the machine is still read). */
  readonly dryRun?: boolean;
}

/** What cleanup does: its stages in order, and where their steps go. Replaceable, so the command is testable without root. */
export interface CleanupRun {
  readonly stages: readonly CleanupStage[];
  readonly applier: Applier;
}

/**
 * Every backend's cleanup: iptables rules (IPv4, then IPv6), IPVS mode's virtual servers and device, nftables
 * mode's tables, then the ipsets any of them made. `mode` picks the iptables binaries the agent wrote with.
 */
export function systemCleanup(mode: IptablesMode | undefined): CleanupRun {
  const backends: readonly BackendCleanup[] = [
    iptablesCleanup((family) => (mode === undefined ? defaultIptablesTools(family) : iptablesCommands(mode, family))),
    IPVS_CLEANUP,
    NFTABLES_CLEANUP,
  ];
  return { stages: [...backends.flatMap((b) => b.stages), ipsetCleanup(backends.flatMap((b) => b.sets))], applier: new KernelApplier() };
}

/**
 * `switchboard cleanup`: runs every stage, even after one fails, and prints a one-line summary. Returns 0 when
 * done (or nothing to do), 1 when a tool failed.
 */
export async function runCleanup(io: CleanupIo, opts: CleanupOptions = {}, run: CleanupRun = systemCleanup(undefined)): Promise<number> {
  const dryRun = opts.dryRun === true;
  const printer = new PrintApplier((text) => io.stdout(text), 'sections');
  const summary: string[] = [];
  let failed = false;
  for (const stage of run.stages) {
    try {
      const plan = await stage.plan().catch((e: unknown) => {
        // A best-effort stage that cannot even read the machine has nothing of ours to remove.
        if (stage.bestEffort && e instanceof ToolError) return { skipped: e };
        throw e;
      });
      if ('skipped' in plan) {
        const e = plan.skipped;
        summary.push(`${stage.name}: skipped (${e.message}${e.stderr ? `: ${firstLine(e.stderr)}` : ''})`);
      } else if (dryRun) {
        await printer.apply(plan.steps);
        summary.push(`${stage.name}: ${plan.wouldDo}`);
      } else {
        await run.applier.apply(plan.steps);
        summary.push(`${stage.name}: ${plan.done}`);
      }
    } catch (e) {
      if (!(e instanceof ToolError)) throw e;
      io.stderr(toolFailureText(e));
      summary.push(`${stage.name}: failed (see above)`);
      failed = true;
    }
  }
  io.stderr(`cleanup${dryRun ? ' (dry run)' : ''}: ${summary.join('; ')}\n`);
  return failed ? 1 : 0;
}

const firstLine = (text: string): string => text.split('\n', 1)[0] ?? '';
