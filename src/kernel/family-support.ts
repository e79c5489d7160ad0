// Whether this network namespace can be programmed in a family, as kube-proxy's platformCheckSupported asks
// before it runs dual-stack: IPv6 needs the kernel's IPv6 stack (absent when booted with ipv6.disable=1), and the
// iptables and IPVS modes need that family's iptables to work.
import { access } from 'node:fs/promises';
import type { IPFamily } from '../model/ip.js';
import { ToolError, probeTool } from './exec.js';
import type { IptablesTools } from './iptables.js';

export type FamilySupport = { readonly ok: true } | { readonly ok: false; readonly why: string };

/** `iptables`: the family's tools when the backend writes iptables rules (iptables, IPVS), else undefined. */
export async function familySupport(family: IPFamily, iptables: IptablesTools | undefined): Promise<FamilySupport> {
  if (family === 'IPv6') {
    try {
      await access('/proc/net/if_inet6');
    } catch {
      return { ok: false, why: 'the kernel has no IPv6 (/proc/net/if_inet6 is missing)' };
    }
  }
  if (iptables === undefined) return { ok: true };
  try {
    const r = await probeTool({ file: iptables.iptables, args: ['-w', '5', '-t', 'nat', '-S', 'POSTROUTING'], pkg: 'iptables', timeoutMs: 30_000 });
    if (r === undefined) return { ok: false, why: `${iptables.iptables} cannot read the nat table` };
    return { ok: true };
  } catch (e) {
    return { ok: false, why: e instanceof ToolError ? e.message : String(e) };
  }
}
