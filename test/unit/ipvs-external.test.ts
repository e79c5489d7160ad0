// IPVS mode's external traffic: what a full sync prints for NodePorts, external IPs, LB IPs with source ranges,
// externalTrafficPolicy Local with and without a local endpoint, and no endpoints. The NodePort case is upstream's
// TestNodePort "UDP" vector (pkg/proxy/ipvs/proxier_test.go): node IP 100.101.102.103, its virtual servers, the
// KUBE-NODE-PORT-UDP member and the KUBE-NODE-PORT / KUBE-SERVICES rules it expects.
import { describe, expect, it } from 'vitest';
import { IpvsBackend } from '../../src/backends/ipvs/backend.js';
import { type IpvsOptions, defaultIpvsOptions } from '../../src/backends/ipvs/options.js';
import { ClusterState } from '../../src/model/state.js';
import { PrintApplier, syncBackend } from '../../src/sync/applier.js';
import { load } from '../support/compile.js';
import { type K8sObject, endpointSlice, service } from '../support/objects.js';

const NODE = 'test-node';
const NODE_IP = '100.101.102.103';

/** One full dry-run sync of `objects` on a node with `nodeIPs`; the printed sections by command. */
async function fullSync(objects: readonly K8sObject[], opts: Partial<IpvsOptions> = {}, nodeIPs = [NODE_IP]) {
  const backend = new IpvsBackend(defaultIpvsOptions({ clusterCidr: '10.0.0.0/8', ...opts }));
  const loaded = load(objects, NODE);
  loaded.state.setNodeIPs(nodeIPs);
  backend.update(loaded.state, loaded.state.takeChanges());
  let text = '';
  await syncBackend(backend, true, { applier: new PrintApplier((t) => (text += t), 'pipeable'), readKernel: false });
  return printed(text);
}

function printed(text: string) {
  const section = (header: string): string[] =>
    text
      .split(/^#### /m)
      .filter((p) => p.startsWith(`${header}\n`))
      .flatMap((p) => p.slice(header.length + 1).split('\n'))
      .filter((l) => l !== '');
  const ipset = section('ipset restore -exist');
  return {
    text,
    ipvsadm: section('ipvsadm -R'),
    members: (set: string) => ipset.filter((l) => l.startsWith(`add ${set} `)).map((l) => l.slice(`add ${set} `.length)),
    rules: section('iptables-restore --noflush').filter((l) => l.startsWith('-A ')),
    chain: (name: string) => section('iptables-restore --noflush').filter((l) => l.startsWith(`-A ${name} `)),
    addresses: section('ip -batch -'),
  };
}

const slice = (name: string, port: number, endpoints: Array<{ ip: string; nodeName?: string }>, protocol?: 'UDP') =>
  endpointSlice({ name: `${name}-1`, service: name, ports: [{ name: 'p80', port, ...(protocol ? { protocol } : {}) }], endpoints });

describe('IPVS NodePorts', () => {
  it("upstream's TestNodePort UDP vector: virtual servers on the ClusterIP and the node IP, the port in KUBE-NODE-PORT-UDP", async () => {
    const p = await fullSync([
      service({ name: 'svc1', type: 'NodePort', clusterIP: '10.20.30.41', ports: [{ name: 'p80', port: 80, protocol: 'UDP', nodePort: 3001 }] }),
      slice('svc1', 80, [{ ip: '10.180.0.1', nodeName: 'other' }], 'UDP'),
    ]);
    expect(p.ipvsadm).toEqual([
      '-A -u 10.20.30.41:80 -s rr',
      `-A -u ${NODE_IP}:3001 -s rr`,
      '-a -u 10.20.30.41:80 -r 10.180.0.1:80 -m -w 1',
      `-a -u ${NODE_IP}:3001 -r 10.180.0.1:80 -m -w 1`,
    ]);
    expect(p.members('KUBE-NODE-PORT-UDP')).toEqual(['3001']);
    expect(p.members('KUBE-NODE-PORT-LOCAL-UDP')).toEqual([]);
    expect(p.chain('KUBE-NODE-PORT')).toEqual([
      '-A KUBE-NODE-PORT -p udp -m comment --comment "Kubernetes nodeport UDP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ',
    ]);
    expect(p.chain('KUBE-SERVICES').filter((r) => !r.includes('REJECT') && !r.includes('DROP'))).toEqual([
      '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
      '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
      '-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT',
    ]);
    // The node IP is the node's own: never bound to kube-ipvs0.
    expect(p.addresses).toEqual(['address add 10.20.30.41/32 dev kube-ipvs0']);
  });

  it('NodePort addresses: every listed or local address of the family, never loopback or link-local', async () => {
    const objects = [
      service({ name: 'svc1', type: 'NodePort', clusterIP: '10.20.30.41', ports: [{ name: 'p80', port: 80, nodePort: 3001 }] }),
      slice('svc1', 80, [{ ip: '10.180.0.1', nodeName: NODE }]),
    ];
    const all = await fullSync(objects, { nodePortIPs: ['127.0.0.1', '192.168.0.2', '10.1.1.1', 'fd00::1', 'fe80::1'] });
    expect(all.ipvsadm.filter((l) => l.startsWith('-A'))).toEqual(['-A -t 10.1.1.1:3001 -s rr', '-A -t 10.20.30.41:80 -s rr', '-A -t 192.168.0.2:3001 -s rr']);
    const listed = await fullSync(objects, { nodePortAddresses: ['192.168.0.2'] });
    expect(listed.ipvsadm.filter((l) => l.startsWith('-A'))).toEqual(['-A -t 10.20.30.41:80 -s rr', '-A -t 192.168.0.2:3001 -s rr']);
    // The local endpoint reaching itself through its NodePort is masqueraded like through its ClusterIP.
    expect(all.members('KUBE-LOOP-BACK')).toEqual(['10.180.0.1,tcp:80,10.180.0.1']);
  });

  it('no endpoints: no virtual servers, REJECT for the ClusterIP and, per NodePort address, in KUBE-EXTERNAL-SERVICES', async () => {
    const p = await fullSync([service({ name: 'svc1', type: 'NodePort', clusterIP: '10.20.30.41', ports: [{ name: 'p80', port: 80, nodePort: 3001 }] })]);
    expect(p.ipvsadm).toEqual([]);
    expect(p.rules.filter((r) => r.endsWith('REJECT') && !r.includes('IPVS-IPS'))).toEqual([
      '-A KUBE-SERVICES -m comment --comment "default/svc1:p80 has no endpoints" -m tcp -p tcp -d 10.20.30.41 --dport 80 -j REJECT',
      `-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/svc1:p80 has no endpoints" -m tcp -p tcp -d ${NODE_IP} --dport 3001 -j REJECT`,
    ]);
    // The NodePort stays in its set (masquerade marking does not depend on endpoints, as upstream).
    expect(p.members('KUBE-NODE-PORT-TCP')).toEqual(['3001']);
  });
});

describe('IPVS external and load-balancer IPs', () => {
  const lb = (extra: Partial<Parameters<typeof service>[0]> = {}) =>
    service({
      name: 'svc5',
      type: 'LoadBalancer',
      clusterIP: '172.30.0.45',
      ports: [{ name: 'p80', port: 80, nodePort: 3002 }],
      loadBalancerIngress: [{ ip: '5.6.7.8' }],
      externalIPs: ['192.168.99.33'],
      ...extra,
    });

  it('eTP Cluster: virtual servers on every address, addresses bound, masquerade through the sets', async () => {
    const p = await fullSync([lb(), slice('svc5', 80, [{ ip: '10.180.0.3', nodeName: 'other' }])]);
    expect(p.ipvsadm.filter((l) => l.startsWith('-A'))).toEqual([
      `-A -t ${NODE_IP}:3002 -s rr`,
      '-A -t 172.30.0.45:80 -s rr',
      '-A -t 192.168.99.33:80 -s rr',
      '-A -t 5.6.7.8:80 -s rr',
    ]);
    expect(p.ipvsadm.filter((l) => l.startsWith('-a')).every((l) => l.endsWith('-r 10.180.0.3:80 -m -w 1'))).toBe(true);
    expect(p.addresses).toEqual([
      'address add 172.30.0.45/32 dev kube-ipvs0',
      'address add 192.168.99.33/32 dev kube-ipvs0',
      'address add 5.6.7.8/32 dev kube-ipvs0',
    ]);
    expect(p.members('KUBE-EXTERNAL-IP')).toEqual(['192.168.99.33,tcp:80']);
    expect(p.members('KUBE-LOAD-BALANCER')).toEqual(['5.6.7.8,tcp:80']);
    expect(p.members('KUBE-IPVS-IPS')).toEqual(['172.30.0.45', '192.168.99.33', '5.6.7.8']);
    expect(p.chain('KUBE-LOAD-BALANCER')).toEqual(['-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ']);
    const ext = '-m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst';
    expect(p.chain('KUBE-SERVICES').filter((r) => !r.includes('CLUSTER-IP'))).toEqual([
      '-A KUBE-SERVICES -m comment --comment "Kubernetes service lb portal" -m set --match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER',
      `-A KUBE-SERVICES ${ext} -j KUBE-MARK-MASQ`,
      `-A KUBE-SERVICES ${ext} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`,
      `-A KUBE-SERVICES ${ext} -m addrtype --dst-type LOCAL -j ACCEPT`,
      '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
      '-A KUBE-SERVICES -m set --match-set KUBE-LOAD-BALANCER dst,dst -j ACCEPT',
    ]);
    expect(p.chain('KUBE-IPVS-FILTER')).toEqual([
      '-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN',
      '-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN',
      '-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN',
      '-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT',
    ]);
  });

  it('source ranges: KUBE-LOAD-BALANCER-FW and -SOURCE-CIDR, the firewall chain, and the out filter unless the node is in a range', async () => {
    const eps = slice('svc5', 80, [{ ip: '10.180.0.3', nodeName: 'other' }]);
    const p = await fullSync([lb({ loadBalancerSourceRanges: [' 203.0.113.0/25', '0.0.0.0/0', '198.51.100.7/32'] }), eps]);
    expect(p.members('KUBE-LOAD-BALANCER-FW')).toEqual(['5.6.7.8,tcp:80']);
    expect(p.members('KUBE-LOAD-BALANCER-SOURCE-CIDR')).toEqual([
      // The kernel refuses a /0 net: two halves. A /32 prints as a bare address.
      '5.6.7.8,tcp:80,0.0.0.0/1',
      '5.6.7.8,tcp:80,128.0.0.0/1',
      '5.6.7.8,tcp:80,198.51.100.7',
      '5.6.7.8,tcp:80,203.0.113.0/25',
    ]);
    // The /0 holds the node IP: the node may reach its LB IP (from the LB IP itself).
    expect(p.members('KUBE-LOAD-BALANCER-SOURCE-IP')).toEqual(['5.6.7.8,tcp:80,5.6.7.8']);
    expect(p.chain('KUBE-IPVS-OUT-FILTER')).toEqual([]);
    expect(p.chain('KUBE-PROXY-FIREWALL')).toEqual([
      '-A KUBE-PROXY-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port for load balancer with sourceRange" -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL',
    ]);
    expect(p.chain('KUBE-SOURCE-RANGES-FIREWALL')).toEqual([
      '-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source cidr for packet filter purpose" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN',
      '-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source IP for packet filter purpose" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-IP dst,dst,src -j RETURN',
      '-A KUBE-SOURCE-RANGES-FIREWALL -j DROP',
    ]);

    const narrow = await fullSync([lb({ loadBalancerSourceRanges: ['203.0.113.0/25'] }), eps]);
    expect(narrow.members('KUBE-LOAD-BALANCER-SOURCE-IP')).toEqual([]);
    expect(narrow.chain('KUBE-IPVS-OUT-FILTER')).toEqual(['-A KUBE-IPVS-OUT-FILTER -s 5.6.7.8 -m ipvs --vaddr 5.6.7.8 --vproto tcp --vport 80 -j DROP']);
    expect(narrow.chain('KUBE-SOURCE-RANGES-FIREWALL')).toHaveLength(2);
  });

  it('eTP Local with a local endpoint: only it behind the external virtual servers, the -LOCAL sets skip masquerade', async () => {
    const p = await fullSync([
      lb({ externalTrafficPolicy: 'Local', healthCheckNodePort: 30000 }),
      slice('svc5', 80, [{ ip: '10.180.0.4', nodeName: 'other' }, { ip: '10.180.0.5', nodeName: NODE }]),
    ]);
    const reals = (vs: string) => p.ipvsadm.filter((l) => l.startsWith(`-a -t ${vs} `)).map((l) => l.split(' ')[4]);
    expect(reals('172.30.0.45:80')).toEqual(['10.180.0.4:80', '10.180.0.5:80']);
    for (const vs of ['192.168.99.33:80', '5.6.7.8:80', `${NODE_IP}:3002`]) expect(reals(vs)).toEqual(['10.180.0.5:80']);
    expect(p.members('KUBE-EXTERNAL-IP')).toEqual([]);
    expect(p.members('KUBE-EXTERNAL-IP-LOCAL')).toEqual(['192.168.99.33,tcp:80']);
    expect(p.members('KUBE-LOAD-BALANCER-LOCAL')).toEqual(['5.6.7.8,tcp:80']);
    expect(p.members('KUBE-NODE-PORT-LOCAL-TCP')).toEqual(['3002']);
    expect(p.members('KUBE-HEALTH-CHECK-NODE-PORT')).toEqual(['30000']);
    expect(p.chain('KUBE-NODE-PORT')).toEqual([
      '-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT',
      '-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port with externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN',
      '-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ',
    ]);
    expect(p.chain('KUBE-LOAD-BALANCER')[0]).toBe(
      '-A KUBE-LOAD-BALANCER -m comment --comment "Kubernetes service load balancer ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN',
    );
    // No masquerade rule for eTP Local external IPs, only the ACCEPTs.
    expect(p.chain('KUBE-SERVICES').filter((r) => r.includes('KUBE-EXTERNAL-IP-LOCAL')).map((r) => r.split(' -j ')[1])).toEqual(['ACCEPT', 'ACCEPT']);
    expect(p.chain('KUBE-EXTERNAL-SERVICES')).toEqual([]);
  });

  it('eTP Local without a local endpoint: upstream fallback for pods and the node, DROP for everyone else (unlike upstream)', async () => {
    const p = await fullSync([lb({ externalTrafficPolicy: 'Local' }), slice('svc5', 80, [{ ip: '10.180.0.4', nodeName: 'other' }])]);
    for (const vs of ['192.168.99.33:80', '5.6.7.8:80', `${NODE_IP}:3002`]) expect(p.ipvsadm).toContain(`-a -t ${vs} -r 10.180.0.4:80 -m -w 1`);
    const drop = (match: string) =>
      `-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/svc5:p80 has no local endpoints" ! -s 10.0.0.0/8 -m addrtype ! --src-type LOCAL ${match} -j DROP`;
    expect(p.chain('KUBE-EXTERNAL-SERVICES')).toEqual([
      drop('-m tcp -p tcp -d 192.168.99.33 --dport 80'),
      drop('-m tcp -p tcp -d 5.6.7.8 --dport 80'),
      drop(`-m tcp -p tcp -d ${NODE_IP} --dport 3002`),
    ]);
    // ClusterIP traffic is not affected.
    expect(p.chain('KUBE-SERVICES').filter((r) => r.includes('DROP'))).toEqual([]);

    // Without a pod CIDR pods cannot be told apart, and are dropped too (as in iptables mode).
    const noCidr = await fullSync([lb({ externalTrafficPolicy: 'Local' }), slice('svc5', 80, [{ ip: '10.180.0.4', nodeName: 'other' }])], {
      clusterCidr: undefined,
    });
    expect(noCidr.chain('KUBE-EXTERNAL-SERVICES')[0]).toContain('"default/svc5:p80 has no local endpoints" -m addrtype ! --src-type LOCAL -m tcp');
  });

  it('no endpoints: REJECT for each external and LB IP and the NodePort, no virtual servers, addresses still bound', async () => {
    const p = await fullSync([lb()]);
    expect(p.ipvsadm).toEqual([]);
    expect(p.chain('KUBE-EXTERNAL-SERVICES').map((r) => r.replace(/.*has no endpoints" /, ''))).toEqual([
      '-m tcp -p tcp -d 192.168.99.33 --dport 80 -j REJECT',
      '-m tcp -p tcp -d 5.6.7.8 --dport 80 -j REJECT',
      `-m tcp -p tcp -d ${NODE_IP} --dport 3002 -j REJECT`,
    ]);
    expect(p.addresses).toHaveLength(3);
  });
});

describe('IPVS external traffic, partial syncs', () => {
  it('losing the last endpoint removes the NodePort virtual server (nothing drains in a dry run); the node IP is never bound', async () => {
    const backend = new IpvsBackend(defaultIpvsOptions({ clusterCidr: '10.0.0.0/8' }));
    let state = new ClusterState();
    const sync = async (objects: readonly K8sObject[]) => {
      const loaded = load(objects, NODE);
      loaded.state.setNodeIPs([NODE_IP]);
      const changed = new Set([...loaded.state.takeChanges(), ...[...state.allServices()].map((s) => s.key)]);
      state = loaded.state;
      backend.update(state, changed);
      let text = '';
      await syncBackend(backend, false, { applier: new PrintApplier((t) => (text += t), 'pipeable'), readKernel: false });
      return printed(text);
    };
    const svc = service({ name: 'np', type: 'NodePort', clusterIP: '10.20.30.50', ports: [{ name: 'p80', port: 80, nodePort: 3005 }] });
    await sync([svc, slice('np', 80, [{ ip: '10.180.0.9', nodeName: 'other' }])]);
    const lost = await sync([svc]);
    expect(lost.ipvsadm).toEqual(['-D -t 10.20.30.50:80', `-D -t ${NODE_IP}:3005`]);
    // The node IP is never bound or unbound.
    expect(lost.text).not.toContain(NODE_IP + '/32');
    const gone = await sync([]);
    expect(gone.ipvsadm).toEqual([]);
    expect(gone.text).toContain(`del KUBE-NODE-PORT-TCP 3005`);
  });
});
