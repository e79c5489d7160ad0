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
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
}

/**
 * Gives the node namespace an `eth0` that swallows everything routed to it.
 * This kernel has no `dummy` driver, so eth0 is a veth whose peer (`eth0sink`) stays in the same
 * namespace. With ARP off, frames go out addressed to eth0's own MAC; the peer sees them as
 * PACKET_OTHERHOST and ip_rcv drops them before netfilter. Net effect matches a dummy: packets to
 * unknown destinations vanish silently (no ARP wait, no ICMP) and never leave the namespace.
 */
export async function addBlackholeUplink(nodeNs: string, nodeCidr: string): Promise<void> {
  await run('ip', ['-n', nodeNs, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0sink']);
  await run('ip', ['-n', nodeNs, 'link', 'set', 'eth0', 'arp', 'off']);
  await run('ip', ['-n', nodeNs, 'link', 'set', 'eth0sink', 'arp', 'off']);
  await run('ip', ['-n', nodeNs, 'addr', 'add', nodeCidr, 'dev', 'eth0']);
  await run('ip', ['-n', nodeNs, 'link', 'set', 'eth0sink', 'up']);
  await run('ip', ['-n', nodeNs, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', nodeNs, 'route', 'add', 'default', 'dev', 'eth0']);
}

/**
 * Point-to-point pod wiring as a Calico/ptp CNI does it: the host-side veth carries the node IP
 * as /32 (the same address on every host veth), the pod reaches the node IP on-link and uses it
 * as default gateway, and the node routes the pod /32 to the host veth.
 * The veth is created directly in the node ns with its peer born as `eth0` in the pod ns, so no
 * interface ever appears in the root namespace.
 */
export async function wirePod(p: {
  nodeNs: string;
  podNs: string;
  hostVeth: string;
  nodeIP: string;
  podIP: string;
}): Promise<void> {
  const { nodeNs, podNs, hostVeth, nodeIP, podIP } = p;
  await run('ip', ['-n', nodeNs, 'link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNs]);
  await run('ip', ['-n', nodeNs, 'addr', 'add', `${nodeIP}/32`, 'dev', hostVeth]);
  await run('ip', ['-n', nodeNs, 'link', 'set', hostVeth, 'up']);
  await run('ip', ['-n', podNs, 'addr', 'add', `${podIP}/32`, 'dev', 'eth0']);
  await run('ip', ['-n', podNs, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', podNs, 'route', 'add', nodeIP, 'dev', 'eth0', 'scope', 'link']);
  await run('ip', ['-n', podNs, 'route', 'add', 'default', 'via', nodeIP, 'dev', 'eth0']);
  await run('ip', ['-n', nodeNs, 'route', 'add', `${podIP}/32`, 'dev', hostVeth]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
