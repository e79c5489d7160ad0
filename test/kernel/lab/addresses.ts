import { isIPv4, isIPv6 } from 'node:net';

/**
 * The lab's IPv6 address for an IPv4 one: `a.b.c.d` becomes `fd00:a:b:c::d`, the decimal octets written as
 * they are (read as hex groups), so the two addresses look alike in dumps and the IPv4 prefixes carry over:
 * 10.0.0.10 is fd00:10::10 (its /24 the /64 fd00:10::/64), 10.244.1.2 is fd00:10:244:1::2 (10.244.0.0/16 is
 * fd00:10:244::/48), 192.168.50.2 is fd00:192:168:50::2. Injective, so distinct IPv4 addresses never share
 * an IPv6 one. fd00::/8 is the ULA range: never routed outside a site, and the lab's namespaces are the site.
 */
export function mirrorIPv6(ipv4: string): string {
  if (!isIPv4(ipv4)) throw new Error(`${ipv4} is not an IPv4 address`);
  const [a, b, c, d] = ipv4.split('.');
  return canonicalIPv6(`fd00:${a!}:${b!}:${c!}::${d!}`);
}

/**
 * The RFC 5952 text of an IPv6 address (lowercase, no leading zeros, the first longest run of zero groups as
 * `::`): the form Node reports peers in (`socket.remoteAddress`, `rinfo.address`), so lab addresses compare
 * equal to what the echo servers see. WHATWG URL serialises hosts exactly so.
 */
export function canonicalIPv6(ip: string): string {
  if (!isIPv6(ip) || ip.includes('.') || ip.includes('%')) {
    throw new Error(`${ip} is not an IPv6 address (without an embedded IPv4 part or a zone)`);
  }
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}
