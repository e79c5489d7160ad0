import { deleteLinkTool } from '../../kernel/ip.js';
import { listIpsets } from '../../kernel/ipset.js';
import { IPVSADM_RESTORE } from '../../kernel/ipvsadm.js';
import { runStep } from '../../kernel/tool.js';
import { readDeviceAddresses, readIpvsTable, readSets } from './live.js';
import { deleteVirtualServer } from './ipvsadm.js';
import { KUBE_IPVS0 } from './plan.js';
import { KUBE_IPVS_IPS } from './rules.js';

export interface IpvsCleanup {
  /** For cleanup's one-line summary, e.g. "ipvs: removed 3 virtual servers and kube-ipvs0". */
  readonly summary: string;
  /** What a dry run would run, as labelled tool inputs; '' otherwise. */
  readonly printed: string;
}

/**
 * Removes IPVS mode's virtual servers and kube-ipvs0. Ours are the virtual servers on addresses bound to
 * kube-ipvs0 or recorded in KUBE-IPVS-IPS; anyone else's IPVS services stay. With neither the device nor the
 * set there is nothing of ours, and ipvsadm is not even run (a kernel without IPVS is the common case for
 * iptables users).
 */
export async function cleanupIpvs(dryRun: boolean): Promise<IpvsCleanup> {
  const v4 = await readDeviceAddresses('IPv4');
  const v6 = v4 === undefined ? undefined : await readDeviceAddresses('IPv6');
  const recorded = (await listIpsets())?.includes(KUBE_IPVS_IPS) === true ? (await readSets()).get(KUBE_IPVS_IPS) : undefined;
  if (v4 === undefined && recorded === undefined) return { summary: 'ipvs: nothing to remove', printed: '' };
  const addresses = new Set([...(v4 ?? []), ...(v6 ?? []), ...(recorded ?? [])]);
  const table = await readIpvsTable();
  const ours = [...table.virtualServers.values()].filter((vs) => addresses.has(vs.address)).map((vs) => vs.key).sort();
  const input = ours.map(deleteVirtualServer).join('');
  const device = v4 === undefined ? '' : ` and ${KUBE_IPVS0}`;
  const what = `${ours.length} virtual server${ours.length === 1 ? '' : 's'}${device}`;
  if (dryRun) {
    const printed = (input === '' ? '' : `#### ipvsadm -R\n${input}`) + (v4 === undefined ? '' : `#### ip link del ${KUBE_IPVS0}\n`);
    return { summary: `ipvs: would remove ${what}`, printed };
  }
  await runStep({ kind: 'input', tool: IPVSADM_RESTORE, input: [input], atomic: false }, [input]);
  if (v4 !== undefined) await runStep({ kind: 'command', tool: deleteLinkTool(KUBE_IPVS0) }, []);
  return { summary: `ipvs: removed ${what}`, printed: '' };
}
