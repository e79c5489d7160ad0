import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compilerFor, load } from '../support/compile.js';
import { service } from '../support/objects.js';
import { OVERALL, p80, slice } from '../support/upstream-overall.js';
import { bothComparable } from '../support/upstream-iptables.js';


// kubernetes/kubernetes pkg/proxy/iptables/proxier_test.go, TestOverallIPTablesRules: its six Services, its
// fake proxier's settings (node test-node at 192.168.0.2, local detector 10.0.0.0/8, mark 0x4000, every local
// address a NodePort address, localhost NodePorts on), and its expected restore text verbatim.
const EXPECTED = readFileSync(new URL('./upstream/overall-iptables.rules', import.meta.url), 'utf8');

describe('TestOverallIPTablesRules (upstream input, upstream expected output)', () => {
  const loaded = load(OVERALL);
  loaded.state.setNodeIPs(['192.168.0.2']);
  const ours = compilerFor(loaded, { clusterCidr: '10.0.0.0/8' }).planFull().payload.text;

  it('matches upstream, but for the deliberate differences in docs/backends/iptables.md', () => {
    const [mine, theirs] = bothComparable(ours, EXPECTED);
    expect(theirs.split('\n').length).toBeGreaterThan(85);
    expect(mine).toBe(theirs);
  });

  it('writes the canary and the built-in jumps it leaves out of the comparison', () => {
    expect(ours).toContain(':KUBE-PROXY-CANARY - [0:0]');
    expect(ours).toContain('-I INPUT 1 -j KUBE-FIREWALL');
  });
});

describe('TestBadIPs (sloppy addresses are read as upstream reads them)', () => {
  it('canonicalises leading zeros in the ClusterIP, LB IP, external IP, source range and endpoint', () => {
    const loaded = load([
      service({
        namespace: 'ns1',
        name: 'svc1',
        type: 'LoadBalancer',
        clusterIP: '172.30.0.041',
        ports: p80(3001),
        loadBalancerIngress: [{ ip: '1.2.3.004' }],
        externalIPs: ['192.168.099.022'],
        loadBalancerSourceRanges: ['203.0.113.000/025'],
        externalTrafficPolicy: 'Cluster',
      }),
      slice('ns1', 'svc1', [{ ip: '10.180.00.001' }]),
    ]);
    loaded.state.setNodeIPs(['192.168.0.2']);
    const ours = compilerFor(loaded, { clusterCidr: '10.0.0.0/8' }).planFull().payload.text;
    const [mine, theirs] = bothComparable(ours, readFileSync(new URL('./upstream/bad-ips-iptables.rules', import.meta.url), 'utf8'));
    expect(theirs.split('\n').length).toBeGreaterThan(25);
    expect(mine).toBe(theirs);
  });
});
