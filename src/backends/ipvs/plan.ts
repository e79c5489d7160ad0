// Diffing IPVS mode's desired state against what the kernel holds (read on a full sync, remembered from the
// last successful sync otherwise) into the inputs of ipset, ip, iptables-restore and ipvsadm. Pure.
import type { IPFamily } from '../../model/ip.js';
import type { IpvsFragment } from './fragment.js';
import {
  type ConnectionCounts,
  type IpvsTable,
  type RealServer,
  type VirtualServer,
  type VirtualServerKey,
  addRealServer,
  addVirtualServer,
  deleteRealServer,
  deleteVirtualServer,
  editRealServer,
  editVirtualServer,
} from './ipvsadm.js';
import { type IpvsRulesBody, sameRulesBody } from './rules.js';
import { IPVS_SETS, KUBE_IPVS_IPS, createIpvsSetLine, isNodePortVirtualServer } from './sets.js';

export { IPVS_SETS };

/** The dummy device that holds every ClusterIP, as kube-proxy names it. */
export const KUBE_IPVS0 = 'kube-ipvs0';

/** What the node holds of IPVS mode's state, read from it or remembered. */
export interface IpvsKernelState {
  readonly table: IpvsTable;
  /** Addresses on kube-ipvs0; undefined when the device does not exist. */
  readonly addresses: ReadonlySet<string> | undefined;
  /** Members per set; a set that does not exist is absent. */
  readonly sets: ReadonlyMap<string, ReadonlySet<string>>;
  /** The iptables ruleset body last applied; undefined when unknown (a full sync always writes it). */
  readonly rulesBody: IpvsRulesBody | undefined;
}

export const UNKNOWN_KERNEL_STATE: IpvsKernelState = {
  table: { virtualServers: new Map(), realServers: new Map() },
  addresses: undefined,
  sets: new Map(),
  rulesBody: undefined,
};

export interface IpvsDesired {
  readonly table: IpvsTable;
  /** Addresses bound to kube-ipvs0; a virtual server on one of them belongs to a Service that exists. */
  readonly addresses: ReadonlySet<string>;
  /** The NodePort addresses (the node's own, never bound): virtual servers on them are ours too. */
  readonly nodePortAddresses: ReadonlySet<string>;
  /** Virtual servers of existing service ports without real servers now: kept while connections drain. */
  readonly idle: ReadonlySet<VirtualServerKey>;
  readonly sets: ReadonlyMap<string, ReadonlySet<string>>;
  readonly rulesBody: IpvsRulesBody;
}

/**
 * The desired state of all Services, from their fragments; `rulesBody` gets the sets that have members (the
 * rules matching a set are written only then).
 */
export function desiredState(
  fragments: Iterable<IpvsFragment>,
  nodePortAddresses: ReadonlySet<string>,
  rulesBody: (nonEmpty: ReadonlySet<string>) => IpvsRulesBody,
): IpvsDesired {
  const virtualServers = new Map<VirtualServerKey, VirtualServer>();
  const realServers = new Map<VirtualServerKey, Map<string, RealServer>>();
  const addresses = new Set<string>();
  const idle = new Set<VirtualServerKey>();
  const sets = new Map<string, Set<string>>();
  for (const f of fragments) {
    for (const a of f.addresses) addresses.add(a);
    for (const k of f.idle) idle.add(k);
    for (const [set, m] of f.members) {
      let s = sets.get(set);
      if (s === undefined) sets.set(set, (s = new Set()));
      s.add(m);
    }
    for (const { vs, reals } of f.virtualServers) {
      virtualServers.set(vs.key, vs);
      realServers.set(vs.key, new Map(reals.map((r) => [r.hostPort, r])));
    }
  }
  const nonEmpty = new Set([...sets].filter(([, s]) => s.size > 0).map(([name]) => name));
  return { table: { virtualServers, realServers }, addresses, nodePortAddresses, idle, sets, rulesBody: rulesBody(nonEmpty) };
}

/**
 * The part of the node's IPVS table that is ours: virtual servers on `owned` addresses (bound to kube-ipvs0,
 * recorded in KUBE-IPVS-IPS, or wanted now, NodePort addresses included), and NodePort ones by our NodePort
 * `sets` on any address, so a NodePort left on an address that is no longer a NodePort address (another
 * --nodeport-addresses, or an address the node lost) is removed. Anyone else's virtual servers are left out.
 */
export function ourVirtualServers(all: IpvsTable, owned: ReadonlySet<string>, sets: ReadonlyMap<string, ReadonlySet<string>>): IpvsTable {
  const virtualServers = new Map<VirtualServerKey, VirtualServer>();
  for (const [key, vs] of all.virtualServers) if (owned.has(vs.address) || isNodePortVirtualServer(vs, sets)) virtualServers.set(key, vs);
  return { virtualServers, realServers: new Map([...all.realServers].filter(([key]) => virtualServers.has(key))) };
}

/** Whether a virtual server belongs to a Service port that still exists (it drains rather than going at once). */
function serviceExists(desired: IpvsDesired, vs: VirtualServer): boolean {
  return desired.addresses.has(vs.address) || desired.idle.has(vs.key) || desired.table.virtualServers.has(vs.key);
}

/** The inputs of one sync, in the order they are applied, and the state they leave behind. */
export interface IpvsPlan {
  /** kube-ipvs0 must be created first. */
  readonly createDevice: boolean;
  /** `ipset restore -exist` input run first: set creation and new members. */
  readonly ipsetAdds: string;
  /** iptables-restore --noflush input, or undefined when the ruleset is unchanged. */
  readonly rules: string | undefined;
  /** `ip -batch` input: addresses bound before any virtual server uses them. */
  readonly addressAdds: string;
  /** `ipvsadm -R` input. */
  readonly ipvsadm: string;
  /** `ip -batch` input: addresses no virtual server needs any more. */
  readonly addressDels: string;
  /** `ipset restore -exist` input run last: members nothing needs any more. */
  readonly ipsetDels: string;
  /** The kernel's state once every step succeeded. */
  readonly after: IpvsKernelState;
  /** True when nothing is to be done. */
  readonly empty: boolean;
}

/**
 * Virtual servers that would lose a TCP real server: the caller reads their connection counters (ipvsadm -L)
 * before planning, since a real server with connections is drained, not deleted.
 */
export function needsCounts(desired: IpvsDesired, observed: IpvsKernelState): VirtualServerKey[] {
  const out: VirtualServerKey[] = [];
  for (const [key, vs] of observed.table.virtualServers) {
    // UDP and SCTP are never drained; a deleted Service's virtual servers go whatever their connections.
    if (vs.protocol !== 'tcp' || !serviceExists(desired, vs)) continue;
    const want = desired.table.realServers.get(key);
    const have = observed.table.realServers.get(key) ?? new Map<string, RealServer>();
    for (const hostPort of have.keys()) {
      if (want?.has(hostPort) !== true) {
        out.push(key);
        break;
      }
    }
  }
  return out.sort();
}

/**
 * The difference between `observed` and `desired`, with kube-proxy's graceful termination: a TCP real server
 * that goes away while it still has connections is set to weight 0 (no new connections, existing ones
 * continue) and deleted by a later sync once `counts` shows none; UDP and SCTP ones are deleted at once. A
 * port that loses every endpoint keeps its virtual server while any real server drains; a deleted Service's
 * virtual servers go at once.
 * `rulesPayload` turns the ruleset body into the restore input (jumps depend on the live tables).
 */
export function planIpvs(
  desired: IpvsDesired,
  observed: IpvsKernelState,
  counts: ConnectionCounts,
  family: IPFamily,
  rulesPayload: (body: IpvsRulesBody) => string,
): IpvsPlan {
  const serviceLines: string[] = [];
  const realLines: string[] = [];
  const drainLines: string[] = [];
  const removeLines: string[] = [];
  const afterVs = new Map<VirtualServerKey, VirtualServer>();
  const afterReals = new Map<VirtualServerKey, Map<string, RealServer>>();
  const keys = [...new Set([...desired.table.virtualServers.keys(), ...observed.table.virtualServers.keys()])].sort();
  const connections = (key: VirtualServerKey, hostPort: string): number => counts.get(key)?.get(hostPort) ?? 0;

  for (const key of keys) {
    const want = desired.table.virtualServers.get(key);
    const have = observed.table.virtualServers.get(key);
    const wantReals = desired.table.realServers.get(key) ?? new Map<string, RealServer>();
    const haveReals = observed.table.realServers.get(key) ?? new Map<string, RealServer>();
    const reals = new Map<string, RealServer>();
    const vs = want ?? have!;
    if (want !== undefined) {
      if (have === undefined) serviceLines.push(addVirtualServer(want));
      else if (have.scheduler !== want.scheduler || have.persistenceSeconds !== want.persistenceSeconds) {
        serviceLines.push(editVirtualServer(want));
      }
    }
    for (const rs of [...wantReals.values()].sort(byHostPort)) {
      const current = have === undefined ? undefined : haveReals.get(rs.hostPort);
      if (current === undefined) realLines.push(addRealServer(key, rs));
      // A weight-0 leftover (a draining endpoint that came back, or a previous run's) is serving again.
      else if (current.weight !== rs.weight) realLines.push(editRealServer(key, rs));
      reals.set(rs.hostPort, rs);
    }
    // The Service itself is gone (its ClusterIP is no longer wanted): the virtual server goes at once, as
    // upstream's, rather than keeping a dead Service's address bound while connections time out.
    if (want === undefined && !serviceExists(desired, vs)) {
      removeLines.push(deleteVirtualServer(key));
      continue;
    }
    const gone = [...haveReals.values()].filter((rs) => !wantReals.has(rs.hostPort)).sort(byHostPort);
    const idle: string[] = [];
    for (const rs of gone) {
      if (vs.protocol === 'tcp' && connections(key, rs.hostPort) > 0) {
        const drained = { hostPort: rs.hostPort, weight: 0 };
        if (rs.weight !== 0) drainLines.push(editRealServer(key, drained));
        reals.set(rs.hostPort, drained);
      } else {
        idle.push(deleteRealServer(key, rs.hostPort));
      }
    }
    if (want === undefined && reals.size === 0) {
      // Nothing drains: deleting the virtual server deletes its remaining real servers with it.
      removeLines.push(deleteVirtualServer(key));
      continue;
    }
    removeLines.push(...idle);
    afterVs.set(key, vs);
    afterReals.set(key, reals);
  }

  const addresses = new Set(desired.addresses);
  // A draining virtual server keeps its address bound; the NodePort addresses are the node's own.
  for (const vs of afterVs.values()) if (!desired.nodePortAddresses.has(vs.address)) addresses.add(vs.address);
  const haveAddresses = observed.addresses ?? new Set<string>();
  const prefix = family === 'IPv4' ? 32 : 128;
  const addressAdds = [...addresses].filter((a) => !haveAddresses.has(a)).sort();
  const addressDels = [...haveAddresses].filter((a) => !addresses.has(a)).sort();

  const wantSets = new Map(desired.sets);
  wantSets.set(KUBE_IPVS_IPS, addresses);
  const setAdds: string[] = [];
  const setDels: string[] = [];
  for (const set of IPVS_SETS) {
    const name = set.name;
    const want = wantSets.get(name) ?? new Set<string>();
    const have = observed.sets.get(name);
    if (have === undefined) setAdds.push(createIpvsSetLine(set, family));
    for (const m of [...want].sort()) if (have?.has(m) !== true) setAdds.push(`add ${name} ${m}\n`);
    if (have !== undefined) for (const m of [...have].sort()) if (!want.has(m)) setDels.push(`del ${name} ${m}\n`);
  }

  const rules = sameRulesBody(observed.rulesBody, desired.rulesBody) ? undefined : rulesPayload(desired.rulesBody);
  const ipvsadm = [...serviceLines, ...realLines, ...drainLines, ...removeLines].join('');
  const plan = {
    createDevice: observed.addresses === undefined,
    ipsetAdds: setAdds.join(''),
    rules,
    addressAdds: addressAdds.map((a) => `address add ${a}/${prefix} dev ${KUBE_IPVS0}\n`).join(''),
    ipvsadm,
    addressDels: addressDels.map((a) => `address del ${a}/${prefix} dev ${KUBE_IPVS0}\n`).join(''),
    ipsetDels: setDels.join(''),
    after: {
      table: { virtualServers: afterVs, realServers: afterReals },
      addresses,
      // The wanted sets are built afresh for every sync and never changed afterwards: no copy needed.
      sets: new Map(IPVS_SETS.map(({ name }) => [name, wantSets.get(name) ?? new Set<string>()])),
      rulesBody: desired.rulesBody,
    },
  };
  const empty =
    !plan.createDevice &&
    plan.ipsetAdds === '' &&
    rules === undefined &&
    plan.addressAdds === '' &&
    ipvsadm === '' &&
    plan.addressDels === '' &&
    plan.ipsetDels === '';
  return { ...plan, empty };
}

function byHostPort(a: RealServer, b: RealServer): number {
  return a.hostPort < b.hostPort ? -1 : a.hostPort > b.hostPort ? 1 : 0;
}
