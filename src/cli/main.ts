#!/usr/bin/env node
import { fstatSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { Command, CommanderError, Option } from '@commander-js/extra-typings';
import { IPTABLES_LAYOUTS } from '../backends/iptables/options.js';
import { DEFAULT_IPVS_SCHEDULER, IPVS_SCHEDULERS } from '../backends/ipvs/options.js';
import { BACKENDS } from '../backends/backend.js';
import { buildProxyConfig, iptablesModeOverride } from './config.js';
import { UsageError } from './errors.js';
import { LOG_LEVELS } from '../log/levels.js';
import { runCompile } from './compile.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

// A reader that stops early (`compile ... | head`) is not an error: stop writing and exit quietly, as Unix tools do.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
});

/**
 * Standard output. A file or /dev/null is written with fs.writeSync: process.stdout would first copy each
 * string into a new Buffer (for a 31 MB compile output, 0.1 s and as much garbage), where writeSync encodes it
 * straight into the write. Like process.stdout on a file, the write is synchronous. Pipes and terminals keep
 * process.stdout: it makes a pipe non-blocking, where a direct write could fail with EAGAIN.
 */
function stdoutWriter(): (text: string) => void {
  let direct = false;
  try {
    const st = fstatSync(1);
    direct = st.isFile() || (st.isCharacterDevice() && !isatty(1));
  } catch {
    // No usable fd 1: let process.stdout report it.
  }
  return direct ? (text) => void writeSync(1, text) : (text) => void process.stdout.write(text);
}

const io = {
  stdout: stdoutWriter(),
  stderr: (text: string) => void process.stderr.write(text),
  stdin: readStdin,
};

const collect = (value: string, previous: string[]): string[] => [...previous, value];

// One definition per option the commands share: they must agree on them.
const backendOption = () => new Option('--backend <backend>', 'kernel backend').choices(BACKENDS).default('iptables' as const);
const nodeNameOption = () => new Option('--node-name <name>', "this node's name (default: $NODE_NAME, else the hostname)");
const nodeIpOption = () => new Option('--node-ip <ips>', "this node's IP per family, comma separated, the primary family's first");
const outputOption = () => new Option('-o, --output <format>', 'output format').choices(['text', 'json'] as const).default('text' as const);
const clusterCidrOption = () =>
  new Option('--cluster-cidr <cidrs>', 'pod CIDR(s), comma separated, at most one per family: traffic from outside is masqueraded');
const masqueradeAllOption = () => new Option('--masquerade-all', 'masquerade all traffic to Service IPs').default(false);

const iptablesLayoutOption = () =>
  new Option('--iptables-layout <layout>', "iptables rules: kube-proxy's chains, or flat (DNAT in the Service chain; needs ipset)")
    .choices(IPTABLES_LAYOUTS)
    .default('kube-proxy' as const);

const nodePortAddressesOption = () =>
  new Option(
    '--nodeport-addresses <cidrs>',
    "where NodePorts answer: 'primary' or CIDRs (comma separated; default: every local address, the primary node IP for nftables)",
  );
const localhostNodePortsOption = () =>
  new Option('--iptables-localhost-nodeports <bool>', 'iptables backend: NodePorts answer on 127.0.0.1 too (as kube-proxy, sets route_localnet)').default('true');

const ipvsSchedulerOption = () =>
  new Option('--ipvs-scheduler <scheduler>', 'IPVS scheduler of every virtual server (--backend ipvs)').choices(IPVS_SCHEDULERS).default(DEFAULT_IPVS_SCHEDULER);

const program = new Command()
  .name('switchboard')
  .description('A kube-proxy replacement: Services and EndpointSlices in, kernel rules out.')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program
  .command('compile')
  .description('print the rules a full sync would apply for these objects (or --apply them to this network namespace)')
  .option('-f, --filename <file>', 'YAML or JSON: objects, multi-document YAML or a List; - is stdin (repeatable)', collect, [] as string[])
  .option('--apply', 'apply to the current network namespace instead of printing', false)
  .addOption(backendOption())
  .addOption(nodeNameOption())
  .addOption(nodeIpOption())
  .addOption(clusterCidrOption())
  .addOption(masqueradeAllOption())
  .addOption(iptablesLayoutOption())
  .addOption(ipvsSchedulerOption())
  .addOption(nodePortAddressesOption())
  .addOption(localhostNodePortsOption())
  .action(async (opts) => {
    const config = buildProxyConfig(opts);
    process.exitCode = await runCompile({ config, files: opts.filename, apply: opts.apply }, io);
  });

program
  .command('cleanup')
  .description('remove every chain, rule, ipset, IPVS virtual server and nftables table Switchboard created (IPv4 and IPv6 when available), and nothing else')
  .option('--dry-run', 'print what would be removed, as labelled tool inputs, instead of removing it', false)
  .action(async (opts) => {
    // Imported here so this registration stays one self-contained block.
    const { runCleanup, systemCleanup } = await import('./cleanup.js');
    const { detectIptablesMode } = await import('../kernel/iptables-mode.js');
    // The same legacy-or-nft choice the agent makes at start, so cleanup looks where the rules are.
    const { mode, reason } = await detectIptablesMode(iptablesModeOverride());
    process.stderr.write(`cleanup: iptables mode ${mode} (${reason})\n`);
    process.exitCode = await runCleanup(io, { dryRun: opts.dryRun }, systemCleanup(mode));
  });

program
  .command('run')
  .description('the node agent: watch the API server and keep this node programmed')
  .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account)')
  .addOption(backendOption())
  .addOption(nodeNameOption())
  .addOption(nodeIpOption())
  .addOption(clusterCidrOption())
  .addOption(masqueradeAllOption())
  .addOption(iptablesLayoutOption())
  .addOption(ipvsSchedulerOption())
  .addOption(nodePortAddressesOption())
  .addOption(localhostNodePortsOption())
  .option('--min-sync-period <duration>', 'coalesce changes: at most one sync per this period (0: sync at once)', '1s')
  .option('--sync-period <duration>', 'full sync at least this often; health fails when a change waits twice this', '30s')
  .option('--healthz-bind-address <ip:port>', "/healthz and /livez ('' disables)", '0.0.0.0:10256')
  .option('--metrics-bind-address <ip:port>', "/metrics ('' disables)", '127.0.0.1:10249')
  .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info' as const))
  .option('--dry-run', "print each sync's payload on stdout instead of applying it", false)
  .action(async (opts) => {
    const config = buildProxyConfig(opts);
    const { runAgent } = await import('./run.js');
    process.exitCode = await runAgent(config, opts, io.stdout);
  });

program
  .command('explain')
  .description('say why a Service routes or not on this node (read-only)')
  .command('service')
  .alias('svc')
  .description("what this node does with new connections to each port of a Service, and why: findings with fixes; exit 0 served, 3 not")
  .argument('<service>', 'NAMESPACE/NAME')
  .option('-f, --filename <file>', 'read objects from YAML/JSON (kubectl get svc,endpointslices,pods,nodes -A -o yaml) instead of the API server; - is stdin (repeatable)', collect, [] as string[])
  .option('--kubeconfig <file>', 'kubeconfig file, as run (without -f)')
  .addOption(nodeNameOption())
  .addOption(nodeIpOption())
  .addOption(backendOption())
  .addOption(clusterCidrOption())
  .addOption(outputOption())
  .action(async (ref, opts) => {
    const config = buildProxyConfig(opts);
    const { runExplain } = await import('./explain.js');
    process.exitCode = await runExplain({ ref, config, files: opts.filename, kubeconfig: opts.kubeconfig, output: opts.output }, io);
  });

program
  .command('trace')
  .description("what this node does with a new connection to --to: the Service port, verdict, endpoints and the rules that decide (-f: compile's rules; --live: this namespace's)")
  .requiredOption('--to <ip:port[/proto]>', 'destination: IP:PORT or [IPv6]:PORT, then /tcp (default), /udp or /sctp')
  .option('--from <ip>', 'source address (default: this node, at its node IP)')
  .option('-f, --filename <file>', 'trace the rules compile would write for these objects; - is stdin (repeatable)', collect, [] as string[])
  .option('--live', "trace the rules of the current network namespace (read with iptables-save, nft, ipvsadm, ipset)", false)
  .addOption(backendOption())
  .addOption(nodeNameOption())
  .addOption(nodeIpOption())
  .addOption(clusterCidrOption())
  .addOption(masqueradeAllOption())
  .addOption(iptablesLayoutOption())
  .addOption(ipvsSchedulerOption())
  .addOption(nodePortAddressesOption())
  .addOption(localhostNodePortsOption())
  .addOption(outputOption())
  .action(async (opts) => {
    const config = buildProxyConfig(opts);
    const { runTrace } = await import('./trace.js');
    process.exitCode = await runTrace({ config, to: opts.to, from: opts.from, files: opts.filename, live: opts.live, output: opts.output }, io);
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Help and version are not errors; everything else commander rejects is a usage error.
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else if (e instanceof UsageError) {
    process.stderr.write(`error: ${e.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  }
}
