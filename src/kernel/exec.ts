// The one place that runs programs. Every kernel tool (iptables-save/-restore, ipset, nft, ipvsadm, ip,
// conntrack) is started here, and every way it can fail becomes one ToolError with a stable code.
import { Readable } from 'node:stream';

/**
 * Why a tool run failed, for callers that branch on it:
 * - TOOL_MISSING: the program is not installed (the message names the Debian package);
 * - TOOL_TIMEOUT: it ran longer than its timeout and was killed;
 * - TOOL_REFUSED: it ran and refused its input or request (non-zero exit, or errors on stderr where the exit
 *   status cannot be trusted);
 * - TOOL_FAILED: it could not be started or was killed, or a /proc/sys write failed;
 * - PARTIALLY_APPLIED: a multi-step or non-atomic apply failed after changing part of the kernel;
 * - UNREADABLE_OUTPUT: it answered, but in a form we cannot read (a reconcile must not act on it).
 */
export type ToolErrorCode = 'TOOL_MISSING' | 'TOOL_TIMEOUT' | 'TOOL_REFUSED' | 'TOOL_FAILED' | 'PARTIALLY_APPLIED' | 'UNREADABLE_OUTPUT';

export interface ToolErrorInit {
  readonly code: ToolErrorCode;
  /** What failed, as the operator reads it: `iptables-restore`, `nft -f`, `ip link add kube-ipvs0 type dummy`. */
  readonly what: string;
  /** Why, in a few words: `exit code 1`, `timed out after 600 s`, `command not found (install the ipset package)`. */
  readonly reason: string;
  /** The command line that ran (file and arguments). */
  readonly command: string;
  /** The tool's short name (`iptables-restore`, `nft`), whichever binary of it ran; default: the file. */
  readonly tool?: string;
  readonly exitCode?: number | undefined;
  /** The tool's stderr, trimmed. */
  readonly stderr?: string;
  /** Input lines the tool pointed at (`N: text`), or lines that did not take effect. */
  readonly offendingLines?: readonly string[];
  readonly cause?: unknown;
}

/** A kernel tool that failed: what ran, how it failed, what it said and which input lines it pointed at. */
export class ToolError extends Error {
  override readonly name = 'ToolError';
  readonly code: ToolErrorCode;
  readonly what: string;
  readonly reason: string;
  readonly command: string;
  readonly tool: string;
  readonly exitCode: number | undefined;
  readonly stderr: string;
  readonly offendingLines: readonly string[];

  constructor(init: ToolErrorInit) {
    super(`${init.what} failed: ${init.reason}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.what = init.what;
    this.reason = init.reason;
    this.command = init.command;
    this.tool = init.tool ?? init.command.split(' ', 1)[0] ?? '';
    this.exitCode = init.exitCode;
    this.stderr = init.stderr ?? '';
    this.offendingLines = init.offendingLines ?? [];
  }

  /** The same failure, with these lines named (a reconcile found which ones did not take effect). */
  withOffendingLines(lines: readonly string[]): ToolError {
    return new ToolError({ ...this.init(), offendingLines: lines, cause: this.cause ?? this });
  }

  /** The same failure, after earlier steps of the same apply had already changed the kernel. */
  partiallyApplied(): ToolError {
    return new ToolError({ ...this.init(), code: 'PARTIALLY_APPLIED', cause: this });
  }

  private init(): ToolErrorInit {
    const { code, what, reason, command, tool, exitCode, stderr, offendingLines } = this;
    return { code, what, reason, command, tool, exitCode, stderr, offendingLines };
  }
}

/** One program run. */
export interface ToolCall {
  readonly file: string;
  readonly args: readonly string[];
  /** The Debian package that provides `file`, named when it is missing. */
  readonly pkg: string;
  readonly timeoutMs: number;
  /** How the error message names the run; default `file` and its arguments. */
  readonly what?: string;
  /** The tool's short name, when `file` is one of its binaries (`iptables-nft-restore` is `iptables-restore`). */
  readonly tool?: string;
  /** stdin: a string, or pieces streamed in 64 kB batches without being joined (a full sync is 30 MB). */
  readonly input?: string | Iterable<string>;
  /** The input lines the tool's stderr points at, for the error. */
  readonly offendingLines?: (input: string, stderr: string) => string[];
  /** Exit codes that are not failures (default: 0 only); `any` returns every exit code to the caller. */
  readonly okExitCodes?: readonly number[] | 'any';
  /** Discard stdout (conntrack -D echoes every deleted flow). */
  readonly ignoreStdout?: boolean;
  /** Save and list outputs can be tens of MB at 10,000 Services. */
  readonly maxBuffer?: number;
}

export interface ToolResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

const DEFAULT_MAX_BUFFER = 1024 * 1024 * 1024;

/** Runs a tool to completion; throws ToolError unless it exits with an accepted code. */
export async function runTool(call: ToolCall): Promise<ToolResult> {
  const command = [call.file, ...call.args].join(' ');
  const what = call.what ?? command;
  const tool = call.tool ?? call.file;
  try {
    // Loaded on first use: execa is a hundred modules (0.15-0.2 s at start), and `compile` without --apply
    // never runs a tool.
    const { execa } = await import('execa');
    const r = await execa(call.file, call.args, {
      timeout: call.timeoutMs,
      maxBuffer: call.maxBuffer ?? DEFAULT_MAX_BUFFER,
      reject: false,
      ...(call.input === undefined ? { stdin: 'ignore' as const } : { input: streamed(call.input) }),
      stdout: call.ignoreStdout === true ? 'ignore' : 'pipe',
    });
    const stderr = String(r.stderr ?? '').trim();
    const stdout = typeof r.stdout === 'string' ? r.stdout : '';
    if (!r.failed) return { exitCode: 0, stdout, stderr };
    // No exit code: the program never ran, timed out or was killed.
    if (r.exitCode === undefined) throw new ToolError({ code: startFailure(r), what, reason: whyNotRun(r, call.pkg, call.timeoutMs), command, tool, stderr, cause: r });
    const ok = call.okExitCodes ?? [0];
    if (ok === 'any' || ok.includes(r.exitCode)) return { exitCode: r.exitCode, stdout, stderr };
    const text = call.input === undefined ? '' : typeof call.input === 'string' ? call.input : [...call.input].join('');
    throw new ToolError({
      code: 'TOOL_REFUSED',
      what,
      reason: `exit code ${r.exitCode}`,
      command,
      tool,
      exitCode: r.exitCode,
      stderr,
      offendingLines: call.offendingLines?.(text, stderr) ?? [],
      cause: r,
    });
  } catch (e) {
    if (e instanceof ToolError) throw e;
    throw new ToolError({ code: 'TOOL_FAILED', what, reason: e instanceof Error ? e.message : String(e), command, tool, cause: e });
  }
}

/**
 * Runs a query whose exit code 1 means "not there" (a chain, a table, a device), as kube-proxy's ChainExists
 * reads iptables: true on 0, false on 1. A tool that cannot run, or fails otherwise, throws: a missing binary
 * is never mistaken for a missing object.
 */
export async function probeTool(call: ToolCall): Promise<ToolResult | undefined> {
  const r = await runTool({ ...call, okExitCodes: [0, 1] });
  return r.exitCode === 0 ? r : undefined;
}

interface NotRun {
  readonly code?: string | undefined;
  readonly timedOut?: boolean | undefined;
  readonly shortMessage?: string | undefined;
}

function startFailure(r: NotRun): ToolErrorCode {
  if (r.code === 'ENOENT') return 'TOOL_MISSING';
  return r.timedOut === true ? 'TOOL_TIMEOUT' : 'TOOL_FAILED';
}

function whyNotRun(r: NotRun, pkg: string, timeoutMs: number): string {
  if (r.code === 'ENOENT') return `command not found (install the ${pkg} package)`;
  if (r.timedOut === true) return `timed out after ${timeoutMs / 1000} s`;
  return r.shortMessage ?? 'failed';
}

/** A tool's stdin: a string as it is, pieces regrouped into batches and streamed without being joined. */
function streamed(input: string | Iterable<string>): string | Readable {
  return typeof input === 'string' ? input : Readable.from(batches(input), { objectMode: false });
}

/**
 * The pieces regrouped into strings of about `size` characters: few writes, and never the whole text at once.
 * 64 kB keeps each batch (and the Buffer the pipe makes of it) out of V8's large-object space.
 */
export function* batches(chunks: Iterable<string>, size = 1 << 16): Generator<string> {
  let group: string[] = [];
  let length = 0;
  for (const c of chunks) {
    group.push(c);
    length += c.length;
    if (length >= size) {
      yield group.join('');
      group = [];
      length = 0;
    }
  }
  if (group.length > 0) yield group.join('');
}

/** The input lines `numbers` names (1-based), each as `N: text`. */
export function linesAt(input: string, numbers: Iterable<number>): string[] {
  const lines = input.split('\n');
  return [...new Set(numbers)].sort((a, b) => a - b).map((n) => `${n}: ${lines[n - 1] ?? ''}`);
}
