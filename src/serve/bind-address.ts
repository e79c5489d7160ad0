// --healthz-bind-address / --metrics-bind-address as kube-proxy reads them: "IP:port" or
// "[IPv6]:port"; a bare IP gets the server's default port (upstream AppendPortIfNeeded); the
// port must be 1-65535 (upstream validateHostPort); host names are not accepted. Empty disables
// the server. (Upstream's flag parser actually ignores an empty value and keeps the default; we
// follow its documented "Set empty to disable" instead.)
import { isIP } from 'node:net';

export interface BindAddress {
  /** Literal IP, IPv6 without brackets, ready for net.Server#listen. */
  host: string;
  port: number;
}

export const DEFAULT_HEALTHZ_PORT = 10256;
export const DEFAULT_METRICS_PORT = 10249;

export interface ParseBindAddressOptions {
  /** Accept port 0 (an ephemeral port); for tests, kube-proxy rejects it. */
  allowEphemeralPort?: boolean;
}

export function parseBindAddress(value: string, defaultPort: number, opts: ParseBindAddressOptions = {}): BindAddress | null {
  if (value === '') return null;
  const bad = (why: string) => new Error(`bind address ${JSON.stringify(value)}: ${why}`);

  if (isLiteralIP(value)) return { host: value, port: defaultPort };

  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) throw bad('missing "]" after the IPv6 address');
    host = value.slice(1, close);
    if (value[close + 1] !== ':') throw bad('expected ":port" after "]"');
    portText = value.slice(close + 2);
    if (isIP(host) !== 6 || host.includes('%')) throw bad(`${JSON.stringify(host)} is not a valid IPv6 address`);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) throw bad('not an IP or IP:port');
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) throw bad('an IPv6 address with a port must be written [IP]:port');
    if (isIP(host) !== 4) throw bad(`${JSON.stringify(host)} is not a valid IP address`);
  }

  if (!/^\d{1,5}$/.test(portText)) throw bad(`port ${JSON.stringify(portText)} is not a number`);
  const port = Number(portText);
  const min = opts.allowEphemeralPort === true ? 0 : 1;
  if (port < min || port > 65535) throw bad(`port ${port} is out of range ${min}-65535`);
  return { host, port };
}

/** Formats an address back as kube-proxy prints it, e.g. "[::]:10256". */
export function formatBindAddress(addr: BindAddress): string {
  return isIP(addr.host) === 6 ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

function isLiteralIP(s: string): boolean {
  // Zones ("fe80::1%eth0") are not IPs to Go's net.ParseIP.
  return isIP(s) !== 0 && !s.includes('%');
}
