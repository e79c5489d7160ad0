// What the rule interpreters share: the packet they trace, where it enters the node's netfilter hooks, and the
// ways (branches) a new connection can go, each with its probability, its path through the rules and what
// decided it. The interpreters (iptables.ts, nftables.ts, ipvs.ts) read rules only: no I/O, no Service model.
import { type IPFamily, cidrContains, parseCidrMasked, parseIP } from '../../model/ip.js';

export type L4Protocol = 'tcp' | 'udp' | 'sctp';
export const L4_PROTOCOLS: readonly L4Protocol[] = ['tcp', 'udp', 'sctp'];

/** The first packet of a new connection. Addresses are canonical (parseIP). */
export interface Packet {
  readonly src: string;
  readonly dst: string;
  readonly dport: number;
  readonly proto: L4Protocol;
}

/**
 * Where the packet meets netfilter: `local` is sent by a process of this node (the OUTPUT hooks, then
 * POSTROUTING), `remote` arrives on an interface, from a pod or another host (PREROUTING, then INPUT or FORWARD).
 */
export type Entry = 'local' | 'remote';

export interface TraceRequest {
  readonly packet: Packet;
  readonly entry: Entry;
  /**
   * The node's own addresses (addrtype LOCAL, `fib ... type local`, the routing decision between INPUT and
   * FORWARD). Loopback (127.0.0.0/8, ::1) is always local.
   */
  readonly localAddresses: readonly string[];
}

/** What a Service port is reached by. */
export type ServiceKind = 'clusterIP' | 'nodePort' | 'externalIP' | 'loadBalancer';

/**
 * What the rules say about the Service a branch went through, read from comments (iptables, nft elements)
 * or set names (IPVS). `external` is an external or load-balancer IP the rules do not tell apart.
 */
export interface ServiceHint {
  readonly service?: string;
  readonly kind?: ServiceKind | 'external';
}

/** A DNAT destination. */
export interface HostPort {
  readonly ip: string;
  readonly port: number;
}

/** One way a new connection can go: a random draw of the rules' load balancing. */
export interface Branch {
  readonly probability: number;
  /** Where the connection is sent after DNAT (or IPVS); undefined when it was not translated. */
  readonly dnat: HostPort | undefined;
  /**
   * How the packet ended: `accept` when it went on (delivered or forwarded), `drop`/`reject` when a rule or a
   * policy stopped it. `acceptedBy` is the rule that accepted it explicitly, if one did.
   */
  readonly verdict: 'accept' | 'drop' | 'reject';
  readonly acceptedBy: string | undefined;
  /** Source NAT (MASQUERADE, SNAT, masquerade) on the way out. */
  readonly masquerade: boolean;
  /** The rules and elements that matched, in order, as `table chain: rule`. */
  readonly path: readonly string[];
  readonly hints: readonly ServiceHint[];
}

/** Every branch of one trace, and what the interpreter could not read but went on without. */
export interface RawTrace {
  readonly family: IPFamily;
  readonly branches: readonly Branch[];
  readonly notes: readonly string[];
}

/** How every interpreter reads session affinity (xt_recent lists, nft dynamic sets, IPVS persistence). */
export const AFFINITY_NOTE = 'session affinity: traced as a client new to the Service; one seen within the timeout keeps the endpoint it got';

/** Input the interpreter cannot read: names what, where. */
export class TraceInputError extends Error {
  override readonly name = 'TraceInputError';
}

const LOOPBACK = [parseCidrMasked('127.0.0.0/8')!, parseCidrMasked('::1/128')!];

/** A set of the node's addresses, loopback included, compared canonically. */
export class LocalAddresses {
  private readonly set: ReadonlySet<string>;
  constructor(addresses: readonly string[]) {
    this.set = new Set(addresses.map((a) => parseIP(a)?.text ?? a));
  }

  has(ip: string): boolean {
    const text = parseIP(ip)?.text ?? ip;
    return this.set.has(text) || LOOPBACK.some((c) => cidrContains(c, text));
  }
}

/** True if `ip` is `cidr` (an address or a CIDR, as rules write them). */
export function inCidr(ip: string, cidr: string, where: string): boolean {
  const text = cidr.includes('/') ? cidr : `${cidr}/${cidr.includes(':') ? 128 : 32}`;
  const masked = parseCidrMasked(text);
  if (masked === undefined) throw new TraceInputError(`${where}: "${cidr}" is not an address or CIDR`);
  return cidrContains(masked, ip);
}

/** `ip:port`, `[v6]:port`, or a bare address: the address (canonical) and the port, if any. */
export function splitHostPort(text: string): { ip: string; port: number | undefined } | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const m = bracketed ?? (text.includes(':') && text.indexOf(':') === text.lastIndexOf(':') ? /^([^:]+):(\d+)$/.exec(text) : /^([^\s]+)()$/.exec(text));
  if (m === null) return undefined;
  const ip = parseIP(m[1]!);
  if (ip === undefined) return undefined;
  const port = m[2] === undefined || m[2] === '' ? undefined : Number(m[2]);
  return { ip: ip.text, port };
}
