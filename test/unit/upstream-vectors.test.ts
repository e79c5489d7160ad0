import { describe, expect, it } from 'vitest';
import { endpointChain, servicePortChains } from '../../src/backends/iptables/names.js';
import { chainHash } from '../../src/backends/shared/chain-hash.js';
import { probability } from '../../src/backends/iptables/probability.js';
import { compilerFor, load } from '../support/compile.js';
import { parseRules } from '../support/iptables-text.js';
import { endpointSlice, service } from '../support/objects.js';

// Vectors from kubernetes/kubernetes pkg/proxy/iptables/proxier_test.go, whose fake proxier uses node
// "test-node", local detector 10.0.0.0/8 and mark 0x4000. Upstream compares sorted text; these tests
// compare chain by chain, which is what the kernel sees.
const UPSTREAM = { clusterCidr: '10.0.0.0/8' };

describe('chain names (upstream test vectors)', () => {
  it.each([
    ['ns1/svc1:p80', 'TCP', 'KUBE-SVC-XPGD46QRK7WJZT7O'],
    ['ns2/svc2:p80', 'TCP', 'KUBE-SVC-GNZBNJ2PO5MGZ6GT'],
    ['ns3/svc3:p80', 'TCP', 'KUBE-SVC-X27LE4BHSL4DOUIK'],
    ['ns4/svc4:p8082', 'TCP', 'KUBE-SVC-EBDQOQU5SJFXRIL3'],
    ['ns1/svc1:http', 'TCP', 'KUBE-SVC-CW3AQCZPGQ5G56X3'],
    ['ns2/svc2:dns-udp', 'UDP', 'KUBE-SVC-56EGM3ZB4YILLRBZ'],
  ] as const)('%s %s is %s', (spn, proto, chain) => {
    expect(servicePortChains(spn, proto).svc).toBe(chain);
  });

  it.each([
    ['ns1/svc1:p80', '10.180.0.1:80', 'KUBE-SEP-SXIVWICOYRO3J4NJ'],
    ['ns4/svc4:p80', '10.180.0.4:80', 'KUBE-SEP-UKSFD7AGPMPPLUHC'],
    ['ns1/svc1:p80', '10.0.0.0:80', 'KUBE-SEP-DKGQUZGBKLTPAR56'],
    ['ns3/svc3:p8081', '203.0.113.4:8081', 'KUBE-SEP-RUVVH7YV3PHQBDOS'],
    ['ns4/svc4:p8082', '10.4.0.1:8082', 'KUBE-SEP-SU5STNODRYEWJAUF'],
    ['ns2/svc2:p80', '10.180.0.2:80', 'KUBE-SEP-RS4RBKLTHTF2IUXJ'],
  ] as const)('%s -> %s is %s', (spn, ep, chain) => {
    expect(endpointChain(spn, 'TCP', ep)).toBe(chain);
  });

  it('SVC, SVL, EXT and FW share one hash and differ only in prefix', () => {
    const c = servicePortChains('ns1/svc1:p80', 'TCP');
    expect([c.svc, c.svl, c.ext, c.fw]).toEqual([
      'KUBE-SVC-XPGD46QRK7WJZT7O',
      'KUBE-SVL-XPGD46QRK7WJZT7O',
      'KUBE-EXT-XPGD46QRK7WJZT7O',
      'KUBE-FW-XPGD46QRK7WJZT7O',
    ]);
    expect(chainHash('')).toMatch(/^[A-Z2-7]{16}$/);
  });
});

describe('probabilities (TestComputeProbability)', () => {
  it.each([
    [1, '1.0000000000'],
    [2, '0.5000000000'],
    [10, '0.1000000000'],
    [100, '0.0100000000'],
    [1000, '0.0010000000'],
    [10000, '0.0001000000'],
    [100000, '0.0000100000'],
    [100001, '0.0000099999'],
    // A true tie at the 11th decimal: Go rounds half to even, JavaScript's toFixed would print ...813.
    [2048, '0.0004882812'],
    [3, '0.3333333333'],
  ])('1/%i is %s', (n, text) => {
    expect(probability(n)).toBe(text);
  });

  it('strictly increases as n falls from 100000 to 2', () => {
    let previous = Number(probability(100000));
    for (let n = 99999; n >= 2; n--) {
      const p = Number(probability(n));
      expect(p).toBeGreaterThan(previous);
      previous = p;
    }
  });
});

describe('TestOverallIPTablesRules (ClusterIP parts)', () => {
  const loaded = load([
    service({ namespace: 'ns1', name: 'svc1', clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80 }] }),
    endpointSlice({ namespace: 'ns1', name: 'svc1-1', service: 'svc1', ports: [{ name: 'p80', port: 80 }], endpoints: [{ ip: '10.180.0.1' }] }),
    service({ namespace: 'ns5', name: 'svc5', clusterIP: '172.30.0.45', ports: [{ name: 'p80', port: 80 }], affinityTimeoutSeconds: 10800 }),
    endpointSlice({ namespace: 'ns5', name: 'svc5-1', service: 'svc5', ports: [{ name: 'p80', port: 80 }], endpoints: [{ ip: '10.180.0.3' }] }),
    service({ namespace: 'ns4', name: 'svc4', clusterIP: '172.30.0.44', ports: [{ name: 'p80', port: 80 }] }),
    endpointSlice({
      namespace: 'ns4',
      name: 'svc4-1',
      service: 'svc4',
      ports: [{ name: 'p80', port: 80 }],
      endpoints: [{ ip: '10.180.0.4' }, { ip: '10.180.0.5', nodeName: 'test-node' }],
    }),
    service({ namespace: 'ns6', name: 'svc6', clusterIP: '172.30.0.46', ports: [{ name: 'p80', port: 80 }] }),
  ]);
  const tables = parseRules(compilerFor(loaded, UPSTREAM).planFull().payload.text);
  const nat = tables.get('nat')!;
  const filter = tables.get('filter')!;

  it('svc1: dispatch, masquerade of off-cluster sources, one endpoint', () => {
    expect(nat.get('KUBE-SERVICES')).toContain(
      '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
    );
    expect(nat.get('KUBE-SVC-XPGD46QRK7WJZT7O')).toEqual([
      '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
      '-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ',
    ]);
    expect(nat.get('KUBE-SEP-SXIVWICOYRO3J4NJ')).toEqual([
      '-m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ',
      '-m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80',
    ]);
  });

  it('svc5: ClientIP affinity with recent lists named after the endpoint chain', () => {
    expect(nat.get('KUBE-SVC-NUKIZ6OKUXPJNT4C')).toEqual([
      '-m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
      '-m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN',
      '-m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN',
    ]);
    expect(nat.get('KUBE-SEP-I77PXRDZVX7PMWMN')).toEqual([
      '-m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ',
      '-m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80',
    ]);
  });

  it('svc4: two endpoints share load with a 10-decimal probability, the last unconditional', () => {
    expect(nat.get('KUBE-SVC-4SW47YFZTEDKD3PK')).toEqual([
      '-m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
      '-m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC',
      '-m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ',
    ]);
  });

  it('svc6: no endpoints is a filter REJECT and no nat chain', () => {
    expect(filter.get('KUBE-SERVICES')).toEqual([
      '-m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT',
    ]);
    expect([...nat.get('KUBE-SERVICES')!].some((r) => r.includes('ns6/svc6'))).toBe(false);
  });

  it('fixed chains carry the masquerade mark scheme and the NodePorts rule last', () => {
    expect(nat.get('KUBE-MARK-MASQ')).toEqual(['-j MARK --or-mark 0x4000']);
    expect(nat.get('KUBE-POSTROUTING')).toEqual([
      '-m mark ! --mark 0x4000/0x4000 -j RETURN',
      '-j MARK --xor-mark 0x4000',
      '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]);
    expect(nat.get('KUBE-SERVICES')!.at(-1)).toBe(
      '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    );
    expect(filter.get('KUBE-FORWARD')).toEqual([
      '-m conntrack --ctstate INVALID -j DROP',
      '-m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
      '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]);
  });
});

describe('TestInternalTrafficPolicy (derived rules)', () => {
  const svc = service({ namespace: 'ns1', name: 'svc1', clusterIP: '172.30.1.1', ports: [{ port: 80 }], internalTrafficPolicy: 'Local' });
  const slice = (nodes: string[]) =>
    endpointSlice({
      namespace: 'ns1',
      name: 'svc1-1',
      service: 'svc1',
      ports: [{ port: 80 }],
      endpoints: nodes.map((nodeName, i) => ({ ip: `10.0.1.${i + 1}`, nodeName })),
    });

  it('uses only the local endpoint through KUBE-SVL and writes no KUBE-SVC chain', () => {
    const tables = parseRules(compilerFor(load([svc, slice(['test-node', 'node1', 'node2'])]), UPSTREAM).planFull().payload.text);
    const nat = tables.get('nat')!;
    expect(nat.get('KUBE-SERVICES')).toContain(
      '-m comment --comment "ns1/svc1 cluster IP" -m tcp -p tcp -d 172.30.1.1 --dport 80 -j KUBE-SVL-AQI2S6QIMU7PVVRP',
    );
    expect(nat.get('KUBE-SVL-AQI2S6QIMU7PVVRP')).toEqual([
      '-m comment --comment "ns1/svc1 cluster IP" -m tcp -p tcp -d 172.30.1.1 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
      '-m comment --comment "ns1/svc1 -> 10.0.1.1:80" -j KUBE-SEP-3JOIVZTXZZRGORX4',
    ]);
    expect(nat.has('KUBE-SVC-AQI2S6QIMU7PVVRP')).toBe(false);
    expect(nat.has('KUBE-SEP-IO5XOSKPAXIFQXAJ')).toBe(false);
  });

  it('drops in filter when every endpoint is remote', () => {
    const tables = parseRules(compilerFor(load([svc, slice(['node1', 'node2'])]), UPSTREAM).planFull().payload.text);
    expect(tables.get('filter')!.get('KUBE-SERVICES')).toEqual([
      '-m comment --comment "ns1/svc1 has no local endpoints" -m tcp -p tcp -d 172.30.1.1 --dport 80 -j DROP',
    ]);
    expect([...tables.get('nat')!.keys()].filter((c) => c.startsWith('KUBE-S') && c !== 'KUBE-SERVICES')).toEqual([]);
  });
});
