// Appliers: what happens to a plan's steps. The kernel applier runs them; the print applier is the dry run
// (`compile`, `run --dry-run`, `cleanup --dry-run`); tests apply them to fakes. Committing or aborting the plan,
// counting the bytes and marking a failure after earlier changes as partial happen here, once.
import type { Plan, PlanStats, ProxyBackend } from '../backends/backend.js';
import { ToolError, batches } from '../kernel/exec.js';
import { type Step, runStep, stepAtomic, stepInput } from '../kernel/tool.js';

export interface Applier {
  /** Applies the steps in order and resolves with the bytes of input they took; throws ToolError. */
  apply(steps: readonly Step[]): Promise<number>;
}

/** What one sync did, for logs and metrics. */
export interface SyncOutcome extends PlanStats {
  readonly kind: 'full' | 'partial' | 'none';
  readonly bytes: number;
}

export const NOTHING_DONE: SyncOutcome = { kind: 'none', bytes: 0, ruleTotals: {}, rulesWritten: {}, deleted: 0 };

/** Applies a plan and commits it, or aborts it and rethrows; undefined (nothing to do) is a no-op. */
export async function applyPlan(plan: Plan | undefined, applier: Applier): Promise<SyncOutcome> {
  if (plan === undefined) return NOTHING_DONE;
  let bytes: number;
  try {
    bytes = await applier.apply(plan.steps);
  } catch (e) {
    plan.abort();
    throw e;
  }
  plan.commit();
  return { kind: plan.kind, bytes, ...plan.stats };
}

/** One sync: the backend plans (reading the kernel unless `readKernel` is false), the applier applies. */
export async function syncBackend(backend: ProxyBackend, full: boolean, target: { readonly applier: Applier; readonly readKernel: boolean }): Promise<SyncOutcome> {
  return applyPlan(await backend.plan(full, { readKernel: target.readKernel }), target.applier);
}

/** Runs each step's tool, streaming its input. */
export class KernelApplier implements Applier {
  async apply(steps: readonly Step[]): Promise<number> {
    let bytes = 0;
    let changed = false;
    for (const step of steps) {
      const { chunks, count } = counted(stepInput(step));
      try {
        await runStep(step, chunks);
      } catch (e) {
        // Earlier steps took effect, or this one is not all-or-nothing: the kernel is not as it was.
        if (e instanceof ToolError && e.code !== 'PARTIALLY_APPLIED' && (changed || !stepAtomic(step))) throw e.partiallyApplied();
        throw e;
      }
      const n = count();
      bytes += n;
      if (n > 0 || step.kind === 'command') changed = true;
    }
    return bytes;
  }
}

/**
 * How a printed plan looks:
 * - `sections`: every step as a `#### <label>` line followed by its input verbatim (IPVS mode's sync, cleanup);
 * - `pipeable`: when the last step's tool reads `#` comments (iptables-restore, nft), the output stays valid
 *   input for it: that tool's steps verbatim, any other step's input commented out under
 *   `# <label>, before <tool>:` (the flat layout's ipset input). Otherwise as `sections`.
 */
export type PrintFormat = 'sections' | 'pipeable';

/** The dry run: steps rendered as text and handed to `print` in pieces (a full sync is never joined into one string). */
export class PrintApplier implements Applier {
  /** `heading`: put before each section's label (`IPv6: `), where one output holds several families' plans. */
  constructor(
    private readonly print: (text: string) => void,
    private readonly format: PrintFormat,
    private readonly heading = '',
  ) {}

  async apply(steps: readonly Step[]): Promise<number> {
    let bytes = 0;
    const last = steps.at(-1)?.tool;
    const pipe = this.format === 'pipeable' && last !== undefined && last.comments ? last : undefined;
    for (const step of steps) {
      const { chunks, count } = counted(stepInput(step));
      // Regrouped into 64 kB pieces: a 30 MB full sync is a few hundred writes, not a million.
      if (pipe === undefined) {
        this.print(`#### ${this.heading}${step.tool.label}\n`);
        for (const text of batches(chunks)) this.print(text);
      } else if (step.tool.name === pipe.name) {
        for (const text of batches(chunks)) this.print(text);
      } else {
        this.print(`# ${step.tool.label}, before ${pipe.name}:\n`);
        // Every piece starts at a line start (steps yield whole lines), so each can be commented on its own.
        for (const text of batches(chunks)) this.print(text.replace(/^(?=.)/gm, '# '));
      }
      bytes += count();
    }
    return bytes;
  }
}

/** `chunks` counted as they stream; iterating again counts again (an error report renders a second time). */
function counted(chunks: Iterable<string>): { readonly chunks: Iterable<string>; count(): number } {
  let bytes = 0;
  return {
    chunks: {
      *[Symbol.iterator]() {
        bytes = 0;
        for (const c of chunks) {
          bytes += c.length;
          yield c;
        }
      },
    },
    count: () => bytes,
  };
}
