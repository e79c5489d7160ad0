// conntrack (conntrack-tools): listing and deleting flows.
import { runTool } from './exec.js';

export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs conntrack to completion. Resolves with any exit code (exit 1 with "0 flow entries" is how a delete that
 * found nothing shows); throws ToolError only if it could not run at all (missing, timed out, killed).
 * `captureStdout: false` discards stdout: `conntrack -D` echoes every deleted flow there.
 */
export type ConntrackRunner = (args: readonly string[], opts: { readonly captureStdout: boolean }) => Promise<RunResult>;

export const runConntrack: ConntrackRunner = (args, opts) =>
  runTool({
    file: 'conntrack',
    args,
    pkg: 'conntrack',
    okExitCodes: 'any',
    ignoreStdout: !opts.captureStdout,
    // A full table listing is about 150 bytes per flow; a million flows must still fit.
    maxBuffer: 1024 * 1024 * 1024,
    timeoutMs: 120_000,
  });
