import { ToolError } from '../kernel/exec.js';
import { KernelApplier, PrintApplier, syncBackend } from '../sync/applier.js';
import { createBackend } from './backend-factory.js';
import type { ProxyConfig } from './config.js';
import { UsageError } from './errors.js';
import { toolFailureText } from './report.js';
import { readManifests } from '../sources/read-manifests.js';
import { type LoadedState, loadObjects } from '../sources/objects.js';

export interface CompileRequest {
  readonly config: ProxyConfig;
  readonly files: readonly string[];
  readonly apply: boolean;
}

export interface Io {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly stdin: () => Promise<string>;
}

/**
 * `switchboard compile`: the full sync the agent would run for these objects, printed or (--apply) applied
 * to the current network namespace. Returns the exit code: 0 ok, 2 bad input (nothing applied), 1 apply failed.
 */
export async function runCompile(req: CompileRequest, io: Io): Promise<number> {
  if (req.files.length === 0) throw new UsageError('compile: at least one -f FILE is required (- for stdin)');
  const { loaded, errors } = await loadInput(req.files, req.config.nodeName, io);
  // --node-ip wins over the Node object's addresses, as kube-proxy's --node-ip / --bind-address does.
  if (req.config.nodeIP !== undefined) loaded.state.setNodeIPs([req.config.nodeIP]);

  // The agent's own backend: printing shows its dry-run full sync, applying leaves the namespace as its full sync would.
  const { backend } = await createBackend(req.config, { dryRun: !req.apply });
  backend.update(loaded.state, loaded.state.takeChanges());
  if (!req.apply) {
    await syncBackend(backend, true, { applier: new PrintApplier(io.stdout, 'pipeable'), readKernel: false });
    for (const e of errors) io.stderr(`error: ${e}\n`);
    return errors.length > 0 ? 2 : 0;
  }
  if (errors.length > 0) {
    for (const e of errors) io.stderr(`error: ${e}\n`);
    io.stderr(`error: nothing applied: fix the ${errors.length} error(s) above first\n`);
    return 2;
  }
  try {
    const outcome = await syncBackend(backend, true, { applier: new KernelApplier(), readKernel: true });
    if (outcome.kind === 'none') {
      io.stderr(`applied full sync (${backend.name}): ${backend.serviceCount} services, nothing to change\n`);
      return 0;
    }
    // Rule totals per table where the backend counts them (iptables, IPVS's iptables part); nftables has none.
    const rules = Object.entries(outcome.ruleTotals).map(([table, n]) => `${n} ${table} rules, `).join('');
    io.stderr(
      `applied full sync (${backend.name}): ${backend.serviceCount} services, ${rules}` +
        `${outcome.deleted} stale chains deleted, ${outcome.bytes} bytes\n`,
    );
    return 0;
  } catch (e) {
    if (!(e instanceof ToolError)) throw e;
    io.stderr(toolFailureText(e));
    return 1;
  }
}

/** Parsed API objects die with this frame, before the ruleset (tens of MB at scale) is assembled. */
async function loadInput(files: readonly string[], nodeName: string, io: Io): Promise<{ loaded: LoadedState; errors: string[] }> {
  const parsed = await readManifests(files, io.stdin);
  const loaded = loadObjects(parsed.objects, nodeName);
  return { loaded, errors: [...parsed.errors.map((e) => `${e.source}: ${e.message}`), ...loaded.errors] };
}
