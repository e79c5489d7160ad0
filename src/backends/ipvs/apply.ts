// The I/O of IPVS mode: ipvsadm, ipset, ip and /proc/sys. The planning around it is pure (plan.ts).
import { writeFile } from 'node:fs/promises';
import { ExecaError, execa } from 'execa';
import type { IPFamily } from '../../model/ip.js';
import { ApplyError, describe, toolOutput } from '../iptables/apply.js';
import { type ConnectionCounts, type IpvsTable, type VirtualServerKey, parseIpvsadmList, parseIpvsadmSave } from './ipvsadm.js';
import { IPVS_SETS, KUBE_IPVS0 } from './plan.js';

const TIMEOUT = { timeout: 120_000 } as const;

async function run(file: string, args: string[], what: string, input?: string): Promise<string> {
  try {
    const r = await execa(file, args, { ...TIMEOUT, ...(input === undefined ? {} : { input }), maxBuffer: 1024 * 1024 * 1024 });
    return r.stdout;
  } catch (e) {
    throw new ApplyError(`${what} failed: ${describe(e, file === 'ip' ? 'iproute2' : file)}`, toolOutput(e), []);
  }
}

/** `ipvsadm -S -n`: the table in restore syntax (without -n, every address would be looked up in DNS). */
export async function readIpvsTable(): Promise<IpvsTable> {
  const text = await run('ipvsadm', ['-S', '-n'], 'ipvsadm -S -n');
  try {
    return parseIpvsadmSave(text);
  } catch (e) {
    throw new ApplyError(e instanceof Error ? e.message : String(e), '', []);
  }
}

/** Connection counters of these virtual servers, one `ipvsadm -L -n` each (or one for all when many). */
export async function readConnectionCounts(keys: readonly VirtualServerKey[]): Promise<ConnectionCounts> {
  if (keys.length === 0) return new Map();
  if (keys.length > 20) return parseIpvsadmList(await run('ipvsadm', ['-L', '-n'], 'ipvsadm -L -n'));
  const out = new Map<VirtualServerKey, ReadonlyMap<string, number>>();
  for (const key of keys) {
    const [flag, service] = key.split(' ') as [string, string];
    // Any failure fails the sync: counting a busy real server as idle would cut its connections.
    const text = await run('ipvsadm', ['-L', '-n', flag, service], `ipvsadm -L -n ${key}`);
    for (const [k, v] of parseIpvsadmList(text)) out.set(k, v);
  }
  return out;
}

/**
 * `ipvsadm -R`. It is neither atomic nor idempotent, and its exit status is that of the last line only, so
 * any complaint on stderr counts as a failure: the caller then reconciles against the kernel.
 */
export async function restoreIpvs(input: string): Promise<void> {
  if (input === '') return;
  let stderr = '';
  let failed: unknown;
  try {
    stderr = (await execa('ipvsadm', ['-R'], { ...TIMEOUT, input })).stderr;
  } catch (e) {
    failed = e;
    stderr = toolOutput(e);
  }
  if (failed !== undefined || stderr.trim() !== '') {
    throw new ApplyError(`ipvsadm -R failed: ${failed === undefined ? 'errors on stderr' : describe(failed, 'ipvsadm')}`, stderr.trim(), []);
  }
}

/** `ip -batch -`: one process for any number of address changes. */
export async function ipBatch(input: string): Promise<void> {
  if (input === '') return;
  try {
    await execa('ip', ['-batch', '-'], { ...TIMEOUT, input });
  } catch (e) {
    const output = toolOutput(e);
    // ip names the line: "Command failed -:3".
    const m = /-:(\d+)/.exec(output);
    const line = m ? input.split('\n')[Number(m[1]) - 1] : undefined;
    throw new ApplyError(`ip -batch failed: ${describe(e, 'iproute2')}`, output, line === undefined ? [] : [`${m![1]}: ${line}`]);
  }
}

/** Creates kube-ipvs0, a dummy device that only holds addresses (left down, as kube-proxy does). */
export async function ensureDevice(): Promise<void> {
  try {
    await execa('ip', ['link', 'add', KUBE_IPVS0, 'type', 'dummy'], TIMEOUT);
  } catch (e) {
    if (e instanceof ExecaError && /File exists/.test(String(e.stderr))) return;
    throw new ApplyError(`ip link add ${KUBE_IPVS0} type dummy failed: ${describe(e, 'iproute2')}`, toolOutput(e), []);
  }
}

export async function deviceExists(): Promise<boolean> {
  try {
    await execa('ip', ['link', 'show', KUBE_IPVS0], TIMEOUT);
    return true;
  } catch {
    return false;
  }
}

export async function deleteDevice(): Promise<void> {
  await run('ip', ['link', 'del', KUBE_IPVS0], `ip link del ${KUBE_IPVS0}`);
}

/** The addresses on kube-ipvs0, or undefined when the device does not exist. */
export async function readDeviceAddresses(family: IPFamily): Promise<Set<string> | undefined> {
  if (!(await deviceExists())) return undefined;
  const text = await run('ip', ['-o', family === 'IPv4' ? '-4' : '-6', 'address', 'show', 'dev', KUBE_IPVS0], `ip address show dev ${KUBE_IPVS0}`);
  const out = new Set<string>();
  for (const m of text.matchAll(/\binet6? ([^/\s]+)\//g)) out.add(m[1]!);
  return out;
}

/** Members of our sets as `ipset save` prints them; a set that does not exist is absent from the map. */
export async function readSets(): Promise<Map<string, Set<string>>> {
  const ours = new Set(IPVS_SETS.map(([name]) => name));
  const text = await run('ipset', ['save'], 'ipset save');
  const out = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const [op, name, member] = line.trim().split(/\s+/);
    if (name === undefined || !ours.has(name)) continue;
    if (op === 'create') out.set(name, out.get(name) ?? new Set());
    else if (op === 'add' && member !== undefined) out.get(name)?.add(member);
  }
  return out;
}

/** True when this kernel has IPVS (ipvsadm loads ip_vs on first use); throws with the tool's words if not. */
export async function requireIpvs(): Promise<void> {
  try {
    await execa('ipvsadm', ['-L', '-n'], TIMEOUT);
  } catch (e) {
    throw new ApplyError(`IPVS is not available (ipvsadm -L -n failed: ${describe(e, 'ipvsadm')}); is the ip_vs module loadable?`, toolOutput(e), []);
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
  for (const [path, value] of IPVS_SYSCTLS) {
    try {
      await writeFile(`/proc/sys/${path}`, value);
    } catch (e) {
      throw new ApplyError(`cannot set ${path.replaceAll('/', '.')}=${value}: ${e instanceof Error ? e.message : String(e)}`, '', []);
    }
  }
}
