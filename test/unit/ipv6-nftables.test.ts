// The nftables backend built for IPv6 (table `ip6 kube-proxy`): upstream's IPv6 forms (the kube-proxy-shaped
// IPv6 dump the external-traffic reference §10.4 quotes from knftables' fake_test.go, its name vectors §10.1),
// packet flows over the IPv6 table as the fake kernel holds it, and dual-stack objects rendered for IPv6 only.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NftablesCompiler } from '../../src/backends/nftables/compiler.js';
import { endpointBase, endpointChain, nftHash } from '../../src/backends/nftables/names.js';
import { type NftablesOptions, defaultNftablesOptions, ourTable } from '../../src/backends/nftables/options.js';
import { renderTransaction } from '../../src/kernel/syntax/nft.js';
import type { LoadedState } from '../../src/sources/objects.js';
import { load, setObject } from '../support/compile.js';
import { FakeNft, type FakeTableView } from '../support/fakes/nft.js';
import { traceNftFlow as tracePacket } from '../support/upstream-trace.js';
import { service, type K8sObject } from '../support/objects.js';
import { BOTH, DUAL_STACK_OBJECTS, LOCAL_IPS, NODE, type Row, at, svc, v6slice } from '../support/upstream-ipv6.js';

const V6: Partial<NftablesOptions> = { family: 'IPv6', clusterCidr: 'fd00:10::/64' };
const T6 = 'ip6 kube-proxy';

function compiled(objects: readonly K8sObject[], overrides: Partial<NftablesOptions> = {}): { loaded: LoadedState; compiler: NftablesCompiler; text: string; view: FakeTableView } {
  const loaded = load(objects, NODE);
  loaded.state.setNodeIPs(['192.168.0.2', '2001:db8::1']);
  const compiler = new NftablesCompiler(defaultNftablesOptions({ ...V6, ...overrides }));
  compiler.update(loaded.state, loaded.state.takeChanges());
  const plan = compiler.planFull();
  const ops = [...plan.ops];
  const table = ourTable(compiler.options.family);
  const tx = { table, ops };
  const nft = new FakeNft();
  nft.apply(tx);
  plan.commit();
  return { loaded, compiler, text: [...renderTransaction(tx)].join(''), view: nft.view(table)! };
}

function checkFlows(view: FakeTableView, rows: readonly Row[]): void {
  const matched: string[] = [];
  const got = rows.map(([name, src, dst, dport, , masq]) => {
    const t = tracePacket(view, { src, dst, dport }, LOCAL_IPS);
    matched.push(`${name}:\n  ${t.matched.join('\n  ')}`);
    return [name, t.output, masq === undefined ? undefined : t.masq];
  });
  expect(got, `rules matched:\n${matched.join('\n')}`).toEqual(rows.map(([name, , , , output, masq]) => [name, output, masq]));
}


describe('upstream\'s IPv6 forms (reference §10.4, knftables fake_test.go\'s kube-proxy-shaped IPv6 dump)', () => {
  const EXCERPT = readFileSync(new URL('./upstream/knftables-ipv6-excerpt.nft', import.meta.url), 'utf8').split('\n').filter((l) => l !== '');
  // The dump's Service: ns1/svc1, ClusterIP fd00:172:30::41, p80 NodePort 3001, two endpoints, both node IPs
  // NodePort addresses. externalTrafficPolicy Local here, so that it keeps upstream's per-port chains (under
  // Cluster it balances through the shared lb- chains, a deliberate difference).
  const { text } = compiled(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'NodePort', externalTrafficPolicy: 'Local' }, [at('fd00:10:180::1'), at('fd00:10:180::2:1', NODE)]), {
    nodePortAddresses: ['2001:db8::1', '2001:db8:1::2'],
  });
  const ours = new Set(
    text
      .split('\n')
      .flatMap((l) => {
        // One element per line, as the dump writes them.
        const m = /^add element (\S+ \S+ \S+) \{ (.*) \}$/.exec(l);
        if (m === null) return [l];
        // Our dispatch elements name their Service port (a deliberate difference, docs/backends/nftables.md).
        const bare = (e: string): string => (/ (service-ips|service-nodeports)$/.test(m[1]!) ? e.replace(/ comment "[^"]*"/, '') : e);
        return m[2]!.split(', ').map((e) => `add element ${m[1]} { ${bare(e)} }`);
      }),
  );
  /** The dump's lines we do not write, and why. */
  const differs = (l: string): string | undefined => {
    if (/filter-output-post-dnat|filter-prerouting \{/.test(l)) return 'v1.31-v1.33 base chains (ours are v1.34+)';
    if (l.includes('Drop traffic to unallocated ClusterIPs')) return 'no ServiceCIDRs watched';
    if (/^add rule ip6 kube-proxy endpoint-\S+ ip6 saddr \S+ jump mark-for-masquerade$/.test(l)) return 'hairpin-connections set';
    if (/^add rule ip6 kube-proxy service-\S+ ip6 daddr .* jump mark-for-masquerade$/.test(l)) return 'one services rule over @cluster-ips';
    if (l.startsWith(`add rule ${T6} external-`)) return 'the dump\'s Service is externalTrafficPolicy Cluster';
    return undefined;
  };

  it('writes every other line of the dump verbatim (element comments aside: knftables\' "test comment", our ServicePortNames)', () => {
    const expected = EXCERPT.filter((l) => differs(l) === undefined).map((l) => l.replace(' comment "test comment"', ''));
    expect(expected.length).toBeGreaterThan(12);
    expect(expected.filter((l) => !ours.has(l))).toEqual([]);
  });

  it('endpoint chain names: IPv6 colons become dots, as upstream hashes them', () => {
    expect(nftHash('testing/service/tcp/http')).toBe('P4ZYZVCF');
    expect(endpointBase('testing/service/tcp/http', { ip: 'fd80:abcd:12::a1b2:c3d4:e5f6:9999', port: 80 })).toBe('testing/service/tcp/http__fd80.abcd.12..a1b2.c3d4.e5f6.9999/80');
    expect(nftHash('testing/service/tcp/http__fd80.abcd.12..a1b2.c3d4.e5f6.9999/80')).toBe('U7E2ET36');
    expect(endpointChain(endpointBase('ns1/svc1/tcp/p80', { ip: 'fd00:10:180::2:1', port: 80 }))).toBe('endpoint-2CRNCTTE-ns1/svc1/tcp/p80__fd00.10.180..2.1/80');
  });
});

describe('the IPv6 table', () => {
  it('IPv6 types throughout: sets and maps of ipv6_addr, endpoints maps typeof ip6 daddr, the hairpin set', () => {
    const { text } = compiled(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'ClusterIP' }, [at('fd00:10:180::1')]));
    const lines = text.split('\n');
    for (const l of [
      `add set ${T6} cluster-ips { type ipv6_addr ; comment "Active ClusterIPs" ; }`,
      `add map ${T6} no-endpoint-services { type ipv6_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }`,
      `add map ${T6} firewall-ips { type ipv6_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`,
      `add set ${T6} hairpin-connections { type ipv6_addr . ipv6_addr . inet_proto . inet_service ; comment "service hairpin connections" ; }`,
      `add map ${T6} service-endpoints-tcp { typeof ip6 daddr . tcp dport . numgen random mod 1 : ip6 daddr . tcp dport ; comment "endpoints of load-balanced tcp service ports, by index" ; }`,
      `add map ${T6} nodeport-endpoints-udp { typeof udp dport . numgen random mod 1 : ip6 daddr . udp dport ; comment "endpoints of load-balanced udp NodePorts, by index" ; }`,
      `add rule ${T6} services ip6 daddr @cluster-ips ip6 saddr != fd00:10::/64 meta mark set meta mark | 0x4000 comment "masquerade clusterIP traffic from outside cluster"`,
      `add rule ${T6} masquerading ct status dnat ip6 saddr . ip6 daddr . meta l4proto . th dport @hairpin-connections masquerade fully-random`,
      `add rule ${T6} lb-tcp-1 meta l4proto tcp dnat to ip6 daddr . tcp dport . numgen random mod 1 map @service-endpoints-tcp`,
      `add element ${T6} service-endpoints-tcp { fd00:172:30::41 . 80 . 0 : fd00:10:180::1 . 80 }`,
      `add element ${T6} hairpin-connections { fd00:10:180::1 . fd00:10:180::1 . tcp . 80 }`,
      `add element ${T6} nodeport-ips { 2001:db8::1 }`,
    ]) {
      expect(lines).toContain(l);
    }
    expect(text).not.toMatch(/\bip (saddr|daddr)\b|ipv4_addr/);
  });

  it('NodePorts on every local address but ::1 (the `all` form)', () => {
    const { text, view } = compiled(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'NodePort' }, [at('fd00:10:180::1'), at('fd00:10:180::2:1', NODE)]), { nodePortAddresses: 'all' });
    expect(text).toContain(`add rule ${T6} services fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports\n`);
    expect(text).toContain(`add rule ${T6} nodeport-endpoints-check ip6 daddr != ::1 meta l4proto . th dport vmap @no-endpoint-nodeports\n`);
    expect(text).not.toContain(`add element ${T6} nodeport-ips`);
    checkFlows(view, [
      ['external to nodePort', '2600:5200::1', '2001:db8::1', 3001, BOTH, true],
      ['external to nodePort on secondary IP', '2600:5200::1', '2001:db8:1::2', 3001, BOTH, true],
      ['localhost to nodePort is ignored', '::1', '::1', 3001, ''],
      ['not a local address', '2600:5200::1', '2001:db8:2::1', 3001, ''],
    ]);
  });

  it('NodePort addresses: only this family\'s, never loopback', () => {
    const { text } = compiled(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'NodePort' }, [at('fd00:10:180::1')]), {
      nodePortAddresses: ['192.168.0.2', '::1', '2001:db8:1::2', '2001:db8::1'],
    });
    expect(text).toContain(`add element ${T6} nodeport-ips { 2001:db8:1::2, 2001:db8::1 }\n`);
  });
});

describe('IPv6 flows', () => {
  it('ClusterIP: balanced through the shared chain, hairpin masqueraded, other ports rejected', () => {
    const { view } = compiled([
      ...svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'ClusterIP' }, [at('fd00:10:180::1')]),
      ...svc({ name: 'svc2', clusterIP: 'fd00:172:30::42', type: 'ClusterIP' }, [at('fd00:10:180::1'), at('fd00:10:180::2:1')]),
    ]);
    checkFlows(view, [
      ['no match', 'fd00:10::2', 'fd00:172:30::99', 80, ''],
      ['single endpoint', 'fd00:10::2', 'fd00:172:30::41', 80, '[fd00:10:180::1]:80', false],
      ['multiple endpoints', 'fd00:10::2', 'fd00:172:30::42', 80, BOTH, false],
      ['hairpin to cluster IP', 'fd00:10:180::1', 'fd00:172:30::41', 80, '[fd00:10:180::1]:80', true],
      ['node to cluster IP is masqueraded', '2001:db8::1', 'fd00:172:30::41', 80, '[fd00:10:180::1]:80', true],
      ["svc1 does not accept other ports", 'fd00:10::2', 'fd00:172:30::41', 443, 'REJECT'],
    ]);
  });

  it('TestNoEndpointsReject', () => {
    const { view } = compiled(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', externalIPs: ['2001:db8:1::2'], loadBalancerIngress: [{ ip: '2001:db8:ff::1' }] }, []));
    checkFlows(view, [
      ['pod to cluster IP with no endpoints', 'fd00:10::2', 'fd00:172:30::41', 80, 'REJECT'],
      ['external to external IP with no endpoints', '2600:5200::1', '2001:db8:1::2', 80, 'REJECT'],
      ['pod to NodePort with no endpoints', 'fd00:10::2', '2001:db8::1', 3001, 'REJECT'],
      ['external to NodePort with no endpoints', '2600:5200::1', '2001:db8::1', 3001, 'REJECT'],
      ['pod to LoadBalancer IP with no endpoints', 'fd00:10::2', '2001:db8:ff::1', 80, 'REJECT'],
      ['external to LoadBalancer IP with no endpoints', '2600:5200::1', '2001:db8:ff::1', 80, 'REJECT'],
    ]);
  });

  it('TestExternalTrafficPolicyLocal', () => {
    const { view } = compiled(
      svc(
        { name: 'svc1', clusterIP: 'fd00:172:30::41', externalIPs: ['2001:db8:1::2'], loadBalancerIngress: [{ ip: '2001:db8:ff::1' }], externalTrafficPolicy: 'Local', healthCheckNodePort: 30000 },
        [at('fd00:10:180::1'), at('fd00:10:180::2:1', NODE)],
      ),
    );
    const local = '[fd00:10:180::2:1]:80';
    checkFlows(view, [
      ['pod to cluster IP hits both endpoints, unmasqueraded', 'fd00:10::2', 'fd00:172:30::41', 80, BOTH, false],
      ['pod to external IP hits both endpoints, unmasqueraded', 'fd00:10::2', '2001:db8:1::2', 80, BOTH, false],
      ['external to external IP hits only local endpoint, unmasqueraded', '2600:5200::1', '2001:db8:1::2', 80, local, false],
      ['pod to LB IP hits only both endpoints, unmasqueraded', 'fd00:10::2', '2001:db8:ff::1', 80, BOTH, false],
      ['external to LB IP hits only local endpoint, unmasqueraded', '2600:5200::1', '2001:db8:ff::1', 80, local, false],
      ['pod to NodePort hits both endpoints, unmasqueraded', 'fd00:10::2', '2001:db8::1', 3001, BOTH, false],
      ['external to NodePort hits only local endpoint, unmasqueraded', '2600:5200::1', '2001:db8::1', 3001, local, false],
    ]);
  });

  it('TestExternalTrafficPolicyLocal without a local endpoint: DROP from outside', () => {
    const { view } = compiled(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', externalIPs: ['2001:db8:1::2'], externalTrafficPolicy: 'Local' }, [at('fd00:10:180::1')]));
    checkFlows(view, [
      ['pod to cluster IP', 'fd00:10::2', 'fd00:172:30::41', 80, '[fd00:10:180::1]:80', false],
      ['external to external IP', '2600:5200::1', '2001:db8:1::2', 80, 'DROP'],
      ['external to NodePort', '2600:5200::1', '2001:db8::1', 3001, 'DROP'],
    ]);
  });

  it('TestExternalTrafficPolicyCluster (the shared lb-masq- and lb-nodeport- chains)', () => {
    const { view } = compiled(
      svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', externalIPs: ['2001:db8:1::2'], loadBalancerIngress: [{ ip: '2001:db8:ff::1' }] }, [at('fd00:10:180::1'), at('fd00:10:180::2:1', NODE)]),
    );
    checkFlows(view, [
      ['pod to cluster IP hits both endpoints, unmasqueraded', 'fd00:10::2', 'fd00:172:30::41', 80, BOTH, false],
      ['pod to external IP hits both endpoints, masqueraded', 'fd00:10::2', '2001:db8:1::2', 80, BOTH, true],
      ['external to LB IP hits both endpoints, masqueraded', '2600:5200::1', '2001:db8:ff::1', 80, BOTH, true],
      ['external to NodePort hits both endpoints, masqueraded', '2600:5200::1', '2001:db8::1', 3001, BOTH, true],
    ]);
  });

  it('TestLoadBalancer: IPv6 source ranges; the primary node IP in a range lets the LB IPs through', () => {
    const ep = '[fd00:10:180::1]:80';
    const { text, view } = compiled(
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
    expect(text).toContain(`add rule ${T6} firewall-ULMVA6XW-ns1/svc1/tcp/p80 ip6 saddr != { 2001:db8::/64 , 2600:5200::/33 , 2001:db8:ff::1 , 2001:db8:ff::2 } drop\n`);
    checkFlows(view, [
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
  });

  it('ClientIP affinity: upstream\'s chains, the affinity sets of ipv6_addr updated with ip6 saddr', () => {
    const { text, view } = compiled(svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'ClusterIP', affinityTimeoutSeconds: 600 }, [at('fd00:10:180::1'), at('fd00:10:180::2:1')]));
    const ep = 'ns1/svc1/tcp/p80__fd00.10.180..1/80';
    expect(text).toContain(`add set ${T6} affinity-ZVRFLKHO-${ep} { type ipv6_addr ; flags dynamic,timeout ; timeout 600s ; }\n`);
    expect(text).toContain(`add rule ${T6} endpoint-ZVRFLKHO-${ep} update @affinity-ZVRFLKHO-${ep} { ip6 saddr }\n`);
    expect(text).toContain(`add rule ${T6} endpoint-ZVRFLKHO-${ep} meta l4proto tcp dnat to [fd00:10:180::1]:80\n`);
    expect(text).toContain(`add rule ${T6} service-ULMVA6XW-ns1/svc1/tcp/p80 ip6 saddr @affinity-ZVRFLKHO-${ep} goto endpoint-ZVRFLKHO-${ep}\n`);
    checkFlows(view, [['pod to cluster IP', 'fd00:10::2', 'fd00:172:30::41', 80, BOTH, false]]);
  });
});

describe('dual-stack objects rendered for IPv6', () => {
  const objects = DUAL_STACK_OBJECTS;

  it('only IPv6 addresses; each Service by its IPv6 ClusterIP and slices; an IPv4-only Service not at all', () => {
    const { text, view } = compiled(objects);
    expect(text.match(/\b\d{1,3}(\.\d{1,3}){3}\b/g) ?? []).toEqual([]);
    expect(text).not.toContain('ns1/v4only');
    expect(text).not.toContain('3003');
    checkFlows(view, [
      ['dual: ClusterIP', 'fd00:10::2', 'fd00:172:30::41', 80, '[fd00:10:180::1]:80', false],
      ['dual: external IP', '2600:5200::1', '2001:db8:1::2', 80, '[fd00:10:180::1]:80', true],
      ['dual: LB IP from an allowed range', '2600:5200::1', '2001:db8:ff::1', 80, '[fd00:10:180::1]:80', true],
      ['dual: LB IP from elsewhere', '2001:db9::1', '2001:db8:ff::1', 80, 'DROP'],
      ['dual: NodePort', '2600:5200::1', '2001:db8::1', 3001, '[fd00:10:180::1]:80', true],
      ['v6first: its IPv6 ClusterIP', 'fd00:10::2', 'fd00:172:30::42', 80, '[fd00:10:180::2]:80', false],
      ['v4only: NodePort not in IPv6', '2600:5200::1', '2001:db8::1', 3003, ''],
      ['v6only: no IPv6 endpoints', 'fd00:10::2', 'fd00:172:30::44', 80, 'REJECT'],
    ]);
  });

  it('source ranges of the other family only: no firewall in IPv6 (upstream filters them per family)', () => {
    const { text, view } = compiled([
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
    expect(text).not.toMatch(/firewall-\S*\//);
    expect(text).not.toContain(`add element ${T6} firewall-ips`);
    checkFlows(view, [['anyone to the IPv6 LB IP', '2001:db9::1', '2001:db8:ff::5', 80, '[fd00:10:180::5]:80', true]]);
  });

  it('the IPv4 table of the same objects holds no IPv6 address', () => {
    const { text } = compiled(objects, { family: 'IPv4', clusterCidr: '10.0.0.0/8' });
    expect(text).not.toContain('ip6 ');
    expect(text).not.toContain('fd00');
    expect(text).not.toContain('2001:db8');
    expect(text).not.toContain('ns1/v6only');
    expect(text).toContain('add element ip kube-proxy cluster-ips { 172.30.0.42 }');
  });
});

describe('IPv6 partial syncs', () => {
  it('an endpoint replaced: the endpoints map element and the hairpin set, in the ip6 table', () => {
    const objects = svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'ClusterIP' }, [at('fd00:10:180::1'), at('fd00:10:180::2:1')]);
    const { loaded, compiler } = compiled(objects);
    setObject(loaded.state, v6slice('svc1', [at('fd00:10:180::1'), at('fd00:10:180::3')]));
    compiler.update(loaded.state, loaded.state.takeChanges());
    const plan = compiler.planPartial()!;
    expect([...renderTransaction({ table: ourTable('IPv6'), ops: [...plan.ops] })].join('').trimEnd().split('\n')).toEqual([
      `delete element ${T6} service-endpoints-tcp { fd00:172:30::41 . 80 . 1 }`,
      `add element ${T6} service-endpoints-tcp { fd00:172:30::41 . 80 . 1 : fd00:10:180::3 . 80 }`,
      `add element ${T6} hairpin-connections { fd00:10:180::3 . fd00:10:180::3 . tcp . 80 }`,
    ]);
  });
});
