// `switchboard trace`: what this node does with a new connection, read from rules by the backend's interpreter
// (src/diagnose/trace). With -f, over the rules `compile` would print for the input (the same backend factory,
// a dry run captured as text, no kernel); with --live, over the rules this network namespace holds
// (iptables-save, nft list ruleset, ipvsadm -S -n and ipset save). No packet is sent either way.
import type { Io } from './compile.js';
import { createBackends } from './backend-factory.js';
import { type ProxyConfig, nodeIPList } from './config.js';
import { UsageError } from './errors.js';
import { toolFailureText } from './report.js';
import { IptablesRuleset } from '../diagnose/trace/iptables-rules.js';
import { Ipsets } from '../diagnose/trace/ipsets.js';
import { ipvsTableOf } from '../diagnose/trace/ipvs.js';
import { NftRuleset } from '../diagnose/trace/nft-rules.js';
import { type TraceResult, summarize, traceExitCode, traceText } from '../diagnose/trace/outcome.js';
import { NFT_TABLE, type TraceRules, rulesFromPlan, splitPrintedPlan, traceRules } from '../diagnose/trace/rules.js';
import { type L4Protocol, LocalAddresses, type Packet, type ServiceHint, TraceInputError } from '../diagnose/trace/types.js';
import { ToolError } from '../kernel/exec.js';
import { type IPFamily, mergeNodeIPs, parseIP } from '../model/ip.js';
import type { ClusterState } from '../model/state.js';
import { servicePortNameString } from '../model/types.js';
import { readManifests } from '../sources/read-manifests.js';
import { loadObjects } from '../sources/objects.js';
import { PrintApplier, syncBackend } from '../sync/applier.js';

export interface TraceCommand {
  readonly config: ProxyConfig;
  /** `IP:PORT[/tcp|udp|sctp]`, `[IPv6]:PORT[/proto]`. */
  readonly to: string;
  readonly from: string | undefined;
  readonly files: readonly string[];
  readonly live: boolean;
  readonly output: 'text' | 'json';
}

/** `--to`: an address, a port and a protocol (tcp when none is given). */
export function parseTarget(text: string): { ip: string; family: IPFamily; port: number; proto: L4Protocol } {
  const m = /^(?:\[([^\]]+)\]|([^:/[\]]+)):(\d+)(?:\/(tcp|udp|sctp))?$/i.exec(text.trim());
  const ip = m === null ? undefined : parseIP(m[1] ?? m[2]!);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || ip === undefined || !(port >= 1 && port <= 65535)) {
    throw new UsageError(`--to: "${text}" is not IP:PORT[/tcp|udp|sctp] (IPv6 as [ADDRESS]:PORT)`);
  }
  if (ip.family === 'IPv6' && m[1] === undefined) throw new UsageError(`--to: write an IPv6 address in brackets: [${m[2]!}]:${m[3]!}`);
  return { ip: ip.text, family: ip.family, port, proto: (m[4]?.toLowerCase() ?? 'tcp') as L4Protocol };
}

/** Runs the command; returns the exit code (0 reaches an endpoint, 3 does not, 2 bad usage or input, 1 a tool failed). */
export async function runTrace(cmd: TraceCommand, io: Io): Promise<number> {
  const target = parseTarget(cmd.to);
  let from: string | undefined;
  if (cmd.from !== undefined) {
    const ip = parseIP(cmd.from.trim());
    if (ip === undefined) throw new UsageError(`--from: "${cmd.from}" is not an IP address`);
    if (ip.family !== target.family) throw new UsageError(`--from ${ip.text} and --to ${cmd.to} are not of one IP family`);
    from = ip.text;
  }
  if (cmd.live === (cmd.files.length > 0)) throw new UsageError('trace: give either -f FILE ... (the rules compile would write) or --live (the rules of this network namespace)');
  try {
    const input = cmd.live ? await liveInput(cmd.config, target) : await fileInput(cmd, io, target);
    if (input === undefined) return 2;
    const src = from ?? input.nodeIP;
    if (src === undefined) {
      throw new UsageError(`trace: this node's ${target.family} address is not known: give --from, or --node-ip${cmd.live ? '' : ' (or a Node with addresses in -f)'}`);
    }
    const local = new LocalAddresses(input.localAddresses);
    const packet: Packet = { src, dst: target.ip, dport: target.port, proto: target.proto };
    const entry = from === undefined || local.has(from) ? 'local' : 'remote';
    const raw = traceRules(input.rules, { packet, entry, localAddresses: input.localAddresses });
    const summary = summarize(raw, packet, input.name?.(packet, local));
    const result = { ...summary, notes: [...summary.notes, ...(input.notes ?? [])] };
    io.stdout(cmd.output === 'json' ? `${JSON.stringify(jsonOf(result), null, 2)}\n` : traceText(result, heading(result, entry, input, cmd.config)));
    return traceExitCode(result);
  } catch (e) {
    if (e instanceof TraceInputError) {
      io.stderr(`error: ${e.message}\n`);
      return 2;
    }
    if (e instanceof ToolError) {
      io.stderr(toolFailureText(e));
      return 1;
    }
    throw e;
  }
}

/** The contract's fields in its order, then what this tool adds (per-endpoint masquerade, notes). */
function jsonOf(r: TraceResult): object {
  return {
    from: r.from,
    to: r.to,
    protocol: r.protocol,
    service: r.service,
    kind: r.kind,
    verdict: r.verdict,
    masquerade: r.masquerade,
    endpoints: r.endpoints.map((e) => ({ ip: e.ip, port: e.port, probability: e.probability, masquerade: e.masquerade })),
    path: r.path,
    notes: r.notes,
  };
}

function heading(r: TraceResult, entry: 'local' | 'remote', input: TraceInput, config: ProxyConfig): string {
  const path = entry === 'local' ? 'from this node (OUTPUT, POSTROUTING)' : 'arriving (PREROUTING, then INPUT or FORWARD)';
  return `${r.protocol} ${r.from} -> ${r.to}   ${path}   rules: ${input.what} (${config.backend}, ${input.rules.family})`;
}

interface TraceInput {
  readonly rules: TraceRules;
  /** The node's addresses (addrtype LOCAL, INPUT or FORWARD). */
  readonly localAddresses: readonly string[];
  /** The node's address in the family traced: the default source. */
  readonly nodeIP: string | undefined;
  /** `compiled from FILES` or `this network namespace`. */
  readonly what: string;
  /** Names the Service from the input where the rules carry no name (IPVS virtual servers). */
  readonly name?: (p: Packet, local: LocalAddresses) => ServiceHint | undefined;
  /** What the reader saw but the trace does not run (other agents' nftables tables on the same hooks). */
  readonly notes?: readonly string[];
}

/** -f: the input compiled as `compile` would, for the family of --to, captured as printed text and read back. */
async function fileInput(cmd: TraceCommand, io: Io, target: { family: IPFamily }): Promise<TraceInput | undefined> {
  const parsed = await readManifests(cmd.files, io.stdin);
  const loaded = loadObjects(parsed.objects, cmd.config.nodeName);
  const errors = [...parsed.errors.map((e) => `${e.source}: ${e.message}`), ...loaded.errors];
  if (errors.length > 0) {
    for (const e of errors) io.stderr(`error: ${e}\n`);
    io.stderr(`error: nothing traced: fix the ${errors.length} error(s) above first\n`);
    return undefined;
  }
  const given = nodeIPList(cmd.config);
  if (given.length > 0) loaded.state.setNodeIPs(mergeNodeIPs(given, loaded.state.node.ips));
  const { backends } = await createBackends(cmd.config, [target.family], { dryRun: true });
  const chosen = backends[0];
  if (chosen === undefined) throw new UsageError(`trace: the ${cmd.config.backend} backend cannot program ${target.family}`);
  chosen.backend.update(loaded.state, loaded.state.takeChanges());
  let text = '';
  await syncBackend(chosen.backend, true, { applier: new PrintApplier((t) => (text += t), 'sections'), readKernel: false });
  const rules = rulesFromPlan(splitPrintedPlan(text), cmd.config.backend, target.family, 'compile');
  const nodeIPs = loaded.state.node.ips;
  return {
    rules,
    localAddresses: nodeIPs,
    nodeIP: nodeIPs.find((ip) => parseIP(ip)?.family === target.family),
    what: `compiled from ${cmd.files.join(', ')}`,
    name: (p, local) => nameFromObjects(loaded.state, p, local, target.family),
  };
}

/** The Service port a destination belongs to in the input (ClusterIP, external, load-balancer IP, NodePort). */
function nameFromObjects(state: ClusterState, p: Packet, local: LocalAddresses, family: IPFamily): ServiceHint | undefined {
  for (const s of state.allServices()) {
    const clusterIP = s.clusterIPs[family];
    if (clusterIP === undefined) continue;
    for (const port of s.ports) {
      if (port.protocol.toLowerCase() !== p.proto) continue;
      const service = servicePortNameString({ service: s.key, port: port.name, protocol: port.protocol });
      if (port.port === p.dport) {
        if (clusterIP === p.dst) return { service, kind: 'clusterIP' };
        if (s.externalIPs[family]?.includes(p.dst) === true) return { service, kind: 'externalIP' };
        if (s.loadBalancerIPs[family]?.includes(p.dst) === true) return { service, kind: 'loadBalancer' };
      }
      if (port.nodePort !== 0 && port.nodePort === p.dport && local.has(p.dst)) return { service, kind: 'nodePort' };
    }
  }
  return undefined;
}

/** --live: the rules of this network namespace, read with the kernel tools of the backend. */
async function liveInput(config: ProxyConfig, target: { ip: string; family: IPFamily }): Promise<TraceInput> {
  const { localAddresses } = await import('../kernel/local-addresses.js');
  const { routeSource } = await import('../kernel/ip.js');
  const local = localAddresses();
  const family = target.family;
  const rules = await liveRules(config, family);
  const notes = rules.backend === 'nftables' ? foreignTables(rules.ruleset, family) : [];
  let nodeIP = config.nodeIPs[family];
  if (nodeIP === undefined) {
    // The address a process here would connect from; for a destination on this node, the one toward off-node.
    const src = await routeSource(target.ip);
    nodeIP = src !== undefined && src !== target.ip ? src : await routeSource(family === 'IPv4' ? '192.0.2.1' : '2001:db8::1');
    nodeIP ??= local.find((ip) => parseIP(ip)?.family === family && !ip.startsWith('127.') && ip !== '::1' && !/^fe[89ab]/i.test(ip));
  }
  return { rules, localAddresses: local, nodeIP, what: 'this network namespace', notes };
}

/** Other tables of the family with base chains: they see the packet too, and the trace does not run them. */
function foreignTables(ruleset: NftRuleset, family: IPFamily): string[] {
  const ours = `${family === 'IPv4' ? 'ip' : 'ip6'} ${NFT_TABLE}`;
  const out: string[] = [];
  for (const [id, table] of ruleset.tables) {
    if (id === ours) continue;
    const hooks = [...table.chains.values()].filter((c) => c.base !== undefined).map((c) => `${c.name} (${c.base!.type} ${c.base!.hook} ${c.base!.priority})`);
    if (hooks.length > 0) out.push(`table ${id} also hooks ${hooks.join(', ')}: not traced`);
  }
  return out;
}

async function liveRules(config: ProxyConfig, family: IPFamily): Promise<TraceRules> {
  if (config.backend === 'nftables') {
    const { listRuleset } = await import('../kernel/nft.js');
    const text = await listRuleset(family);
    const ruleset = NftRuleset.fromListing(text, `nft list ruleset ${family === 'IPv4' ? 'ip' : 'ip6'}`);
    return { backend: 'nftables', family, ruleset, source: 'nft list ruleset' };
  }
  const { detectIptablesMode } = await import('../kernel/iptables-mode.js');
  const { iptablesCommands, saveAll } = await import('../kernel/iptables.js');
  const { listIpsets, saveIpsets } = await import('../kernel/ipset.js');
  const { mode } = await detectIptablesMode(config.iptablesMode);
  const tools = iptablesCommands(mode, family);
  const rules = new IptablesRuleset().apply(await saveAll(tools), tools.save);
  const ipsets = new Ipsets();
  if ((await listIpsets()) !== undefined) ipsets.apply(await saveIpsets(), 'ipset save');
  if (config.backend === 'iptables') return { backend: 'iptables', family, rules, ipsets, source: tools.save };
  const { saveIpvs } = await import('../kernel/ipvsadm.js');
  const table = ipvsTableOf(await saveIpvs(), 'ipvsadm -S -n');
  // The Service addresses are on kube-ipvs0: among the namespace's local addresses already.
  return { backend: 'ipvs', family, rules: { table, iptables: rules, ipsets }, boundAddresses: [], source: 'ipvsadm -S -n' };
}

