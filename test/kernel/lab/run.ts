import { execa } from 'execa';

/** The subset of execa's result the lab hands out; keeps callers independent of execa's generics. */
export interface ExecResult {
  command: string;
  stdout: string;
  stderr: string;
  exitCode: number | undefined;
  failed: boolean;
  timedOut: boolean;
}

export interface RunOptions {
  input?: string;
  /** Throw on non-zero exit (default true). */
  reject?: boolean;
  /** Milliseconds before the command is killed (default 30 s so a wedged tool can't hang a suite). */
  timeout?: number;
}

/** Runs a command to completion with string stdout/stderr. */
export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const r = await execa(file, args, {
    reject: opts.reject ?? true,
    timeout: opts.timeout ?? 30_000,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
    stripFinalNewline: true,
  });
  return {
    command: r.command,
    stdout: r.stdout,
    stderr: r.stderr,
    exitCode: r.exitCode,
    failed: r.failed,
    timedOut: r.timedOut,
  };
}

/** Runs a command inside a network namespace via `ip netns exec`. */
export function runIn(ns: string, file: string, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  return run('ip', ['netns', 'exec', ns, file, ...args], opts);
}
