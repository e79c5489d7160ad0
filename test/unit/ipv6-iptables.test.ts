// The iptables backend built for IPv6 (ip6tables-restore input): upstream's IPv6 vectors (pkg/proxy/iptables
// proxier_test.go, as fixtures or as the external-traffic reference §10.2 quotes them), packet flows over the
// IPv6 rules, and dual-stack objects rendered for IPv6 only.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IptablesBackend } from '../../src/backends/iptables/backend.js';
import { iptablesCleanup } from '../../src/backends/iptables/cleanup.js';
import { type IptablesOptions, defaultIptablesOptions, localhostNodePortsOn, tailRules } from '../../src/backends/iptables/options.js';
import { defaultIptablesTools } from '../../src/kernel/iptables.js';
import { compilerFor, load, setObject } from '../support/compile.js';
import { parseRules } from '../support/iptables-text.js';
import { iptablesRulesetOf, traceIptables } from '../../src/diagnose/trace/iptables.js';
import { flowOutput, flowRequest } from '../support/upstream-trace.js';
import { Ipsets } from '../../src/diagnose/trace/ipsets.js';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';
import { BOTH, DUAL_STACK_OBJECTS, LOCAL_IPS, NODE, type Row, at, svc, v6slice } from '../support/upstream-ipv6.js';
import { bothComparable } from '../support/upstream-iptables.js';

/** upstream's IPv6 fake proxier: pod CIDR fd00:10::/64 as its local detector. */
const V6: Partial<IptablesOptions> = { family: 'IPv6', clusterCidr: 'fd00:10::/64' };

/** The full sync's restore payload; `ipsets` gets the flat layout's ipset input, if any. */
function rules(objects: readonly K8sObject[], overrides: Partial<IptablesOptions> = {}, ipsets?: Ipsets): string {
  const loaded = load(objects, NODE);
  loaded.state.setNodeIPs(['192.168.0.2', '2001:db8::1']);
  const plan = compilerFor(loaded, { ...V6, ...overrides }).planFull();
  if (plan.ipset !== undefined) ipsets?.apply(plan.ipset.input, 'ipset');
  return plan.payload.text;
}

function checkFlows(text: string, rows: readonly Row[], ipsets?: Ipsets): void {
  const got = rows.map(([name, src, dst, dport, , masq]) => {
    const t = flowOutput(traceIptables(iptablesRulesetOf(text, name), flowRequest({ src, dst, dport }, LOCAL_IPS), { source: name, ipsets }));
    return [name, t.output, masq === undefined ? undefined : t.masq];
  });
  expect(got).toEqual(rows.map(([name, , , , output, masq]) => [name, output, masq]));
}


describe('TestEnableLocalhostNodePortsIPv6 / TestDisableLocalhostNodePortsIPv6 (upstream expected text)', () => {
  // Upstream's NoOp local detector (no cluster CIDR), node test-node, NodePort 30001, eTP Local; v1.27/v1.28-era
  // text (its fake iptables had no --random-fully, taken out as in the IPv4 comparisons).
  const EXPECTED = readFileSync(new URL('./upstream/localhost-nodeports-ipv6.rules', import.meta.url), 'utf8');
  const objects = [
    service({ namespace: 'ns1', name: 'svc1', type: 'NodePort', clusterIP: 'fd00:ab34::20', externalTrafficPolicy: 'Local', ports: [{ name: 'p80', port: 80, nodePort: 30001 }] }),
    endpointSlice({ namespace: 'ns1', name: 'svc1-1', service: 'svc1', addressType: 'IPv6', ports: [{ name: 'p80', port: 80 }], endpoints: [{ ip: 'ff06::c1' }, { ip: 'ff06::c2', nodeName: NODE }] }),
  ];

  it.each([true, false])('localhostNodePorts %s: the same IPv6 text, no KUBE-FIREWALL', (localhostNodePorts) => {
    const loaded = load(objects, NODE);
    const ours = compilerFor(loaded, { family: 'IPv6', localhostNodePorts }).planFull().payload.text;
    const [mine, theirs] = bothComparable(ours, EXPECTED);
    expect(theirs.split('\n').length).toBeGreaterThan(30);
    expect(mine).toBe(theirs);
    expect(ours).not.toContain('KUBE-FIREWALL');
  });
});

describe('TestNodePorts, IPv6 rows (reference §10.2)', () => {
  const objects = svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'NodePort' }, [at('fd00:10:180::1'), at('fd00:10:180::2:1', NODE)]);
  // nodePortAddresses as upstream's GetNodeIPs resolves them on its fake interfaces: 2001:db8::/64 holds
  // 2001:db8::1 but not 2001:db8:1::2. The IPv4 addresses of the same flag are left to the IPv4 proxier.
  it.each([
    ['ipv6, localhost-nodeports enabled', { localhostNodePorts: true }, true],
    ['ipv6, localhost-nodeports disabled', { localhostNodePorts: false }, true],
    ['ipv6, localhost-nodeports disabled, multiple nodeport-addresses', { localhostNodePorts: false, nodePortAddresses: ['192.168.0.2', '192.168.1.2', '2001:db8::1'] }, false],
  ] as const)('%s', (_name, overrides, allowAltNodeIP) => {
    const text = rules(objects, overrides);
    checkFlows(text, [
      ['pod to cluster IP', 'fd00:10::2', 'fd00:172:30::41', 80, BOTH, false],
      ['external to nodePort', '2600:5200::1', '2001:db8::1', 3001, BOTH, true],
      ['node to nodePort', '2001:db8::1', '2001:db8::1', 3001, BOTH, true],
      ['localhost to nodePort is ignored', '::1', '::1', 3001, ''],
      allowAltNodeIP
        ? ['external to nodePort on secondary IP', '2600:5200::1', '2001:db8:1::2', 3001, BOTH, true]
        : ['secondary nodeIP ignores NodePorts', '2600:5200::1', '2001:db8:1::2', 3001, ''],
    ]);
    // expectFirewall is false for every IPv6 case.
    expect(text).not.toContain('KUBE-FIREWALL');
  });

  it('the NodePorts rule: `! -d ::1/128` on the MatchAll form, whatever localhost NodePorts say; `-d IP` per address otherwise', () => {
    for (const localhostNodePorts of [true, false]) {
      expect(tailRules(defaultIptablesOptions({ family: 'IPv6', localhostNodePorts }))).toEqual([
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS',
      ]);
    }
    // Loopback is never a NodePort address in IPv6 ("localhost NodePorts are not supported on IPv6"); other
    // families' addresses belong to the other proxier.
    expect(tailRules(defaultIptablesOptions({ family: 'IPv6', nodePortAddresses: ['::1', '127.0.0.1', '2001:db8::1', '192.168.0.2', '2001:db8:1::2'] }))).toEqual([
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 2001:db8::1 -j KUBE-NODEPORTS',
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 2001:db8:1::2 -j KUBE-NODEPORTS',
    ]);
    expect(tailRules(defaultIptablesOptions({ family: 'IPv4', localhostNodePorts: true, nodePortAddresses: ['127.0.0.1', '2001:db8::1', '192.168.0.2'] }))).toEqual([
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 127.0.0.1 -j KUBE-NODEPORTS',
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS',
    ]);
  });

  it('no localhost NodePorts in IPv6: no KUBE-FIREWALL chain or jumps, no route_localnet', () => {
    const opts = defaultIptablesOptions({ family: 'IPv6', localhostNodePorts: true, nodePortAddresses: 'all' });
    expect(localhostNodePortsOn(opts)).toBe(false);
    const text = rules(objects, { localhostNodePorts: true });
    expect(parseRules(text).get('filter')!.has('KUBE-FIREWALL')).toBe(false);
    expect(text).not.toContain('-j KUBE-FIREWALL');
    expect(text).not.toMatch(/127\.0\.0/);
  });
});

describe('IPv6 flows (upstream tables with IPv6 addresses)', () => {
  it('ClusterIP: one and two endpoints, masquerade from outside the pod CIDR only', () => {
    const text = rules([
      ...svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'ClusterIP' }, [at('fd00:10:180::1')]),
      ...svc({ name: 'svc2', clusterIP: 'fd00:172:30::42', type: 'ClusterIP' }, [at('fd00:10:180::1'), at('fd00:10:180::2:1')]),
    ]);
    checkFlows(text, [
      ['no match', 'fd00:10::2', 'fd00:172:30::99', 80, ''],
      ['single endpoint', 'fd00:10::2', 'fd00:172:30::41', 80, '[fd00:10:180::1]:80', false],
      ['multiple endpoints', 'fd00:10::2', 'fd00:172:30::42', 80, BOTH, false],
      ['node to cluster IP is masqueraded', '2001:db8::1', 'fd00:172:30::41', 80, '[fd00:10:180::1]:80', true],
      ['wrong port', 'fd00:10::2', 'fd00:172:30::41', 81, ''],
    ]);
  });

  it('TestNoEndpointsReject', () => {
    const text = rules(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', externalIPs: ['2001:db8:1::2'], loadBalancerIngress: [{ ip: '2001:db8:ff::1' }] }, []));
    checkFlows(text, [
      ['pod to cluster IP with no endpoints', 'fd00:10::2', 'fd00:172:30::41', 80, 'REJECT'],
      ['external to external IP with no endpoints', '2600:5200::1', '2001:db8:1::2', 80, 'REJECT'],
      ['pod to NodePort with no endpoints', 'fd00:10::2', '2001:db8::1', 3001, 'REJECT'],
      ['external to NodePort with no endpoints', '2600:5200::1', '2001:db8::1', 3001, 'REJECT'],
      ['pod to LoadBalancer IP with no endpoints', 'fd00:10::2', '2001:db8:ff::1', 80, 'REJECT'],
      ['external to LoadBalancer IP with no endpoints', '2600:5200::1', '2001:db8:ff::1', 80, 'REJECT'],
    ]);
  });

  it('TestExternalTrafficPolicyLocal', () => {
    const text = rules(
      svc(
        { name: 'svc1', clusterIP: 'fd00:172:30::41', externalIPs: ['2001:db8:1::2'], loadBalancerIngress: [{ ip: '2001:db8:ff::1' }], externalTrafficPolicy: 'Local', healthCheckNodePort: 30000 },
        [at('fd00:10:180::1'), at('fd00:10:180::2:1', NODE)],
      ),
    );
    const local = '[fd00:10:180::2:1]:80';
    checkFlows(text, [
      ['pod to cluster IP hits both endpoints, unmasqueraded', 'fd00:10::2', 'fd00:172:30::41', 80, BOTH, false],
      ['pod to external IP hits both endpoints, unmasqueraded', 'fd00:10::2', '2001:db8:1::2', 80, BOTH, false],
      ['external to external IP hits only local endpoint, unmasqueraded', '2600:5200::1', '2001:db8:1::2', 80, local, false],
      ['pod to LB IP hits only both endpoints, unmasqueraded', 'fd00:10::2', '2001:db8:ff::1', 80, BOTH, false],
      ['external to LB IP hits only local endpoint, unmasqueraded', '2600:5200::1', '2001:db8:ff::1', 80, local, false],
      ['pod to NodePort hits both endpoints, unmasqueraded', 'fd00:10::2', '2001:db8::1', 3001, BOTH, false],
      ['external to NodePort hits only local endpoint, unmasqueraded', '2600:5200::1', '2001:db8::1', 3001, local, false],
      ['node to NodePort hits both endpoints, masqueraded', '2001:db8::1', '2001:db8::1', 3001, BOTH, true],
      ['health check node port is accepted', '2600:5200::1', '2001:db8::1', 30000, 'ACCEPT'],
    ]);
  });

  it('TestExternalTrafficPolicyLocal without a local endpoint: DROP from outside', () => {
    const text = rules(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', externalIPs: ['2001:db8:1::2'], externalTrafficPolicy: 'Local' }, [at('fd00:10:180::1')]));
    checkFlows(text, [
      ['pod to cluster IP', 'fd00:10::2', 'fd00:172:30::41', 80, '[fd00:10:180::1]:80', false],
      ['external to external IP', '2600:5200::1', '2001:db8:1::2', 80, 'DROP'],
      ['external to NodePort', '2600:5200::1', '2001:db8::1', 3001, 'DROP'],
    ]);
  });

  it('TestExternalTrafficPolicyCluster', () => {
    const text = rules(
      svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', externalIPs: ['2001:db8:1::2'], loadBalancerIngress: [{ ip: '2001:db8:ff::1' }] }, [at('fd00:10:180::1'), at('fd00:10:180::2:1', NODE)]),
    );
    checkFlows(text, [
      ['pod to cluster IP hits both endpoints, unmasqueraded', 'fd00:10::2', 'fd00:172:30::41', 80, BOTH, false],
      ['pod to external IP hits both endpoints, masqueraded', 'fd00:10::2', '2001:db8:1::2', 80, BOTH, true],
      ['external to LB IP hits both endpoints, masqueraded', '2600:5200::1', '2001:db8:ff::1', 80, BOTH, true],
      ['external to NodePort hits both endpoints, masqueraded', '2600:5200::1', '2001:db8::1', 3001, BOTH, true],
    ]);
  });

  it('TestLoadBalancer: source ranges of this family; the node IP in a range lets the LB IP through', () => {
    const ep = '[fd00:10:180::1]:80';
    const text = rules(
      svc(
        {
          name: 'svc1',
          clusterIP: 'fd00:172:30::41',
          loadBalancerIngress: [{ ip: '2001:db8:ff::1' }, { ip: '2001:db8:ff::2' }],
          loadBalancerSourceRanges: ['2001:db8::/64', ' 2600:5200::/33', '192.168.0.0/24'],
        },
        [at('fd00:10:180::1')],
      ),
    );
    checkFlows(text, [
      ['pod to cluster IP', 'fd00:10::2', 'fd00:172:30::41', 80, ep, false],
      ['external to nodePort', '2600:5200::1', '2001:db8::1', 3001, ep, true],
      ['nodePort bypasses LoadBalancerSourceRanges', '2600:5200:8000::1', '2001:db8::1', 3001, ep, true],
      ['accepted external to LB1', '2600:5200::1', '2001:db8:ff::1', 80, ep, true],
      ['accepted external to LB2', '2600:5200::1', '2001:db8:ff::2', 80, ep, true],
      ['blocked external to LB1', '2600:5200:8000::1', '2001:db8:ff::1', 80, 'DROP'],
      ['pod to LB1 (blocked by LoadBalancerSourceRanges)', 'fd00:10::2', '2001:db8:ff::1', 80, 'DROP'],
      ['node to LB1 (allowed by LoadBalancerSourceRanges)', '2001:db8::1', '2001:db8:ff::1', 80, ep, true],
      ['same node to LB2, SNATted to LB2 (implicitly allowed)', '2001:db8:ff::2', '2001:db8:ff::2', 80, ep, true],
    ]);
    const fw = parseRules(text).get('nat')!.get('KUBE-FW-XPGD46QRK7WJZT7O')!;
    expect(fw).toEqual([
      '-m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 2001:db8::/64 -j KUBE-EXT-XPGD46QRK7WJZT7O',
      '-m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 2600:5200::/33 -j KUBE-EXT-XPGD46QRK7WJZT7O',
      '-m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 2001:db8:ff::1 -j KUBE-EXT-XPGD46QRK7WJZT7O',
      '-m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 2001:db8:ff::2 -j KUBE-EXT-XPGD46QRK7WJZT7O',
      '-m comment --comment "other traffic to ns1/svc1:p80 will be dropped by KUBE-PROXY-FIREWALL"',
    ]);
  });

  it('kube-proxy layout: IPv6 endpoint chains hash the bracketed [ip]:port and DNAT to it', () => {
    const text = rules(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'ClusterIP', affinityTimeoutSeconds: 10800 }, [at('fd00:10:180::1')]));
    const nat = parseRules(text).get('nat')!;
    const sep = [...nat.keys()].find((c) => c.startsWith('KUBE-SEP-'))!;
    expect(nat.get(sep)).toEqual([
      '-m comment --comment ns1/svc1:p80 -s fd00:10:180::1 -j KUBE-MARK-MASQ',
      `-m comment --comment ns1/svc1:p80 -m recent --name ${sep} --set -m tcp -p tcp -j DNAT --to-destination [fd00:10:180::1]:80`,
    ]);
    expect(nat.get('KUBE-SVC-XPGD46QRK7WJZT7O')).toEqual([
      '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d fd00:172:30::41 --dport 80 ! -s fd00:10::/64 -j KUBE-MARK-MASQ',
      `-m comment --comment "ns1/svc1:p80 -> [fd00:10:180::1]:80" -m recent --name ${sep} --rcheck --seconds 10800 --reap -j ${sep}`,
      `-m comment --comment "ns1/svc1:p80 -> [fd00:10:180::1]:80" -j ${sep}`,
    ]);
  });
});

describe('dual-stack objects rendered for IPv6', () => {
  const objects = DUAL_STACK_OBJECTS;
  const ipv4Address = /\b\d{1,3}(\.\d{1,3}){3}\b/g;

  it.each(['kube-proxy', 'flat'] as const)('%s layout: only IPv6 addresses, each Service by its IPv6 ClusterIP and slices', (layout) => {
    const ipsets = new Ipsets();
    const text = rules(objects, { layout }, ipsets);
    expect(text.match(ipv4Address) ?? []).toEqual([]);
    expect(text).not.toContain('ns1/v4only');
    checkFlows(text, [
      ['dual: ClusterIP', 'fd00:10::2', 'fd00:172:30::41', 80, '[fd00:10:180::1]:80', false],
      ['dual: external IP', '2600:5200::1', '2001:db8:1::2', 80, '[fd00:10:180::1]:80', true],
      ['dual: LB IP from an allowed range', '2600:5200::1', '2001:db8:ff::1', 80, '[fd00:10:180::1]:80', true],
      ['dual: LB IP from elsewhere', '2001:db9::1', '2001:db8:ff::1', 80, 'DROP'],
      ['dual: NodePort', '2600:5200::1', '2001:db8::1', 3001, '[fd00:10:180::1]:80', true],
      ['v6first: its IPv6 ClusterIP', 'fd00:10::2', 'fd00:172:30::42', 80, '[fd00:10:180::2]:80', false],
      ['v4only: NodePort not in IPv6', '2600:5200::1', '2001:db8::1', 3003, ''],
      ['v6only: no IPv6 endpoints', 'fd00:10::2', 'fd00:172:30::44', 80, 'REJECT'],
    ], ipsets);
  });

  it('source ranges of the other family only: no firewall in IPv6 (upstream filters them per family)', () => {
    const text = rules([
      service({
        namespace: 'ns1',
        name: 'lb',
        type: 'LoadBalancer',
        clusterIP: '172.30.0.45',
        clusterIPs: ['172.30.0.45', 'fd00:172:30::45'],
        ipFamilies: ['IPv4', 'IPv6'],
        loadBalancerIngress: [{ ip: '1.2.3.4' }, { ip: '2001:db8:ff::5' }],
        loadBalancerSourceRanges: ['203.0.113.0/25'],
        ports: [{ name: 'p80', port: 80, nodePort: 3005 }],
      }),
      v6slice('lb', [at('fd00:10:180::5')]),
    ]);
    expect(text).not.toContain('KUBE-FW-');
    expect(text).not.toContain('KUBE-PROXY-FIREWALL -m');
    checkFlows(text, [['anyone to the IPv6 LB IP', '2001:db9::1', '2001:db8:ff::5', 80, '[fd00:10:180::5]:80', true]]);
  });

  it('the IPv4 proxier of the same objects holds no IPv6 address', () => {
    const text = rules(objects, { family: 'IPv4', clusterCidr: '10.0.0.0/8' });
    expect(text).not.toContain('fd00');
    expect(text).not.toContain('2001:db8');
    expect(text).not.toContain('ns1/v6only');
    expect(text).toContain('-d 172.30.0.42 --dport 80');
  });
});

describe('flat layout in IPv6', () => {
  const objects = svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'ClusterIP' }, [at('fd00:10:180::1')]);

  it('fills KUBE-6-LOOP-BACK (family inet6): ipset names are global, so IPv4 keeps KUBE-LOOP-BACK', () => {
    const loaded = load(objects, NODE);
    const plan = compilerFor(loaded, { ...V6, layout: 'flat' }).planFull();
    expect(plan.ipset!.input).toBe(
      [
        'create KUBE-6-LOOP-BACK-NEXT hash:ip,port,ip family inet6 hashsize 1024 maxelem 1048576',
        'flush KUBE-6-LOOP-BACK-NEXT',
        'add KUBE-6-LOOP-BACK-NEXT fd00:10:180::1,tcp:80,fd00:10:180::1',
        'create KUBE-6-LOOP-BACK hash:ip,port,ip family inet6 hashsize 1024 maxelem 1048576',
        'swap KUBE-6-LOOP-BACK-NEXT KUBE-6-LOOP-BACK',
        'destroy KUBE-6-LOOP-BACK-NEXT',
        '',
      ].join('\n'),
    );
    const nat = parseRules(plan.payload.text).get('nat')!;
    expect(nat.get('KUBE-POSTROUTING')![0]).toBe(
      '-m comment --comment "kubernetes service hairpin traffic" -m conntrack --ctstate DNAT -m set --match-set KUBE-6-LOOP-BACK dst,dst,src -j KUBE-MARK-MASQ',
    );
    expect(nat.get('KUBE-SVC-XPGD46QRK7WJZT7O')).toContain('-m comment --comment "ns1/svc1:p80 -> [fd00:10:180::1]:80" -p tcp -j DNAT --to-destination [fd00:10:180::1]:80');
  });

  it('a partial sync adds the new member to KUBE-6-LOOP-BACK and rewrites the policy chain', () => {
    const loaded = load(objects, NODE);
    const compiler = compilerFor(loaded, { ...V6, layout: 'flat' });
    compiler.planFull().commit();
    setObject(loaded.state, v6slice('svc1', [at('fd00:10:180::1'), at('fd00:10:180::2:1')]));
    compiler.update(loaded.state, loaded.state.takeChanges());
    const plan = compiler.planPartial()!;
    expect(plan.ipset!.input).toBe('add KUBE-6-LOOP-BACK fd00:10:180::2:1,tcp:80,fd00:10:180::2:1\n');
    expect(plan.payload.text).toContain('-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> [fd00:10:180::2:1]:80" -p tcp -j DNAT --to-destination [fd00:10:180::2:1]:80');
  });

  it('cleanup destroys both families\' sets', () => {
    expect(iptablesCleanup(defaultIptablesTools).sets).toEqual(['KUBE-LOOP-BACK', 'KUBE-LOOP-BACK-NEXT', 'KUBE-6-LOOP-BACK', 'KUBE-6-LOOP-BACK-NEXT']);
  });
});

describe('the IPv6 backend', () => {
  it('restores with ip6tables-restore', async () => {
    const backend = new IptablesBackend(defaultIptablesOptions({ family: 'IPv6' }), defaultIptablesTools('IPv6'));
    const loaded = load(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'ClusterIP' }, [at('fd00:10:180::1')]), NODE);
    backend.update(loaded.state, loaded.state.takeChanges());
    const plan = (await backend.plan(true, { readKernel: false }))!;
    expect(plan.steps.map((s) => s.tool.label)).toEqual(['ip6tables-restore --noflush']);
    expect(plan.steps[0]!.tool.file).toBe('ip6tables-restore');
  });
});
