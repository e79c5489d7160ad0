// A packet tracer over iptables restore text with upstream's conventions (iptables/proxier_test.go tracePacket,
// summarised in the external-traffic reference §10.0): nat KUBE-SERVICES (what PREROUTING and OUTPUT jump to),
// KUBE-MARK-MASQ sets masq and goes on, DNAT ends the walk unless reached through a `--probability` rule (so
// every endpoint is collected), `recent`, `mark`, `conntrack` and `set` matches never match. Then, with the
// destination rewritten to the first DNAT target, filter KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS
// and KUBE-PROXY-FIREWALL in that order, whose ACCEPT/DROP/REJECT is appended. Test support only.
import { cidrContains, parseCidrMasked } from '../../src/model/ip.js';
import { parseRules } from './iptables-text.js';

export interface Packet {
  readonly src: string;
  readonly dst: string;
  readonly dport: number;
  readonly proto?: 'tcp' | 'udp' | 'sctp';
}

export interface Trace {
  /** The DNAT targets (every endpoint reachable) and the filter verdict, joined with ", "; '' when nothing matched. */
  readonly output: string;
  readonly masq: boolean;
}

/** Splits a rule spec into words, keeping a quoted comment as one. */
function words(spec: string): string[] {
  return spec.match(/"[^"]*"|\S+/g) ?? [];
}

function inCidr(ip: string, cidr: string): boolean {
  const masked = parseCidrMasked(cidr.includes('/') ? cidr : `${cidr}/${ip.includes(':') ? 128 : 32}`);
  return masked !== undefined && cidrContains(masked, ip);
}

interface Matched {
  readonly matches: boolean;
  readonly probabilistic: boolean;
  readonly target: string | undefined;
  readonly dnatTo: string | undefined;
}

function match(spec: string, p: Required<Packet>, localIPs: ReadonlySet<string>): Matched {
  const w = words(spec);
  let ok = true;
  let probabilistic = false;
  let target: string | undefined;
  let dnatTo: string | undefined;
  let negate = false;
  for (let i = 0; i < w.length; i++) {
    const t = w[i]!;
    const next = (): string => w[++i]!;
    const check = (cond: boolean): void => {
      if (negate ? cond : !cond) ok = false;
      negate = false;
    };
    switch (t) {
      case '!':
        negate = true;
        break;
      case '-m': {
        const module = next();
        if (['recent', 'mark', 'conntrack', 'set'].includes(module)) ok = false;
        if (module === 'statistic') probabilistic = true;
        break;
      }
      case '--comment':
      case '--mode':
      case '--probability':
      case '--name':
      case '--nfacct-name':
        next();
        break;
      case '-p':
        check(next() === p.proto);
        break;
      case '-d':
        check(inCidr(p.dst, next()));
        break;
      case '-s':
        check(inCidr(p.src, next()));
        break;
      case '--dport':
        check(Number(next()) === p.dport);
        break;
      case '--dst-type':
        check(next() === 'LOCAL' && localIPs.has(p.dst));
        break;
      case '--src-type':
        check(next() === 'LOCAL' && localIPs.has(p.src));
        break;
      case '-j':
        target = next();
        break;
      case '--to-destination':
        dnatTo = next();
        break;
      default:
        break;
    }
  }
  return { matches: ok, probabilistic, target, dnatTo };
}

/** Traces `packet` through `rules` (a restore payload, as `compile` prints it); `localIPs` have addrtype LOCAL. */
export function tracePacket(rules: string, packet: Packet, localIPs: readonly string[]): Trace {
  const tables = parseRules(rules);
  const nat = tables.get('nat') ?? new Map<string, string[]>();
  const filter = tables.get('filter') ?? new Map<string, string[]>();
  const local = new Set(localIPs);
  const p: Required<Packet> = { proto: 'tcp', ...packet };
  const outputs: string[] = [];
  let masq = false;

  /** Walks a nat chain; true when it ended the walk (an unconditional DNAT). */
  const walkNat = (chain: string, depth: number): boolean => {
    if (depth > 20) throw new Error(`jump loop at ${chain}`);
    for (const spec of nat.get(chain) ?? []) {
      const m = match(spec, p, local);
      if (!m.matches || m.target === undefined) continue;
      if (m.target === 'KUBE-MARK-MASQ') masq = true;
      else if (m.target === 'DNAT') {
        outputs.push(m.dnatTo!);
        if (!m.probabilistic) return true;
      } else if (m.target === 'RETURN') return false;
      else if (nat.has(m.target)) {
        const ended = walkNat(m.target, depth + 1);
        if (ended && !m.probabilistic) return true;
      }
    }
    return false;
  };
  walkNat('KUBE-SERVICES', 0);

  const first = outputs[0];
  const after: Required<Packet> =
    first === undefined ? p : { ...p, dst: first.slice(0, first.lastIndexOf(':')).replace(/^\[|\]$/g, ''), dport: Number(first.slice(first.lastIndexOf(':') + 1)) };
  filters: for (const chain of ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL']) {
    for (const spec of filter.get(chain) ?? []) {
      const m = match(spec, after, local);
      if (m.matches && (m.target === 'ACCEPT' || m.target === 'DROP' || m.target === 'REJECT')) {
        outputs.push(m.target);
        break filters;
      }
    }
  }
  return { output: outputs.join(', '), masq };
}
