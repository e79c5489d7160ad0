import { deleteDevice, readDeviceAddresses, readIpvsTable, restoreIpvs } from './apply.js';
import { deleteVirtualServer } from './ipvsadm.js';
import { KUBE_IPVS0 } from './plan.js';

export interface IpvsCleanup {
  /** For cleanup's one-line summary, e.g. "ipvs: removed 3 virtual servers and kube-ipvs0". */
  readonly summary: string;
  /** What a dry run would run, as labelled tool inputs; '' otherwise. */
  readonly printed: string;
}

/**
 * Removes IPVS mode's virtual servers and kube-ipvs0. Ours are the virtual servers on addresses bound to
 * kube-ipvs0; anyone else's IPVS services stay. Without the device there is nothing of ours, and ipvsadm
 * is not even run (a kernel without IPVS is the common case for iptables users).
 */
export async function cleanupIpvs(dryRun: boolean): Promise<IpvsCleanup> {
  const v4 = await readDeviceAddresses('IPv4');
  if (v4 === undefined) return { summary: 'ipvs: nothing to remove', printed: '' };
  const addresses = new Set([...v4, ...((await readDeviceAddresses('IPv6')) ?? [])]);
  const table = await readIpvsTable();
  const ours = [...table.virtualServers.values()].filter((vs) => addresses.has(vs.address)).map((vs) => vs.key).sort();
  const input = ours.map(deleteVirtualServer).join('');
  const what = `${ours.length} virtual server${ours.length === 1 ? '' : 's'} and ${KUBE_IPVS0}`;
  if (dryRun) {
    return { summary: `ipvs: would remove ${what}`, printed: `#### ipvsadm -R\n${input}#### ip link del ${KUBE_IPVS0}\n` };
  }
  await restoreIpvs(input);
  await deleteDevice();
  return { summary: `ipvs: removed ${what}`, printed: '' };
}
