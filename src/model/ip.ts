import { isIPv6 } from 'node:net';
// Validator alone: the package's index re-exports every module, which an ES import makes Node parse (0.1 s at start).
import { Validator } from 'ip-num/dist/src/Validator.js';

/** The address families a proxier can program; each proxier instance serves exactly one. */
export type IPFamily = 'IPv4' | 'IPv6';

export const ALL_FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

/**
 * Parses an IPv4 address the way Go's netutils.ParseIPSloppy does (kube-proxy's parser): leading zeros
 * are decimal, so "172.30.0.041" is 172.30.0.41. Returns the canonical text or undefined.
 */
function parseIPv4Sloppy(text: string): string | undefined {
  // Hand-rolled: this runs for every endpoint of every slice (100,000 at 10,000 services). The input string
  // itself is returned when it is already canonical (no leading zeros), so no new string is built.
  const octets: number[] = [];
  let octet = 0;
  let digits = 0;
  let leadingZero = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (++digits > 3) return undefined;
      if (digits === 2 && octet === 0) leadingZero = true;
      octet = octet * 10 + (c - 48);
    } else if (c === 46) {
      if (digits === 0 || octet > 255 || octets.length === 3) return undefined;
      octets.push(octet);
      octet = 0;
      digits = 0;
    } else return undefined;
  }
  if (octets.length !== 3 || digits === 0 || octet > 255) return undefined;
  if (!leadingZero) return text;
  octets.push(octet);
  return octets.join('.');
}

/** Canonical (RFC 5952, lower case, compressed) IPv6 text; the WHATWG URL serializer implements exactly that. */
function parseIPv6(text: string): string | undefined {
  if (!isIPv6(text) || text.includes('%')) return undefined;
  const host = new URL(`http://[${text}]/`).hostname;
  return host.slice(1, -1);
}

export interface ParsedIP {
  readonly family: IPFamily;
  /** Canonical text, as kube-proxy prints it in rules. */
  readonly text: string;
}

export function parseIP(text: string): ParsedIP | undefined {
  const v4 = parseIPv4Sloppy(text);
  if (v4 !== undefined) return { family: 'IPv4', text: v4 };
  const v6 = parseIPv6(text);
  if (v6 !== undefined) return { family: 'IPv6', text: v6 };
  return undefined;
}

/**
 * A canonical IPv4 address as one unsigned 32-bit number, for compact keys; undefined for anything else (IPv6,
 * including IPv4-mapped forms, stays text).
 */
export function ipv4Number(ip: string): number | undefined {
  // Canonical dotted decimal is read in place (this runs for every endpoint of every policy chain: a split
  // into four strings each was 60 ms of a 10,000 x 10 compile); anything else takes the general path below.
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c >= 48 && c <= 57 && digits < 3) {
      octet = octet * 10 + (c - 48);
      digits++;
    } else if (c === 46 && digits > 0 && octet <= 255 && dots < 3) {
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else {
      dots = -1;
      break;
    }
  }
  if (dots === 3 && digits > 0 && octet <= 255) return value * 256 + octet;
  const octets = ip.split('.');
  if (octets.length !== 4 || ip.includes(':')) return undefined;
  return ((Number(octets[0]) << 24) | (Number(octets[1]) << 16) | (Number(octets[2]) << 8) | Number(octets[3])) >>> 0;
}

/** "ip:port" as Go's net.JoinHostPort prints it: IPv6 addresses are bracketed. */
export function joinHostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export interface Cidr {
  readonly family: IPFamily;
  readonly text: string;
}

/** Validates a CIDR strictly (no host bits set), since a typo here silently changes who gets masqueraded. */
export function parseCidr(text: string): Cidr | { error: string } {
  const slash = text.indexOf('/');
  if (slash < 0) return { error: `"${text}" is not a CIDR (expected address/prefix)` };
  const ip = parseIP(text.slice(0, slash));
  if (ip === undefined) return { error: `"${text}" is not a CIDR: bad address` };
  const canonical = `${ip.text}${text.slice(slash)}`;
  const [ok, messages] =
    ip.family === 'IPv4' ? Validator.isValidIPv4CidrRange(canonical) : Validator.isValidIPv6CidrRange(canonical);
  if (!ok) return { error: `"${text}" is not a valid ${ip.family} CIDR: ${messages.join('; ')}` };
  return { family: ip.family, text: canonical };
}

/** An address as a number of its family's width (bigint for both, so one code path masks either). */
function ipBits(ip: ParsedIP): bigint {
  if (ip.family === 'IPv4') return BigInt(ipv4Number(ip.text)!);
  const [head, tail] = ip.text.includes('::') ? ip.text.split('::') : [ip.text, undefined];
  const left = head === '' ? [] : head!.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups: string[] = [];
  for (const part of [...left, ...(tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0')), ...right]) {
    // An IPv4 tail (::ffff:1.2.3.4) is two groups.
    if (part.includes('.')) {
      const v4 = ipv4Number(part)!;
      groups.push(((v4 >>> 16) & 0xffff).toString(16), (v4 & 0xffff).toString(16));
    } else groups.push(part);
  }
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function bitsText(bits: bigint, family: IPFamily): string {
  if (family === 'IPv4') return [24n, 16n, 8n, 0n].map((s) => ((bits >> s) & 255n).toString()).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((bits >> s) & 0xffffn).toString(16));
  return parseIP(groups.join(':'))!.text;
}

/** A CIDR read as upstream's ParseCIDRSloppy then IPNet.String(): leading zeros allowed, host bits masked off. */
export interface MaskedCidr extends Cidr {
  readonly prefix: number;
  readonly network: bigint;
}

/** Lenient, as kube-proxy reads loadBalancerSourceRanges and --nodeport-addresses: undefined when unparseable. */
export function parseCidrMasked(text: string): MaskedCidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIP(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (ip === undefined || !/^[0-9]{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const width = ip.family === 'IPv4' ? 32 : 128;
  if (prefix > width) return undefined;
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(width - prefix);
  const network = ipBits(ip) & mask;
  return { family: ip.family, text: `${bitsText(network, ip.family)}/${prefix}`, prefix, network };
}

/** True if `ip` (canonical or sloppy text) lies inside `cidr`. */
export function cidrContains(cidr: MaskedCidr, ip: string): boolean {
  const parsed = parseIP(ip);
  if (parsed === undefined || parsed.family !== cidr.family) return false;
  const width = cidr.family === 'IPv4' ? 32 : 128;
  return ipBits(parsed) >> BigInt(width - cidr.prefix) === cidr.network >> BigInt(width - cidr.prefix);
}

/** Node IPs: the given ones (`--node-ip`), then the Node's addresses of the families none was given for. */
export function mergeNodeIPs(given: readonly string[], fromNode: readonly string[]): string[] {
  const givenFamilies = new Set(given.map((ip) => parseIP(ip)?.family));
  return [...given, ...fromNode.filter((ip) => !givenFamilies.has(parseIP(ip)?.family))];
}
