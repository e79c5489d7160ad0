import { ToolError } from '../kernel/exec.js';
import { KernelApplier, PrintApplier, syncBackend } from '../sync/applier.js';
import { createBackends } from './backend-factory.js';
import { type ProxyConfig, nodeIPList } from './config.js';
import { ALL_FAMILIES, type IPFamily, mergeNodeIPs } from '../model/ip.js';
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
  const givenIPs = nodeIPList(req.config);
  if (givenIPs.length > 0) loaded.state.setNodeIPs(mergeNodeIPs(givenIPs, loaded.state.node.ips));
  const families = compileFamilies(req.config, loaded);

  // The agent's own backends: printing shows their dry-run full sync, applying leaves the namespace as their full sync would.
  const { backends, skipped } = await createBackends(req.config, families, { dryRun: !req.apply });
  for (const { family, why } of skipped) io.stderr(`warning: ${family} not programmed: ${why}\n`);
  if (backends.length === 0) {
    io.stderr('error: no IP family can be programmed in this network namespace\n');
    return 1;
  }
  const changed = loaded.state.takeChanges();
  for (const { backend } of backends) backend.update(loaded.state, changed);
  const several = backends.length > 1;
  if (!req.apply) {
    for (const { family, backend } of backends) {
      // One family's output stays pipeable into its tool; several are labelled sections.
      const printer = several ? new PrintApplier(io.stdout, 'sections', `${family}: `) : new PrintApplier(io.stdout, 'pipeable');
      await syncBackend(backend, true, { applier: printer, readKernel: false });
    }
    for (const e of errors) io.stderr(`error: ${e}\n`);
    return errors.length > 0 ? 2 : 0;
  }
  if (errors.length > 0) {
    for (const e of errors) io.stderr(`error: ${e}\n`);
    io.stderr(`error: nothing applied: fix the ${errors.length} error(s) above first\n`);
    return 2;
  }
  for (const { family, backend } of backends) {
    const what = several ? `${backend.name}, ${family}` : backend.name;
    try {
      const outcome = await syncBackend(backend, true, { applier: new KernelApplier(), readKernel: true });
      if (outcome.kind === 'none') {
        io.stderr(`applied full sync (${what}): ${backend.serviceCount} services, nothing to change\n`);
        continue;
      }
      // Rule totals per table where the backend counts them (iptables, IPVS's iptables part); nftables has none.
      const rules = Object.entries(outcome.ruleTotals).map(([table, n]) => `${n} ${table} rules, `).join('');
      io.stderr(`applied full sync (${what}): ${backend.serviceCount} services, ${rules}${outcome.deleted} stale chains deleted, ${outcome.bytes} bytes\n`);
    } catch (e) {
      if (!(e instanceof ToolError)) throw e;
      io.stderr(toolFailureText(e));
      return 1;
    }
  }
  return 0;
}

/**
 * The families compile programs: those --node-ip or --cluster-cidr name and those the input's Services have
 * ClusterIPs in; IPv4 when none is named. (The agent programs every family the node supports; for an IPv4-only
 * input the difference is an empty IPv6 skeleton.)
 */
export function compileFamilies(config: ProxyConfig, loaded: LoadedState): IPFamily[] {
  const named = new Set<IPFamily>();
  for (const f of ALL_FAMILIES) {
    if (config.nodeIPs[f] !== undefined || config.clusterCidrs[f] !== undefined) named.add(f);
  }
  for (const service of loaded.state.allServices()) {
    for (const f of ALL_FAMILIES) if (service.clusterIPs[f] !== undefined) named.add(f);
    if (named.size === ALL_FAMILIES.length) break;
  }
  if (named.size === 0) named.add('IPv4');
  return ALL_FAMILIES.filter((f) => named.has(f));
}

/** Parsed API objects die with this frame, before the ruleset (tens of MB at scale) is assembled. */
async function loadInput(files: readonly string[], nodeName: string, io: Io): Promise<{ loaded: LoadedState; errors: string[] }> {
  const parsed = await readManifests(files, io.stdin);
  const loaded = loadObjects(parsed.objects, nodeName);
  return { loaded, errors: [...parsed.errors.map((e) => `${e.source}: ${e.message}`), ...loaded.errors] };
}
