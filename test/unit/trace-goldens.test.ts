// `switchboard trace` over every golden ruleset (rules/golden/**, what `compile` prints for the bundled examples):
// for every Service port of the example input, the interpreter's verdict and endpoints (with their shares) must
// be what the model's endpoint selection says (src/model service-view/categorize), for a pod's and the node's
// connections to the ClusterIP and an outside client's to each external IP, load-balancer IP and NodePort.
// The rules are read as the CLI reads a plan it captured (splitPrintedPlan, rulesFromPlan); the expectations
// come from the model, never from the rules.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { summarize } from '../../src/diagnose/trace/outcome.js';
import { type TraceRules, rulesFromPlan, splitPrintedPlan, traceRules } from '../../src/diagnose/trace/rules.js';
import type { Entry, ServiceKind } from '../../src/diagnose/trace/types.js';
import { type IPFamily, cidrContains, joinHostPort, parseCidrMasked } from '../../src/model/ip.js';
import { viewService } from '../../src/model/service-view.js';
import type { Endpoint } from '../../src/model/types.js';
import { loadObjects } from '../../src/sources/objects.js';
import { readManifests } from '../../src/sources/read-manifests.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const V4 = '10.244.0.0/16';
const V6 = 'fd00:10:244::/48';

interface Golden {
  readonly file: string;
  readonly example: string;
  readonly backend: TraceRules['backend'];
  readonly families: readonly IPFamily[];
  /** The compile flags' pod CIDRs and --masquerade-all. */
  readonly cidrs: Partial<Record<IPFamily, string>>;
  readonly masqueradeAll?: boolean;
}

const GOLDENS: readonly Golden[] = [
  { file: 'iptables/web.rules', example: 'web', backend: 'iptables', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'iptables/web-masquerade-all.rules', example: 'web', backend: 'iptables', families: ['IPv4'], cidrs: { IPv4: V4 }, masqueradeAll: true },
  { file: 'iptables/features.rules', example: 'features', backend: 'iptables', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'iptables/features-flat.rules', example: 'features', backend: 'iptables', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'iptables/empty.rules', example: 'empty', backend: 'iptables', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'iptables/dual-stack-ipv4.rules', example: 'dual-stack', backend: 'iptables', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'iptables/dual-stack-ipv6.rules', example: 'dual-stack', backend: 'iptables', families: ['IPv6'], cidrs: { IPv6: V6 } },
  { file: 'iptables/dual-stack-ipv6-flat.rules', example: 'dual-stack', backend: 'iptables', families: ['IPv6'], cidrs: { IPv6: V6 } },
  { file: 'dual-stack/iptables.txt', example: 'dual-stack', backend: 'iptables', families: ['IPv4', 'IPv6'], cidrs: { IPv4: V4, IPv6: V6 } },
  { file: 'dual-stack/iptables-flat.txt', example: 'dual-stack', backend: 'iptables', families: ['IPv4', 'IPv6'], cidrs: { IPv4: V4, IPv6: V6 } },
  { file: 'ipvs/features.txt', example: 'features', backend: 'ipvs', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'ipvs/web-masquerade-all-sh.txt', example: 'web', backend: 'ipvs', families: ['IPv4'], cidrs: { IPv4: V4 }, masqueradeAll: true },
  { file: 'ipvs/empty.txt', example: 'empty', backend: 'ipvs', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'nftables/web.nft', example: 'web', backend: 'nftables', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'nftables/web-masquerade-all.nft', example: 'web', backend: 'nftables', families: ['IPv4'], cidrs: { IPv4: V4 }, masqueradeAll: true },
  { file: 'nftables/web-no-cidr.nft', example: 'web', backend: 'nftables', families: ['IPv4'], cidrs: {} },
  { file: 'nftables/features.nft', example: 'features', backend: 'nftables', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'nftables/empty.nft', example: 'empty', backend: 'nftables', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'nftables/dual-stack-ipv4.nft', example: 'dual-stack', backend: 'nftables', families: ['IPv4'], cidrs: { IPv4: V4 } },
  { file: 'nftables/dual-stack-ipv6.nft', example: 'dual-stack', backend: 'nftables', families: ['IPv6'], cidrs: { IPv6: V6 } },
  { file: 'dual-stack/nftables.txt', example: 'dual-stack', backend: 'nftables', families: ['IPv4', 'IPv6'], cidrs: { IPv4: V4, IPv6: V6 } },
];

/** A pod that is no endpoint, an outside client; the node's IP where the example's Node has none. */
const POD: Record<IPFamily, string> = { IPv4: '10.244.9.99', IPv6: 'fd00:10:244:9::99' };
const OUTSIDE: Record<IPFamily, string> = { IPv4: '203.0.113.5', IPv6: '2600:5200::5' };
const DEFAULT_NODE_IP = '10.0.0.10';

interface Expected {
  readonly verdict: 'dnat' | 'reject' | 'drop';
  readonly endpoints: readonly Endpoint[];
}

/** What the model says a port's traffic gets: its endpoints, or DROP (some exist elsewhere) or REJECT (none). */
function expected(list: readonly Endpoint[], hasAny: boolean): Expected {
  return list.length > 0 ? { verdict: 'dnat', endpoints: list } : { verdict: hasAny ? 'drop' : 'reject', endpoints: [] };
}

interface Case {
  readonly name: string;
  readonly entry: Entry;
  readonly src: string;
  readonly dst: string;
  readonly port: number;
  readonly proto: 'tcp' | 'udp' | 'sctp';
  readonly service: string;
  readonly kind: ServiceKind;
  readonly want: Expected;
  /** Whether new connections are masqueraded, where the model's flags say so. */
  readonly masquerade: boolean | undefined;
}

async function cases(g: Golden, family: IPFamily): Promise<{ cases: Case[]; local: string[]; serviceCount: number }> {
  const parsed = await readManifests([`${root}rules/examples/${g.example}.yaml`], () => Promise.resolve(''));
  const { state, errors } = loadObjects(parsed.objects, 'node-a');
  expect(errors).toEqual([]);
  const local = state.node.ips.length > 0 ? [...state.node.ips] : [DEFAULT_NODE_IP];
  const nodeIP = local.find((ip) => ip.includes(':') === (family === 'IPv6'));
  const cidr = g.cidrs[family];
  const out: Case[] = [];
  let serviceCount = 0;
  for (const service of state.allServices()) {
    const view = viewService(state, service.key, family);
    if (view?.clusterIP === undefined) continue;
    serviceCount++;
    for (const p of view.ports) {
      const sel = p.selection;
      const base = { port: p.port.port, proto: p.proto, service: p.name };
      const internal = expected(sel.internal, sel.hasAnyEndpoints);
      out.push({ ...base, name: `${p.name} ClusterIP from a pod`, entry: 'remote', src: POD[family], dst: view.clusterIP, kind: 'clusterIP', want: internal, masquerade: g.masqueradeAll === true });
      if (nodeIP !== undefined) {
        out.push({ ...base, name: `${p.name} ClusterIP from the node`, entry: 'local', src: nodeIP, dst: view.clusterIP, kind: 'clusterIP', want: internal, masquerade: cidr !== undefined || g.masqueradeAll === true ? true : undefined });
      }
      // From outside the cluster: the external endpoints (local ones under externalTrafficPolicy Local).
      const external = expected(sel.external, sel.hasAnyEndpoints);
      const fromRange = (ip: string): string => {
        const ranges = view.sourceRanges.map(parseCidrMasked).filter((c) => c !== undefined && c.family === family);
        if (ranges.length === 0 || ranges.some((c) => cidrContains(c!, OUTSIDE[family]))) return OUTSIDE[family];
        throw new Error(`${p.name}: no outside client in the source ranges of ${ip}`);
      };
      const masq = service.externalTrafficPolicy === 'Cluster' ? true : g.masqueradeAll === true ? undefined : false;
      for (const ip of view.externalIPs) out.push({ ...base, name: `${p.name} external IP ${ip} from outside`, entry: 'remote', src: OUTSIDE[family], dst: ip, kind: 'externalIP', want: external, masquerade: masq });
      for (const ip of view.loadBalancerIPs) out.push({ ...base, name: `${p.name} LB IP ${ip} from an allowed source`, entry: 'remote', src: fromRange(ip), dst: ip, kind: 'loadBalancer', want: external, masquerade: masq });
      if (p.nodePort !== 0 && nodeIP !== undefined) {
        out.push({ ...base, port: p.nodePort, name: `${p.name} NodePort ${p.nodePort} from outside`, entry: 'remote', src: OUTSIDE[family], dst: nodeIP, kind: 'nodePort', want: external, masquerade: masq });
      }
    }
  }
  return { cases: out, local, serviceCount };
}

describe.each(GOLDENS)('trace over rules/golden/$file', (g) => {
  const text = readFileSync(`${root}rules/golden/${g.file}`, 'utf8');
  it.each(g.families)('%s: every Service port as the model selects its endpoints', async (family) => {
    const rules = rulesFromPlan(splitPrintedPlan(text), g.backend, family, g.file);
    const { cases: all, local, serviceCount } = await cases(g, family);
    if (g.example !== 'empty') expect(all.length).toBeGreaterThan(serviceCount);
    // The dual-stack example reaches every kind of Service address, and REJECT; features DROP (Local, remote only).
    const kinds = new Set(all.map((c) => `${c.kind}:${c.want.verdict}`));
    if (g.example === 'dual-stack') for (const k of ['clusterIP:dnat', 'externalIP:dnat', 'loadBalancer:dnat', 'nodePort:dnat', 'clusterIP:reject', 'nodePort:reject']) expect(kinds).toContain(k);
    if (g.example === 'features') expect(kinds).toContain('clusterIP:drop');
    for (const c of all) {
      const packet = { src: c.src, dst: c.dst, dport: c.port, proto: c.proto };
      const r = summarize(traceRules(rules, { packet, entry: c.entry, localAddresses: local }), packet);
      const got = { verdict: r.verdict, endpoints: r.endpoints.map((e) => [joinHostPort(e.ip, e.port), round(e.probability)]).sort() };
      const want = { verdict: c.want.verdict, endpoints: c.want.endpoints.map((e) => [e.hostPort, round(1 / c.want.endpoints.length)]).sort() };
      expect(got, `${c.name}\n${r.path.join('\n')}`).toEqual(want);
      // IPVS virtual servers carry no comment: only its REJECT/DROP rules name the Service.
      if (g.backend !== 'ipvs' || r.verdict !== 'dnat') expect(r.service, `${c.name}: service`).toBe(c.service);
      expect(r.kind, `${c.name}: kind`).toBe(c.kind);
      if (c.masquerade !== undefined && r.verdict === 'dnat') expect(r.masquerade, `${c.name}: masquerade\n${r.path.join('\n')}`).toBe(c.masquerade);
    }
    // Not a Service address: nothing translated, nothing named.
    const packet = { src: POD[family], dst: family === 'IPv4' ? '10.96.255.254' : 'fd00:10:96::ffff', dport: 80, proto: 'tcp' as const };
    const none = summarize(traceRules(rules, { packet, entry: 'remote', localAddresses: local }), packet);
    expect([none.verdict, none.service, none.kind, none.endpoints]).toEqual(['none', null, null, []]);
  });
});

const round = (p: number): number => Math.round(p * 1e9) / 1e9;
