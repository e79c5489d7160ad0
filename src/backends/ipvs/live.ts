// Reading what IPVS mode needs of the kernel (through kernel/): the IPVS table, its connection counters, our
// ipsets and kube-ipvs0's addresses; and the one-time preparation (IPVS present, sysctls set).
import { ToolError } from '../../kernel/exec.js';
import { deviceAddresses } from '../../kernel/ip.js';
import { saveIpsets } from '../../kernel/ipset.js';
import { listIpvs, saveIpvs } from '../../kernel/ipvsadm.js';
import { writeSysctl } from '../../kernel/sysctl.js';
import type { IPFamily } from '../../model/ip.js';
import { type ConnectionCounts, type IpvsTable, type VirtualServerKey, parseIpvsadmList, parseIpvsadmSave } from './ipvsadm.js';
import { IPVS_SETS, KUBE_IPVS0 } from './plan.js';

/** `ipvsadm -S -n`, parsed; a table we cannot read fails the sync rather than being taken for empty. */
export async function readIpvsTable(): Promise<IpvsTable> {
  const text = await saveIpvs();
  try {
    return parseIpvsadmSave(text);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new ToolError({ code: 'UNREADABLE_OUTPUT', what: 'ipvsadm -S -n', reason, command: 'ipvsadm -S -n', cause: e });
  }
}

/** Connection counters of these virtual servers, one `ipvsadm -L -n` each (or one for all when many). */
export async function readConnectionCounts(keys: readonly VirtualServerKey[]): Promise<ConnectionCounts> {
  if (keys.length === 0) return new Map();
  if (keys.length > 20) return parseIpvsadmList(await listIpvs());
  const out = new Map<VirtualServerKey, ReadonlyMap<string, number>>();
  for (const key of keys) {
    // Any failure fails the sync: counting a busy real server as idle would cut its connections.
    for (const [k, v] of parseIpvsadmList(await listIpvs(key.split(' ')))) out.set(k, v);
  }
  return out;
}

/** The addresses on kube-ipvs0, or undefined when the device does not exist. */
export function readDeviceAddresses(family: IPFamily): Promise<Set<string> | undefined> {
  return deviceAddresses(KUBE_IPVS0, family);
}

/** Members of our sets as `ipset save` prints them; a set that does not exist is absent from the map. */
export async function readSets(): Promise<Map<string, Set<string>>> {
  const ours = new Set(IPVS_SETS.map(({ name }) => name));
  const out = new Map<string, Set<string>>();
  for (const line of (await saveIpsets()).split('\n')) {
    const [op, name, member] = line.trim().split(/\s+/);
    if (name === undefined || !ours.has(name)) continue;
    if (op === 'create') out.set(name, out.get(name) ?? new Set());
    else if (op === 'add' && member !== undefined) out.get(name)?.add(member);
  }
  return out;
}

/** Throws with the tool's words when this kernel has no IPVS (ipvsadm loads ip_vs on first use). */
export async function requireIpvs(): Promise<void> {
  try {
    await listIpvs();
  } catch (e) {
    if (!(e instanceof ToolError)) throw e;
    throw new ToolError({ code: e.code, what: 'IPVS', reason: `not available (${e.message}); is the ip_vs module loadable?`, command: e.command, stderr: e.stderr, cause: e });
  }
}

/**
 * The sysctls kube-proxy's IPVS mode sets: conntrack for IPVS flows (so masquerade and ctstate rules see
 * them), expiring connections to deleted real servers and persistence templates of drained ones, and
 * forwarding. conn_reuse_mode is left alone: only kernels before 5.9 need it changed.
 */
export const IPVS_SYSCTLS: ReadonlyArray<readonly [string, string]> = [
  ['net/ipv4/vs/conntrack', '1'],
  ['net/ipv4/vs/expire_nodest_conn', '1'],
  ['net/ipv4/vs/expire_quiescent_template', '1'],
  ['net/ipv4/ip_forward', '1'],
];

export async function setSysctls(): Promise<void> {
  for (const [path, value] of IPVS_SYSCTLS) await writeSysctl(path, value);
}
