// Upstream's packet-flow tables (iptables and nftables proxier_test.go tracePacket, as the external-traffic
// reference §10.0 summarises them) read a trace as one string: every endpoint a new connection may reach, then
// DROP or REJECT when a branch is stopped (or ACCEPT when a rule accepts an untranslated packet), and whether it
// is masqueraded. This formats the production interpreters' traces (src/diagnose/trace) that way. As upstream's
// tables, every packet enters through PREROUTING, the node's own included.
import { type NftChainModel, type NftSetModel, type NftTableModel, baseChainOf } from '../../src/diagnose/trace/nft-rules.js';
import { traceNftables } from '../../src/diagnose/trace/nftables.js';
import type { Branch, L4Protocol, RawTrace } from '../../src/diagnose/trace/types.js';
import type { FakeTableView } from './fakes/nft.js';
import { joinHostPort, parseIP } from '../../src/model/ip.js';

export interface Packet {
  readonly src: string;
  readonly dst: string;
  readonly dport: number;
  readonly proto?: L4Protocol;
}

export interface FlowTrace {
  readonly output: string;
  readonly masq: boolean;
  /** The rules that matched, branch by branch, for failure messages. */
  readonly matched: readonly string[];
}

/** The request upstream's tables mean: from `src`, entering through PREROUTING. */
export function flowRequest(p: Packet, localIPs: readonly string[]) {
  const canon = (ip: string): string => parseIP(ip)?.text ?? ip;
  return { packet: { src: canon(p.src), dst: canon(p.dst), dport: p.dport, proto: p.proto ?? 'tcp' }, entry: 'remote' as const, localAddresses: localIPs };
}

export function flowOutput(trace: RawTrace): FlowTrace {
  const out: string[] = [];
  for (const b of trace.branches) {
    if (b.dnat === undefined) continue;
    const t = joinHostPort(b.dnat.ip, b.dnat.port);
    if (!out.includes(t)) out.push(t);
  }
  const stopped = trace.branches.find((b: Branch) => b.verdict !== 'accept');
  if (stopped !== undefined) out.push(stopped.verdict === 'drop' ? 'DROP' : 'REJECT');
  else if (out.length === 0 && trace.branches.some((b) => b.acceptedBy !== undefined)) out.push('ACCEPT');
  return {
    output: out.join(', '),
    masq: trace.branches.some((b) => b.masquerade),
    matched: trace.branches.flatMap((b, i) => [`branch ${i + 1} (p=${b.probability}):`, ...b.path.map((s) => `  ${s}`)]),
  };
}

/** The fake kernel's view of a table (test/support/fakes/nft.ts) as the nftables interpreter reads tables. */
export function nftTableOf(view: FakeTableView, family = 'ip', name = 'kube-proxy'): NftTableModel {
  const chains = new Map<string, NftChainModel>();
  for (const [chainName, c] of view.chains) {
    chains.set(chainName, { name: chainName, base: c.base === undefined ? undefined : baseChainOf(c.base, `chain ${chainName}`), rules: [...c.rules] });
  }
  const sets = new Map<string, NftSetModel>();
  for (const [setName, s] of view.sets) {
    const elements = new Map([...s.elements].map(([key, value]) => [key, { key, value: value === '' ? undefined : value, comment: undefined }] as const));
    sets.set(setName, { name: setName, kind: s.kind, elements });
  }
  return { family, name, chains, sets };
}

/** Upstream's tracePacket over the nftables backend's table as the fake kernel holds it. */
export function traceNftFlow(view: FakeTableView, p: Packet, localIPs: readonly string[]): FlowTrace {
  const family = parseIP(p.dst)?.family === 'IPv6' ? 'ip6' : 'ip';
  return flowOutput(traceNftables(nftTableOf(view, family), flowRequest(p, localIPs), 'fake nft'));
}
