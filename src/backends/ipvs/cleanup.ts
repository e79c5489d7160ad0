import { deleteLinkTool } from '../../kernel/ip.js';
import { listIpsets } from '../../kernel/ipset.js';
import { IPVSADM_RESTORE } from '../../kernel/ipvsadm.js';
import type { Step } from '../../kernel/tool.js';
import { type BackendCleanup, nothingToRemove } from '../backend.js';
import { deleteVirtualServer } from './ipvsadm.js';
import { readDeviceAddresses, readIpvsTable, readSets } from './live.js';
import { KUBE_IPVS0 } from './plan.js';
import { IPVS_SET_NAMES, KUBE_IPVS_IPS, isNodePortVirtualServer } from './sets.js';

/**
 * Removes IPVS mode's virtual servers and kube-ipvs0 (its iptables rules go with the iptables cleanup, its sets
 * with the ipsets). Ours are the virtual servers on addresses bound to kube-ipvs0 or recorded in KUBE-IPVS-IPS,
 * and NodePort ones whose port is in our NodePort sets; anyone else's IPVS services stay. With neither the device
 * nor the set there is nothing of ours, and ipvsadm is not even run (a kernel without IPVS is the common case for
 * iptables users).
 */
export const IPVS_CLEANUP: BackendCleanup = {
  stages: [
    {
      name: 'ipvs',
      bestEffort: false,
      async plan() {
        const v4 = await readDeviceAddresses('IPv4');
        const v6 = v4 === undefined ? undefined : await readDeviceAddresses('IPv6');
        const sets = (await listIpsets())?.includes(KUBE_IPVS_IPS) === true ? await readSets() : undefined;
        const recorded = sets?.get(KUBE_IPVS_IPS);
        if (v4 === undefined && recorded === undefined) return nothingToRemove();
        const addresses = new Set([...(v4 ?? []), ...(v6 ?? []), ...(recorded ?? [])]);
        const table = await readIpvsTable();
        const ours = [...table.virtualServers.values()].filter((vs) => addresses.has(vs.address) || (sets !== undefined && isNodePortVirtualServer(vs, sets))).map((vs) => vs.key).sort();
        const steps: Step[] = [];
        if (ours.length > 0) steps.push({ kind: 'input', tool: IPVSADM_RESTORE, input: [ours.map(deleteVirtualServer).join('')], atomic: false });
        if (v4 !== undefined) steps.push({ kind: 'command', tool: deleteLinkTool(KUBE_IPVS0) });
        const what = `${ours.length} virtual server${ours.length === 1 ? '' : 's'}${v4 === undefined ? '' : ` and ${KUBE_IPVS0}`}`;
        return { steps, done: `removed ${what}`, wouldDo: `would remove ${what}` };
      },
    },
  ],
  sets: IPVS_SET_NAMES,
};
