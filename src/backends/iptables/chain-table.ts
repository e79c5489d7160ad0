import { exactSize } from '../../exact-size.js';
import { ipv4Number, joinHostPort } from '../../model/ip.js';
import { probability } from './probability.js';
import { KUBE_MARK_MASQ } from '../shared/iptables-fixed.js';

/** What every endpoint chain of one service port shares. */
export interface EndpointChainStyle {
  /** ` -m comment --comment ns/svc:port`, or '' in large-cluster mode. */
  readonly comment: string;
  readonly affinity: boolean;
  /** tcp, udp or sctp. */
  readonly proto: string;
}

/** An endpoint chain kept as its facts, not its text. */
interface EndpointChainSpec {
  readonly style: EndpointChainStyle;
  readonly ip: string;
  readonly port: number;
}

/** Exactly the two rules of a KUBE-SEP chain, as kube-proxy writes them. */
export function renderEndpointChain(name: string, style: EndpointChainStyle, ip: string, port: number): string {
  const recent = style.affinity ? ` -m recent --name ${name} --set` : '';
  return [
    `-A ${name}${style.comment} -s ${ip} -j ${KUBE_MARK_MASQ}\n`,
    `-A ${name}${style.comment}${recent} -m ${style.proto} -p ${style.proto} -j DNAT --to-destination ${joinHostPort(ip, port)}\n`,
  ].join('');
}

/**
 * An endpoint's `ip:port`, compactly: an IPv4 one packed into one number (address * 65536 + port, exact in a
 * double, and unboxed in an array of them), any other as its text.
 */
export type HostPortKey = number | string;

export function hostPortKey(ip: string, port: number): HostPortKey {
  // IPv4 text here is canonical, so it round-trips.
  const address = ipv4Number(ip);
  return address === undefined ? joinHostPort(ip, port) : address * 65536 + port;
}

export function hostPortText(key: HostPortKey): string {
  if (typeof key === 'string') return key;
  const address = Math.floor(key / 65536);
  return `${address >>> 24}.${(address >>> 16) & 255}.${(address >>> 8) & 255}.${address & 255}:${key % 65536}`;
}

/** What the policy chains (SVC, SVL) of one service port share. */
export interface PolicyChainStyle {
  /** `ns/svc:port`, for the per-endpoint comments. */
  readonly spn: string;
  /** `-m comment --comment "… cluster IP" -m tcp -p tcp -d IP --dport N`: the masquerade rule's match. */
  readonly ipComment: string;
  /** ClientIP affinity's timeout: each endpoint gets a `recent` rule first. */
  readonly affinitySeconds: number | undefined;
  /** Large-cluster mode: no per-endpoint comments. */
  readonly largeCluster: boolean;
  /** Flat layout: the protocol the rules DNAT with, straight to the endpoint; undefined: they jump to its chain. */
  readonly dnatProto: string | undefined;
}

/** A policy chain kept as its facts: a masquerade rule, then one rule (two with affinity) per endpoint. */
export interface PolicyChainSpec {
  readonly style: PolicyChainStyle;
  /** The masquerade rule's source match (` ! -s CIDR`, or '' to masquerade all); undefined: no such rule. */
  readonly masquerade: string | undefined;
  /** The endpoints in rule order. */
  readonly endpoints: readonly HostPortKey[];
  /** Their endpoint chains, where the rules jump (kube-proxy layout, affinity); unused when DNAT is inline. */
  readonly chains: readonly string[];
}

/** The rules of a KUBE-SVC/KUBE-SVL chain as kube-proxy writes them (statistic probabilities 1/(n-i)). */
export function renderPolicyChain(name: string, spec: PolicyChainSpec): string {
  const { style, endpoints, chains } = spec;
  const lines: string[] = [];
  if (spec.masquerade !== undefined) lines.push(`-A ${name} ${style.ipComment}${spec.masquerade} -j ${KUBE_MARK_MASQ}\n`);
  const comment = (i: number): string => (style.largeCluster ? '' : ` -m comment --comment "${style.spn} -> ${hostPortText(endpoints[i]!)}"`);
  if (style.affinitySeconds !== undefined) {
    for (let i = 0; i < endpoints.length; i++) {
      const sep = chains[i]!;
      lines.push(`-A ${name}${comment(i)} -m recent --name ${sep} --rcheck --seconds ${style.affinitySeconds} --reap -j ${sep}\n`);
    }
  }
  for (let i = 0; i < endpoints.length; i++) {
    const stat = i < endpoints.length - 1 ? ` -m statistic --mode random --probability ${probability(endpoints.length - i)}` : '';
    // Flat: the endpoint chain's DNAT inline (without its no-op `-m tcp`: each match costs re-validation time).
    const action = style.dnatProto !== undefined ? `-p ${style.dnatProto} -j DNAT --to-destination ${hostPortText(endpoints[i]!)}` : `-j ${chains[i]!}`;
    lines.push(`-A ${name}${comment(i)}${stat} ${action}\n`);
  }
  return lines.join('');
}

function policyRuleCount(spec: PolicyChainSpec): number {
  const perEndpoint = spec.style.affinitySeconds !== undefined ? 2 : 1;
  return (spec.masquerade !== undefined ? 1 : 0) + perEndpoint * spec.endpoints.length;
}

/**
 * A Service's nat chains, name → rules text, in insertion order. Chains are kept as their facts and rendered
 * when read: an endpoint chain (SEP, two rules each and nine in ten of all chains) as its address, port and
 * shared style; a policy chain (SVC, SVL) as its endpoints (IPv4 ones packed into numbers) and the names of
 * their chains, which the SEP entries hold anyway. At 10,000 Services x 10 endpoints that is some 27 MB of
 * text the agent never holds.
 */
export class ChainTable implements ReadonlyMap<string, string> {
  private names: string[] = [];
  private items: (string | EndpointChainSpec | PolicyChainSpec)[] = [];
  private index: Map<string, number> | undefined;

  setText(name: string, text: string): void {
    this.add(name, text);
  }

  setEndpoint(name: string, style: EndpointChainStyle, ip: string, port: number): void {
    this.add(name, { style, ip, port });
  }

  setPolicy(name: string, spec: PolicyChainSpec): void {
    this.add(name, spec);
  }

  private add(name: string, item: string | EndpointChainSpec | PolicyChainSpec): void {
    const at = this.find(name);
    if (at >= 0) {
      this.items[at] = item;
      return;
    }
    this.names.push(name);
    this.items.push(item);
    this.index?.set(name, this.names.length - 1);
  }

  /** Drops the lists' spare capacity once the table is complete (it lives as long as its fragment). */
  trim(): void {
    this.names = exactSize(this.names);
    this.items = exactSize(this.items);
  }

  private find(name: string): number {
    // Most Services have a handful of chains: a scan beats a Map per Service; big ones get an index.
    if (this.names.length <= 16) return this.names.indexOf(name);
    if (this.index === undefined) this.index = new Map(this.names.map((n, i) => [n, i]));
    return this.index.get(name) ?? -1;
  }

  private render(i: number): string {
    const item = this.items[i]!;
    if (typeof item === 'string') return item;
    return 'endpoints' in item ? renderPolicyChain(this.names[i]!, item) : renderEndpointChain(this.names[i]!, item.style, item.ip, item.port);
  }

  /** Rules in all chains, without rendering: endpoint chains have two. */
  ruleCount(countText: (text: string) => number): number {
    let n = 0;
    for (const item of this.items) n += typeof item === 'string' ? countText(item) : 'endpoints' in item ? policyRuleCount(item) : 2;
    return n;
  }

  get size(): number {
    return this.names.length;
  }

  get(name: string): string | undefined {
    const i = this.find(name);
    return i < 0 ? undefined : this.render(i);
  }

  has(name: string): boolean {
    return this.find(name) >= 0;
  }

  *entries(): MapIterator<[string, string]> {
    for (let i = 0; i < this.names.length; i++) yield [this.names[i]!, this.render(i)];
  }

  keys(): MapIterator<string> {
    return this.names.values();
  }

  *values(): MapIterator<string> {
    for (let i = 0; i < this.names.length; i++) yield this.render(i);
  }

  forEach(fn: (value: string, key: string, map: ReadonlyMap<string, string>) => void): void {
    for (let i = 0; i < this.names.length; i++) fn(this.render(i), this.names[i]!, this);
  }

  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.entries();
  }
}
