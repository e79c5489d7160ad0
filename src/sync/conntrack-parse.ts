import { parseIP } from '../model/ip.js';

/** One conntrack entry as `conntrack -L` prints it, reduced to the fields the reconciler reads. */
export interface ConntrackFlow {
  /** Layer-4 protocol name as printed: `udp`, `tcp`, `sctp` … */
  readonly protocol: string;
  readonly origSrc: string;
  readonly origDst: string;
  readonly origSport: number;
  readonly origDport: number;
  /** After DNAT the reply comes from the backend: this is the endpoint the flow is pinned to. */
  readonly replySrc: string;
  readonly replyDst: string;
  readonly replySport: number;
  readonly replyDport: number;
  readonly unreplied: boolean;
  readonly assured: boolean;
  readonly mark: number | undefined;
  readonly zone: number | undefined;
}

/** Protocols whose tuples carry ports; a line of one of these without a full tuple is a format we do not know. */
const PORT_PROTOCOLS = new Set(['tcp', 'udp', 'udplite', 'sctp', 'dccp']);

/**
 * Parses `conntrack -L` output (conntrack-tools 1.4.x default format, also with `-o extended` or `-o id`):
 *
 *     udp      17 29 src=10.244.2.2 dst=10.96.0.53 sport=40001 dport=53 [UNREPLIED] src=10.244.1.3 dst=10.244.2.2 sport=5353 dport=40001 mark=0 zone=7 use=1
 *
 * The first src/dst/sport/dport group is the original direction, the second the reply. Lines of protocols
 * without ports (icmp) and the "flow entries have been shown" summary are ignored; a port-protocol line
 * without both tuples throws, so a format change fails loudly instead of silently hiding stale flows.
 */
export function parseConntrackList(text: string): ConntrackFlow[] {
  const flows: ConntrackFlow[] = [];
  let lineNo = 0;
  for (const raw of text.split('\n')) {
    lineNo++;
    const line = raw.trim();
    if (line === '') continue;
    const flow = parseLine(line);
    if (flow === 'ignore') continue;
    if (flow === undefined) throw new Error(`conntrack output line ${lineNo} is not a flow we can read: ${line}`);
    flows.push(flow);
  }
  return flows;
}

function parseLine(line: string): ConntrackFlow | undefined | 'ignore' {
  const tokens = line.split(/\s+/);
  let i = 0;
  // `-o extended` prefixes the layer-3 name and number.
  if (tokens[0] === 'ipv4' || tokens[0] === 'ipv6') i = 2;
  const protocol = tokens[i];
  if (protocol === undefined || !PORT_PROTOCOLS.has(protocol)) return 'ignore';

  const addrs: string[] = [];
  const ports: number[] = [];
  let unreplied = false;
  let assured = false;
  let mark: number | undefined;
  let zone: number | undefined;
  for (const token of tokens.slice(i + 1)) {
    if (token === '[UNREPLIED]') unreplied = true;
    else if (token === '[ASSURED]') assured = true;
    const eq = token.indexOf('=');
    if (eq < 0) continue;
    const key = token.slice(0, eq);
    const value = token.slice(eq + 1);
    switch (key) {
      case 'src':
      case 'dst': {
        const ip = canonicalIP(value);
        if (ip === undefined) return undefined;
        addrs.push(ip);
        break;
      }
      case 'sport':
      case 'dport': {
        const port = Number(value);
        if (!Number.isInteger(port) || port < 0 || port > 65535) return undefined;
        ports.push(port);
        break;
      }
      case 'mark':
        mark = Number(value);
        break;
      case 'zone':
        zone = Number(value);
        break;
    }
  }
  const [origSrc, origDst, replySrc, replyDst] = addrs;
  const [origSport, origDport, replySport, replyDport] = ports;
  if (
    addrs.length !== 4 ||
    ports.length !== 4 ||
    origSrc === undefined ||
    origDst === undefined ||
    replySrc === undefined ||
    replyDst === undefined ||
    origSport === undefined ||
    origDport === undefined ||
    replySport === undefined ||
    replyDport === undefined
  ) {
    return undefined;
  }
  return {
    protocol,
    origSrc,
    origDst,
    origSport,
    origDport,
    replySrc,
    replyDst,
    replySport,
    replyDport,
    unreplied,
    assured,
    mark,
    zone,
  };
}

/**
 * conntrack prints IPv4 in canonical dotted form already (the fast path); IPv6 goes through the model's
 * parser so it compares equal to the canonical text Services and endpoints are stored with.
 */
function canonicalIP(text: string): string | undefined {
  if (!text.includes(':')) return /^\d{1,3}(\.\d{1,3}){3}$/.test(text) ? text : undefined;
  return parseIP(text)?.text;
}

/** The count in conntrack's "N flow entries have been deleted." summary (stderr), if present. */
export function parseDeletedCount(stderr: string): number | undefined {
  const m = /(\d+) flow entries have been deleted/.exec(stderr);
  return m === null ? undefined : Number(m[1]);
}
