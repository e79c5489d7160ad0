import { describe, expect, it } from 'vitest';
import {
  type ConnectionCounts,
  type VirtualServer,
  type VirtualServerKey,
  parseIpvsadmList,
  parseIpvsadmSave,
  virtualServerKey,
} from '../../src/backends/ipvs/ipvsadm.js';
import { type IpvsDesired, type IpvsKernelState, UNKNOWN_KERNEL_STATE, needsCounts, ourVirtualServers, planIpvs } from '../../src/backends/ipvs/plan.js';
import { KUBE_CLUSTER_IP, KUBE_IPVS_IPS } from '../../src/backends/ipvs/rules.js';
import { KUBE_NODE_PORT_SCTP, KUBE_NODE_PORT_TCP, KUBE_NODE_PORT_UDP } from '../../src/backends/ipvs/sets.js';

const BODY = { filter: '-A KUBE-SERVICES x\n', nat: '-A KUBE-POSTROUTING y\n' };
const rulesPayload = (b: typeof BODY) => `*filter\n${b.filter}COMMIT\n*nat\n${b.nat}COMMIT\n`;

function vs(proto: 'tcp' | 'udp', address: string, port: number, persistenceSeconds?: number): VirtualServer {
  return { key: virtualServerKey(proto, address, port), protocol: proto, address, port, scheduler: 'rr', persistenceSeconds };
}

/** A desired state of these virtual servers (all real servers weight 1). */
function desired(entries: Array<[VirtualServer, string[]]>): IpvsDesired {
  return {
    table: {
      virtualServers: new Map(entries.map(([v]) => [v.key, v])),
      realServers: new Map(entries.map(([v, reals]) => [v.key, new Map(reals.map((hp) => [hp, { hostPort: hp, weight: 1 }]))])),
    },
    addresses: new Set(entries.map(([v]) => v.address)),
    nodePortAddresses: new Set(),
    idle: new Set(),
    sets: new Map([[KUBE_CLUSTER_IP, new Set(entries.map(([v]) => `${v.address},${v.protocol}:${v.port}`))]]),
    rulesBody: BODY,
  };
}

function plan(want: IpvsDesired, have: IpvsKernelState, counts: ConnectionCounts = new Map()) {
  return planIpvs(want, have, counts, 'IPv4', rulesPayload);
}

const counts = (key: VirtualServerKey, entries: Record<string, number>): ConnectionCounts => new Map([[key, new Map(Object.entries(entries))]]);

const WEB = vs('tcp', '10.96.0.10', 80);
const DNS = vs('udp', '10.96.0.53', 53);

describe('ipvsadm text', () => {
  it('reads `ipvsadm -S -n`: services, persistence, real servers, and skips firewall-mark services', () => {
    const table = parseIpvsadmSave(
      [
        '-A -t 10.96.0.10:80 -s rr -p 10800',
        '-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1',
        '-a -t 10.96.0.10:80 -r 10.0.0.10:8080 -g -w 0',
        '-A -u 10.96.0.53:53 -s wlc',
        '-A -f 42 -s rr',
        '-a -f 42 -r 10.1.1.1:0 -g -w 1',
        '-A -t [fd00::a]:443 -s rr',
        '',
      ].join('\n'),
    );
    expect([...table.virtualServers.keys()]).toEqual(['-t 10.96.0.10:80', '-u 10.96.0.53:53', '-t [fd00::a]:443']);
    expect(table.virtualServers.get(WEB.key)).toEqual({ ...WEB, persistenceSeconds: 10800 });
    expect(table.virtualServers.get(DNS.key)?.scheduler).toBe('wlc');
    expect([...table.realServers.get(WEB.key)!.values()]).toEqual([
      { hostPort: '10.244.1.2:8080', weight: 1 },
      // A node-local real server prints as -g (the kernel switched it to local forwarding): still ours.
      { hostPort: '10.0.0.10:8080', weight: 0 },
    ]);
    expect(() => parseIpvsadmSave('-X nonsense')).toThrow(/unexpected line/);
  });

  it('reads connection counters (active + inactive) from `ipvsadm -L -n`', () => {
    const text = [
      'IP Virtual Server version 1.2.1 (size=4096)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
      'TCP  10.96.0.10:80 rr persistent 10800',
      '  -> 10.244.1.2:8080               Masq    0      2          3',
      '  -> 10.244.1.3:8080               Masq    1      0          0',
      'FWM  42 rr',
      '  -> 10.244.9.9:0                  Route   1      7          7',
      'UDP  10.96.0.53:53 rr',
    ].join('\n');
    // The firewall-mark service's real server is not counted under the TCP service listed before it.
    expect(parseIpvsadmList(text)).toEqual(
      new Map([
        [WEB.key, new Map([['10.244.1.2:8080', 5], ['10.244.1.3:8080', 0]])],
        [DNS.key, new Map()],
      ]),
    );
  });
});

describe('planIpvs', () => {
  it('onto an unknown node: creates the device, sets, rules, addresses, then services before their real servers', () => {
    const p = plan(desired([[WEB, ['10.244.1.2:8080', '10.244.1.3:8080']], [DNS, ['10.244.1.2:5353']]]), UNKNOWN_KERNEL_STATE);
    expect(p.createDevice).toBe(true);
    expect(p.ipsetAdds).toContain('create KUBE-CLUSTER-IP hash:ip,port family inet');
    expect(p.ipsetAdds).toContain(`add ${KUBE_CLUSTER_IP} 10.96.0.10,tcp:80\n`);
    expect(p.ipsetAdds).toContain(`add ${KUBE_IPVS_IPS} 10.96.0.53\n`);
    expect(p.rules).toBe(rulesPayload(BODY));
    expect(p.addressAdds).toBe('address add 10.96.0.10/32 dev kube-ipvs0\naddress add 10.96.0.53/32 dev kube-ipvs0\n');
    expect(p.ipvsadm).toBe(
      [
        '-A -t 10.96.0.10:80 -s rr',
        '-A -u 10.96.0.53:53 -s rr',
        '-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1',
        '-a -t 10.96.0.10:80 -r 10.244.1.3:8080 -m -w 1',
        '-a -u 10.96.0.53:53 -r 10.244.1.2:5353 -m -w 1',
        '',
      ].join('\n'),
    );
    expect(p.empty).toBe(false);
  });

  it('a second plan against the state the first left is empty', () => {
    const want = desired([[WEB, ['10.244.1.2:8080']], [DNS, ['10.244.1.2:5353']]]);
    const first = plan(want, UNKNOWN_KERNEL_STATE);
    const second = plan(want, first.after);
    expect(second.empty).toBe(true);
    expect(second.ipvsadm).toBe('');
  });

  it('a TCP real server that goes away is deleted when idle, drained (weight 0) while it has connections', () => {
    const before = plan(desired([[WEB, ['10.244.1.2:8080', '10.244.1.3:8080']]]), UNKNOWN_KERNEL_STATE).after;
    const want = desired([[WEB, ['10.244.1.3:8080']]]);
    expect(needsCounts(want, before)).toEqual([WEB.key]);
    expect(plan(want, before, counts(WEB.key, { '10.244.1.2:8080': 0 })).ipvsadm).toBe('-d -t 10.96.0.10:80 -r 10.244.1.2:8080\n');

    const draining = plan(want, before, counts(WEB.key, { '10.244.1.2:8080': 2 }));
    expect(draining.ipvsadm).toBe('-e -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0\n');
    // Still draining on the next sync: nothing to write; drained: deleted.
    expect(plan(want, draining.after, counts(WEB.key, { '10.244.1.2:8080': 1 })).empty).toBe(true);
    expect(plan(want, draining.after, counts(WEB.key, { '10.244.1.2:8080': 0 })).ipvsadm).toBe('-d -t 10.96.0.10:80 -r 10.244.1.2:8080\n');
    // Back before it drained: weight 1 again, not a second -a.
    expect(plan(desired([[WEB, ['10.244.1.2:8080', '10.244.1.3:8080']]]), draining.after).ipvsadm).toBe(
      '-e -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1\n',
    );
  });

  it('UDP real servers go at once, connections or not', () => {
    const before = plan(desired([[DNS, ['10.244.1.2:5353', '10.244.1.3:5353']]]), UNKNOWN_KERNEL_STATE).after;
    const p = plan(desired([[DNS, ['10.244.1.3:5353']]]), before, counts(DNS.key, { '10.244.1.2:5353': 4 }));
    expect(p.ipvsadm).toBe('-d -u 10.96.0.53:53 -r 10.244.1.2:5353\n');
  });

  it('a port that loses every endpoint keeps its virtual server while a connection drains; a deleted Service goes at once', () => {
    const before = plan(desired([[WEB, ['10.244.1.2:8080']], [DNS, ['10.244.1.2:5353']]]), UNKNOWN_KERNEL_STATE).after;
    // web has no endpoints left, but still exists: its address stays wanted.
    const noEndpoints: IpvsDesired = { ...desired([[DNS, ['10.244.1.2:5353']]]), addresses: new Set([WEB.address, DNS.address]) };
    const draining = plan(noEndpoints, before, counts(WEB.key, { '10.244.1.2:8080': 1 }));
    expect(draining.ipvsadm).toBe('-e -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0\n');
    expect(draining.addressDels).toBe('');
    const drained = plan(noEndpoints, draining.after, counts(WEB.key, { '10.244.1.2:8080': 0 }));
    expect(drained.ipvsadm).toBe('-D -t 10.96.0.10:80\n');
    expect(drained.addressDels).toBe('');

    // Two real servers, one busy and one idle, both gone: the idle one is deleted, the busy one drains, and
    // the state left behind says so.
    const two = plan(desired([[WEB, ['10.244.1.2:8080', '10.244.1.3:8080']]]), UNKNOWN_KERNEL_STATE).after;
    const webOnly: IpvsDesired = { ...desired([]), addresses: new Set([WEB.address]) };
    const both = plan(webOnly, two, counts(WEB.key, { '10.244.1.2:8080': 1, '10.244.1.3:8080': 0 }));
    expect(both.ipvsadm).toBe('-e -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0\n-d -t 10.96.0.10:80 -r 10.244.1.3:8080\n');
    expect([...both.after.table.realServers.get(WEB.key)!.values()]).toEqual([{ hostPort: '10.244.1.2:8080', weight: 0 }]);

    // web deleted: no counters are even asked for; the virtual server, address and set members go.
    const deleted = desired([[DNS, ['10.244.1.2:5353']]]);
    expect(needsCounts(deleted, before)).toEqual([]);
    const gone = plan(deleted, before, counts(WEB.key, { '10.244.1.2:8080': 3 }));
    expect(gone.ipvsadm).toBe('-D -t 10.96.0.10:80\n');
    expect(gone.addressDels).toBe('address del 10.96.0.10/32 dev kube-ipvs0\n');
    expect(gone.ipsetDels).toBe(`del ${KUBE_CLUSTER_IP} 10.96.0.10,tcp:80\ndel ${KUBE_IPVS_IPS} 10.96.0.10\n`);
  });

  it('a NodePort virtual server (on a node address, never bound) drains while its Service port exists, and goes with it', () => {
    const NP = vs('tcp', '192.168.0.2', 30080);
    const withNodePort = (entries: Array<[VirtualServer, string[]]>, idle: VirtualServer[]): IpvsDesired => {
      const d = desired(entries);
      const addresses = new Set([...d.addresses].filter((a) => a !== NP.address));
      return { ...d, addresses, nodePortAddresses: new Set([NP.address]), idle: new Set(idle.map((v) => v.key)) };
    };
    const first = plan(withNodePort([[WEB, ['10.244.1.2:8080']], [NP, ['10.244.1.2:8080']]], []), UNKNOWN_KERNEL_STATE);
    expect(first.addressAdds).toBe('address add 10.96.0.10/32 dev kube-ipvs0\n');
    // The port lost its endpoint but exists: counters are read, and a busy real server drains.
    const lost = withNodePort([[WEB, ['10.244.1.3:8080']]], [NP]);
    expect(needsCounts(lost, first.after)).toEqual([NP.key, WEB.key].sort());
    const draining = plan(lost, first.after, counts(NP.key, { '10.244.1.2:8080': 1 }));
    expect(draining.ipvsadm).toContain('-e -t 192.168.0.2:30080 -r 10.244.1.2:8080 -m -w 0\n');
    expect(draining.addressAdds).toBe('');
    expect(draining.after.addresses?.has(NP.address)).toBe(false);
    // The Service (or its NodePort) is gone: the virtual server goes at once.
    const gone = plan(withNodePort([[WEB, ['10.244.1.3:8080']]], []), draining.after, counts(NP.key, { '10.244.1.2:8080': 1 }));
    expect(gone.ipvsadm).toBe('-D -t 192.168.0.2:30080\n');
  });

  it('changed affinity edits the virtual server in place (-E with every option)', () => {
    const before = plan(desired([[WEB, ['10.244.1.2:8080']]]), UNKNOWN_KERNEL_STATE).after;
    const p = plan(desired([[vs('tcp', '10.96.0.10', 80, 10800), ['10.244.1.2:8080']]]), before);
    expect(p.ipvsadm).toBe('-E -t 10.96.0.10:80 -s rr -p 10800\n');
  });

  it('an unchanged ruleset is not written again; the rules are rewritten whenever they are unknown', () => {
    const want = desired([[WEB, ['10.244.1.2:8080']]]);
    const before = plan(want, UNKNOWN_KERNEL_STATE).after;
    expect(plan(want, before).rules).toBeUndefined();
    expect(plan(want, { ...before, rulesBody: undefined }).rules).toBe(rulesPayload(BODY));
  });

  it('ours: virtual servers on owned addresses, and NodePorts by our sets on any address; a NodePort no longer wanted goes', () => {
    const all = parseIpvsadmSave(
      [
        '-A -t 10.96.0.10:80 -s rr',
        '-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1',
        // A NodePort on an address that is no longer a NodePort address (another --nodeport-addresses).
        '-A -t 10.0.1.10:30080 -s rr',
        '-a -t 10.0.1.10:30080 -r 10.244.1.2:8080 -m -w 1',
        '-A -u 10.0.1.10:30053 -s rr',
        '-A --sctp-service 10.0.1.10:30099 -s rr',
        // Someone else's: another port on that address, and the same port number over UDP.
        '-A -t 10.0.1.10:8443 -s rr',
        '-A -u 10.0.1.10:30080 -s rr',
        '',
      ].join('\n'),
    );
    const sets = new Map([
      [KUBE_NODE_PORT_TCP, new Set(['30080'])],
      [KUBE_NODE_PORT_UDP, new Set(['30053'])],
      [KUBE_NODE_PORT_SCTP, new Set(['10.0.1.10,sctp:30099'])],
    ]);
    const ours = ourVirtualServers(all, new Set(['10.96.0.10']), sets);
    expect([...ours.virtualServers.keys()].sort()).toEqual(['--sctp-service 10.0.1.10:30099', '-t 10.0.1.10:30080', '-t 10.96.0.10:80', '-u 10.0.1.10:30053']);
    expect([...ours.realServers.keys()].sort()).toEqual(['-t 10.0.1.10:30080', '-t 10.96.0.10:80']);
    // Only the ClusterIP is wanted now (its Service has no NodePort on 10.0.1.10 any more): the NodePorts go at once.
    const want = desired([[WEB, ['10.244.1.2:8080']]]);
    const p = plan(want, { ...UNKNOWN_KERNEL_STATE, table: ours, addresses: new Set(['10.96.0.10']), sets: new Map() });
    expect(p.ipvsadm).toBe('-D --sctp-service 10.0.1.10:30099\n-D -t 10.0.1.10:30080\n-D -u 10.0.1.10:30053\n');
  });
});
