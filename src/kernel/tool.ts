// Plan steps: what a backend asks the kernel to do, as data. An applier runs them (sync/applier.ts), prints
// them (dry run) or applies them to fakes (tests); the backend never runs a tool to apply its own plan.
import { type ToolCall, ToolError, runTool } from './exec.js';
import { type NftTransaction, renderTransaction } from './syntax/nft.js';

/** A kernel tool as plan steps name it. */
export interface Tool {
  /** The tool's short name: `iptables-restore`, `ip6tables-restore`, `ipset`, `nft`, `ipvsadm`, `ip`. */
  readonly name: string;
  /** How a printed plan heads its section: `iptables-restore --noflush`, `ip link add kube-ipvs0 type dummy`. */
  readonly label: string;
  readonly file: string;
  readonly args: readonly string[];
  /** The Debian package that provides it. */
  readonly pkg: string;
  readonly timeoutMs: number;
  /** How errors name the run (default: the label). */
  readonly what?: string;
  /** The input lines its stderr points at. */
  readonly offendingLines?: (input: string, stderr: string) => string[];
  /** `#` starts a comment in its input, so a printed plan can stay valid input for it (iptables-restore, nft). */
  readonly comments: boolean;
  /** Its exit status cannot be trusted (ipvsadm -R reports only the last line's): stderr output at all means failure. */
  readonly stderrFails: boolean;
  /** stderr that means "already done" (ip link add of an existing device): success. */
  readonly alreadyDone?: RegExp;
}

export function defineTool(t: Omit<Tool, 'comments' | 'stderrFails'> & Partial<Pick<Tool, 'comments' | 'stderrFails'>>): Tool {
  return { comments: t.name.endsWith('tables-restore') || t.name === 'nft', stderrFails: false, ...t };
}

/** One step of a plan. Steps run in order; each failing step stops the plan. */
export type Step =
  /** The tool reads `input` on stdin; an empty input runs nothing (and still prints, as an empty section). */
  | { readonly kind: 'input'; readonly tool: Tool; readonly input: Iterable<string>; readonly atomic: boolean; readonly explain?: Explain }
  /** One `nft -f -` transaction as typed operations, rendered while it streams (all or nothing). */
  | { readonly kind: 'nft'; readonly tool: Tool; readonly transaction: NftTransaction }
  /** A command without input (its label is the whole command). */
  | { readonly kind: 'command'; readonly tool: Tool };

/** Turns a refused step's error into a better one (IPVS reads the table back to name the lines not applied). */
export type Explain = (e: ToolError) => Promise<ToolError>;

/** What a step sends on stdin, as text pieces (rendered lazily; iterate again to render again). */
export function stepInput(step: Step): Iterable<string> {
  switch (step.kind) {
    case 'input':
      return step.input;
    case 'nft':
      return { [Symbol.iterator]: () => renderTransaction(step.transaction) };
    case 'command':
      return [];
  }
}

/** Whether the step, once it fails, has left the kernel as it was. */
export function stepAtomic(step: Step): boolean {
  return step.kind !== 'input' || step.atomic;
}

/**
 * Runs one step against the kernel, streaming its input. `input` is the step's input (counted by the caller as
 * it streams). An input step with no input runs nothing.
 */
export async function runStep(step: Step, input: Iterable<string>): Promise<void> {
  const { tool } = step;
  if (step.kind === 'input' && isEmpty(step.input)) return;
  const call: ToolCall = {
    file: tool.file,
    args: tool.args,
    pkg: tool.pkg,
    timeoutMs: tool.timeoutMs,
    what: tool.what ?? tool.label,
    tool: tool.name,
    ...(step.kind === 'command' ? {} : { input }),
    ...(tool.offendingLines === undefined ? {} : { offendingLines: tool.offendingLines }),
  };
  let stderr: string;
  try {
    ({ stderr } = await runTool(call));
  } catch (e) {
    if (e instanceof ToolError && tool.alreadyDone?.test(e.stderr) === true) return;
    if (e instanceof ToolError && step.kind === 'input' && step.explain !== undefined) throw await step.explain(e);
    throw e;
  }
  if (tool.stderrFails && stderr !== '') {
    const e = new ToolError({ code: 'PARTIALLY_APPLIED', what: call.what ?? tool.label, reason: 'errors on stderr', command: [tool.file, ...tool.args].join(' '), tool: tool.name, stderr });
    throw step.kind === 'input' && step.explain !== undefined ? await step.explain(e) : e;
  }
}

function isEmpty(input: Iterable<string>): boolean {
  if (typeof input === 'string') return input === '';
  if (Array.isArray(input)) return input.every((s: string) => s === '');
  return false;
}
