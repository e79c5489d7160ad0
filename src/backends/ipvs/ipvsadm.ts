// The IPVS table as ipvsadm reads and writes it: `ipvsadm -S -n` (save) and `ipvsadm -R` (restore) lines, and
// the connection counters of `ipvsadm -L -n`. Pure text in, values out.

export type IpvsProtocol = 'tcp' | 'udp' | 'sctp';

const SERVICE_FLAG: Record<IpvsProtocol, string> = { tcp: '-t', udp: '-u', sctp: '--sctp-service' };
const FLAG_PROTOCOL: Readonly<Record<string, IpvsProtocol>> = {
  '-t': 'tcp',
  '--tcp-service': 'tcp',
  '-u': 'udp',
  '--udp-service': 'udp',
  '--sctp-service': 'sctp',
};

/** A virtual server's identity as ipvsadm names it on every line: `-t 10.96.0.10:80`. */
export type VirtualServerKey = string & { readonly __brand: 'VirtualServerKey' };

export function virtualServerKey(protocol: IpvsProtocol, address: string, port: number): VirtualServerKey {
  const host = address.includes(':') ? `[${address}]` : address;
  return `${SERVICE_FLAG[protocol]} ${host}:${port}` as VirtualServerKey;
}

/** What a virtual server is besides its real servers: the options `-A`/`-E` set. */
export interface VirtualServerOptions {
  readonly scheduler: string;
  /** `sessionAffinity: ClientIP`: persistence for this many seconds; undefined when not persistent. */
  readonly persistenceSeconds: number | undefined;
}

export interface VirtualServer extends VirtualServerOptions {
  readonly key: VirtualServerKey;
  readonly protocol: IpvsProtocol;
  readonly address: string;
  readonly port: number;
}

/** A real server (`-r ip:port`) with its weight; forwarding is always masquerade (`-m`) for Services. */
export interface RealServer {
  /** `ip:port` (IPv6 bracketed) as ipvsadm prints it. */
  readonly hostPort: string;
  readonly weight: number;
}

/** A table: virtual servers with their real servers by hostPort. */
export interface IpvsTable {
  readonly virtualServers: ReadonlyMap<VirtualServerKey, VirtualServer>;
  readonly realServers: ReadonlyMap<VirtualServerKey, ReadonlyMap<string, RealServer>>;
}

export const EMPTY_IPVS_TABLE: IpvsTable = { virtualServers: new Map(), realServers: new Map() };

function options(vs: VirtualServerOptions): string {
  // Always explicit: ipvsadm's defaults (wlc; -E without -p turns persistence off) are not ours.
  return ` -s ${vs.scheduler}${vs.persistenceSeconds === undefined ? '' : ` -p ${vs.persistenceSeconds}`}`;
}

export const addVirtualServer = (vs: VirtualServer): string => `-A ${vs.key}${options(vs)}\n`;
export const editVirtualServer = (vs: VirtualServer): string => `-E ${vs.key}${options(vs)}\n`;
export const deleteVirtualServer = (key: VirtualServerKey): string => `-D ${key}\n`;
// -m and -w on every -a/-e line: ipvsadm would otherwise default to direct routing and weight 1.
export const addRealServer = (key: VirtualServerKey, rs: RealServer): string => `-a ${key} -r ${rs.hostPort} -m -w ${rs.weight}\n`;
export const editRealServer = (key: VirtualServerKey, rs: RealServer): string => `-e ${key} -r ${rs.hostPort} -m -w ${rs.weight}\n`;
export const deleteRealServer = (key: VirtualServerKey, hostPort: string): string => `-d ${key} -r ${hostPort}\n`;

/** Splits `10.0.0.1:80` / `[fd00::1]:80` into address and port; undefined if malformed. */
function splitHostPort(text: string): { address: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (m === null) return undefined;
  return { address: m[1]!, port: Number(m[2]) };
}

/**
 * Parses `ipvsadm -S -n` output. Firewall-mark services (`-f`) are not ours and are skipped, with their
 * real servers. Throws on a line it cannot read: a reconcile must not act on a table it misunderstood.
 */
export function parseIpvsadmSave(text: string): IpvsTable {
  const virtualServers = new Map<VirtualServerKey, VirtualServer>();
  const realServers = new Map<VirtualServerKey, Map<string, RealServer>>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const t = line.split(/\s+/);
    const command = t[0];
    if (command !== '-A' && command !== '-a') throw new Error(`ipvsadm -S: unexpected line: ${line}`);
    if (t[1] === '-f' || t[1] === '--fwmark-service') continue;
    const protocol = FLAG_PROTOCOL[t[1] ?? ''];
    const where = splitHostPort(t[2] ?? '');
    if (protocol === undefined || where === undefined) throw new Error(`ipvsadm -S: unexpected service in: ${line}`);
    const key = virtualServerKey(protocol, where.address, where.port);
    const arg = (flag: string): string | undefined => {
      const i = t.indexOf(flag, 3);
      return i < 0 ? undefined : t[i + 1];
    };
    if (command === '-A') {
      const persistence = arg('-p');
      virtualServers.set(key, {
        key,
        protocol,
        address: where.address,
        port: where.port,
        scheduler: arg('-s') ?? 'wlc',
        persistenceSeconds: persistence === undefined ? undefined : Number(persistence),
      });
    } else {
      const hostPort = arg('-r');
      if (hostPort === undefined || splitHostPort(hostPort) === undefined) throw new Error(`ipvsadm -S: unexpected real server in: ${line}`);
      let reals = realServers.get(key);
      if (reals === undefined) realServers.set(key, (reals = new Map()));
      reals.set(hostPort, { hostPort, weight: Number(arg('-w') ?? '1') });
    }
  }
  return { virtualServers, realServers };
}

/** Active plus inactive connections (IPVS keeps TIME_WAIT and FIN_WAIT entries as inactive). */
export type ConnectionCounts = ReadonlyMap<VirtualServerKey, ReadonlyMap<string, number>>;

const LIST_PROTOCOL: Readonly<Record<string, IpvsProtocol>> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

/**
 * Parses `ipvsadm -L -n` for the connection counters, which the save format lacks:
 * `TCP  10.96.0.10:80 rr` then `  -> 10.244.1.2:8080   Masq  1  0  3`.
 */
export function parseIpvsadmList(text: string): ConnectionCounts {
  const out = new Map<VirtualServerKey, Map<string, number>>();
  let current: Map<string, number> | undefined;
  for (const raw of text.split('\n')) {
    const t = raw.trim().split(/\s+/);
    const protocol = LIST_PROTOCOL[t[0] ?? ''];
    if (protocol !== undefined) {
      const where = splitHostPort(t[1] ?? '');
      current = undefined;
      if (where === undefined) continue;
      current = new Map();
      out.set(virtualServerKey(protocol, where.address, where.port), current);
    } else if (t[0] === '->') {
      if (current === undefined || t.length < 6 || splitHostPort(t[1] ?? '') === undefined) continue;
      const active = Number(t[4]);
      const inactive = Number(t[5]);
      if (Number.isFinite(active) && Number.isFinite(inactive)) current.set(t[1]!, active + inactive);
    } else {
      // Any other line (an FWM service, a header) ends the current service's real servers.
      current = undefined;
    }
  }
  return out;
}
