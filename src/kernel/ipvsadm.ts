// ipvsadm: the IPVS table saved, listed with counters, and restored.
import { runTool } from './exec.js';
import { type Tool, defineTool } from './tool.js';

const PKG = 'ipvsadm';

/** `ipvsadm -S -n`: the table in restore syntax (without -n, every address would be looked up in DNS). */
export async function saveIpvs(): Promise<string> {
  return (await runTool({ file: 'ipvsadm', args: ['-S', '-n'], pkg: PKG, timeoutMs: 120_000 })).stdout;
}

/** `ipvsadm -L -n [service]`: the table with connection counters, all of it or one virtual server (`-t 10.96.0.10:80`). */
export async function listIpvs(service: readonly string[] = []): Promise<string> {
  return (await runTool({ file: 'ipvsadm', args: ['-L', '-n', ...service], pkg: PKG, timeoutMs: 120_000 })).stdout;
}

/**
 * `ipvsadm -R`. It is neither atomic nor idempotent, and its exit status is that of the last line only, so any
 * complaint on stderr counts as a failure (the caller then reconciles against the kernel).
 */
export const IPVSADM_RESTORE: Tool = defineTool({
  name: 'ipvsadm',
  label: 'ipvsadm -R',
  file: 'ipvsadm',
  args: ['-R'],
  pkg: PKG,
  timeoutMs: 120_000,
  stderrFails: true,
});
