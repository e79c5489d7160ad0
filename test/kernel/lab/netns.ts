import { existsSync } from 'node:fs';
import { run } from './run.js';

/** All lab namespaces start with this, followed by the owning pid, so stale ones can be found. */
export const NS_PREFIX = 'sbt';
const STALE_RE = /^sbt(\d+)-/;

export async function listNamespaces(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list']);
  // Lines look like "name (id: 3)" or just "name".
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

export async function addNamespace(ns: string): Promise<void> {
  await run('ip', ['netns', 'add', ns]);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
}

/** Kills every process still inside the namespace, then deletes it. Missing namespaces are fine. */
export async function deleteNamespace(ns: string): Promise<void> {
  if (!(await listNamespaces()).includes(ns)) return;
  await killNamespacePids(ns);
  await run('ip', ['netns', 'del', ns], { reject: false });
}

async function killNamespacePids(ns: string): Promise<void> {
  const pids = async (): Promise<number[]> => {
    const r = await run('ip', ['netns', 'pids', ns], { reject: false });
    return r.stdout.split(/\s+/).filter((p) => p !== '').map(Number).filter((p) => Number.isInteger(p) && p > 0);
  };
  let left = await pids();
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    if (left.length === 0) return;
    for (const pid of left) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    // A netns lingers until its last process exits, so give them a moment to die.
    for (let i = 0; i < 20 && left.length > 0; i++) {
      await sleep(50);
      left = await pids();
    }
  }
}

/**
 * Deletes namespaces left behind by crashed runs: `sbt<N>-*` where pid N no longer exists.
 * Namespaces of live processes (including concurrent runs) are left alone.
 */
export async function sweepStaleLabs(): Promise<string[]> {
  const swept: string[] = [];
  for (const ns of await listNamespaces()) {
    const m = STALE_RE.exec(ns);
    if (m === null || m[1] === undefined) continue;
    if (existsSync(`/proc/${m[1]}`)) continue;
    await deleteNamespace(ns);
    swept.push(ns);
  }
  return swept;
}

/** Writes a per-namespace sysctl (ip_forward, rp_filter, ... are all per netns). */
export async function sysctl(ns: string, key: string, value: string): Promise<void> {
  await sysctls(ns, { [key]: value });
}

/** Writes several per-namespace sysctls with one process, in order. */
export async function sysctls(ns: string, values: Readonly<Record<string, string>>): Promise<void> {
  const args = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  if (args.length > 0) await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', ...args]);
}

/**
 * Runs `ip` commands (one per line, without the leading `ip`) in one process inside `ns`; the first failing
 * line fails the whole call. Each line is parsed as by `ip` without `-4`/`-6`, so IPv6 routes say `::/0`,
 * not `default`.
 */
export async function ipBatch(ns: string, lines: readonly string[]): Promise<void> {
  await run('ip', ['-n', ns, '-batch', '-'], { input: `${lines.join('\n')}\n` });
}

/**
 * The sysctls for IPv6 in a lab namespace, to write before any interface but lo exists: IPv6 on (whatever the
 * root namespace's defaults, see net.core.devconf_inherit_init_net), and no duplicate address detection. With
 * DAD an address stays `tentative` (unusable) for a second or more after it is added; the lab's addresses are
 * unique by construction. `all` and `default` both: the kernel does DAD if either asks for it, and interfaces
 * created later (the veths) copy `default`. Every address is also added `nodad`. Written with `sysctls`, inside
 * the namespace, they touch only that namespace.
 */
export function ipv6Sysctls(opts: { forwarding: boolean }): Record<string, string> {
  return {
    'net.ipv6.conf.all.disable_ipv6': '0',
    'net.ipv6.conf.default.disable_ipv6': '0',
    'net.ipv6.conf.all.accept_dad': '0',
    'net.ipv6.conf.default.accept_dad': '0',
    // Writing all.forwarding sets it on default and on every interface too.
    ...(opts.forwarding ? { 'net.ipv6.conf.all.forwarding': '1' } : {}),
  };
}

/**
 * Gives the node namespace an `eth0` that swallows everything routed to it, IPv4 and IPv6.
 * This kernel has no `dummy` driver, so eth0 is a veth whose peer (`eth0sink`) stays in the same
 * namespace. With ARP off, frames go out addressed to eth0's own MAC (IPv6 neighbour discovery honours
 * IFF_NOARP the same way); the peer sees them as PACKET_OTHERHOST and drops them before netfilter. Net effect
 * matches a dummy: packets to unknown destinations vanish silently (no ARP/ND wait, no ICMP) and never
 * leave the namespace. Write ipv6Sysctls in the namespace first.
 */
export async function addBlackholeUplink(nodeNs: string, nodeCidr: string, nodeCidr6: string): Promise<void> {
  await ipBatch(nodeNs, [
    'link add eth0 type veth peer name eth0sink',
    'link set eth0 arp off',
    'link set eth0sink arp off',
    `addr add ${nodeCidr} dev eth0`,
    `addr add ${nodeCidr6} dev eth0 nodad`,
    'link set eth0sink up',
    'link set eth0 up',
    'route add 0.0.0.0/0 dev eth0',
    'route add ::/0 dev eth0',
  ]);
}

/**
 * Point-to-point pod wiring as a Calico/ptp CNI does it, in both families: the host-side veth carries the
 * node IPs as /32 and /128 (the same addresses on every host veth), the pod reaches the node IPs on-link and
 * uses them as default gateways, and the node routes the pod /32 and /128 to the host veth.
 * The veth is created directly in the node ns with its peer born as `eth0` in the pod ns, so no
 * interface ever appears in the root namespace. Write ipv6Sysctls in both namespaces first, so neither
 * end (nor its link-local address) goes through DAD.
 */
export async function wirePod(p: {
  nodeNs: string;
  podNs: string;
  hostVeth: string;
  nodeIP: string;
  nodeIP6: string;
  podIP: string;
  podIP6: string;
}): Promise<void> {
  const { nodeNs, podNs, hostVeth, nodeIP, nodeIP6, podIP, podIP6 } = p;
  await ipBatch(nodeNs, [
    `link add ${hostVeth} type veth peer name eth0 netns ${podNs}`,
    `addr add ${nodeIP}/32 dev ${hostVeth}`,
    `addr add ${nodeIP6}/128 dev ${hostVeth} nodad`,
    `link set ${hostVeth} up`,
  ]);
  await ipBatch(podNs, [
    `addr add ${podIP}/32 dev eth0`,
    `addr add ${podIP6}/128 dev eth0 nodad`,
    'link set eth0 up',
    `route add ${nodeIP} dev eth0 scope link`,
    `route add 0.0.0.0/0 via ${nodeIP} dev eth0`,
    `route add ${nodeIP6}/128 dev eth0`,
    `route add ::/0 via ${nodeIP6} dev eth0`,
  ]);
  await ipBatch(nodeNs, [`route add ${podIP}/32 dev ${hostVeth}`, `route add ${podIP6}/128 dev ${hostVeth}`]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
