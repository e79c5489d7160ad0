import { describe, expect, it } from 'vitest';
import { IptablesCompiler } from '../../src/backends/iptables/compiler.js';
import { parseLiveRules } from '../../src/backends/iptables/live-rules.js';
import { defaultIptablesOptions } from '../../src/backends/iptables/options.js';
import type { ClusterState } from '../../src/model/state.js';
import { serviceKey } from '../../src/model/types.js';
import { load, setObject } from '../support/compile.js';
import { parseRules } from '../support/iptables-text.js';
import { endpointSlice, service } from '../support/objects.js';

// The steps of upstream's TestSyncProxyRulesRepeated, checked against our partial payloads, which are
// smaller than upstream's: the shared KUBE-SERVICES chains are edited with -D/-I, not rewritten.

const svc = (n: number, port = 80) =>
  service({ namespace: `ns${n}`, name: `svc${n}`, clusterIP: `172.30.0.4${n}`, ports: [{ name: `p${port}`, port }] });
const slice = (n: number, ips: string[], port = 80) =>
  endpointSlice({ namespace: `ns${n}`, name: `svc${n}-1`, service: `svc${n}`, ports: [{ name: `p${port}`, port }], endpoints: ips.map((ip) => ({ ip })) });


function partial(compiler: IptablesCompiler, state: ClusterState): string | undefined {
  compiler.update(state, state.takeChanges());
  const plan = compiler.planPartial();
  plan?.commit();
  return plan?.payload.text;
}

describe('partial syncs (TestSyncProxyRulesRepeated steps)', () => {
  const { state } = load([svc(1), slice(1, ['10.0.1.1']), svc(2, 8080), slice(2, ['10.0.2.1'], 8080)]);
  const compiler = new IptablesCompiler(defaultIptablesOptions({ clusterCidr: '10.0.0.0/8' }));
  compiler.update(state, state.takeChanges());
  compiler.planFull().commit();

  it('a no-op sync writes nothing', () => {
    expect(partial(compiler, state)).toBeUndefined();
  });

  it('adding a Service writes its chains and inserts one dispatch rule above the NodePorts rule', () => {
    setObject(state, svc(3));
    setObject(state, slice(3, ['10.0.3.1']));
    const text = partial(compiler, state)!;
    expect(text).toBe(
      [
        '*nat',
        ':KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]',
        ':KUBE-SEP-BSWRHOQ77KEXZLNL - [0:0]',
        '-I KUBE-SERVICES 1 -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK',
        '-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
        '-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.0.3.1:80" -j KUBE-SEP-BSWRHOQ77KEXZLNL',
        '-A KUBE-SEP-BSWRHOQ77KEXZLNL -m comment --comment ns3/svc3:p80 -s 10.0.3.1 -j KUBE-MARK-MASQ',
        '-A KUBE-SEP-BSWRHOQ77KEXZLNL -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.3.1:80',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('deleting a Service deletes its dispatch rule, then flushes and deletes its chains', () => {
    state.deleteService(serviceKey('ns2', 'svc2'));
    const text = partial(compiler, state)!;
    expect(text).toBe(
      [
        '*nat',
        ':KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]',
        ':KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]',
        '-D KUBE-SERVICES -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 8080 -j KUBE-SVC-2VJB64SDSIJUP5T6',
        '-X KUBE-SVC-2VJB64SDSIJUP5T6',
        '-X KUBE-SEP-UHEGFW77JX3KXTOV',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('a Service without endpoints adds only a filter REJECT', () => {
    setObject(state, svc(4));
    expect(partial(compiler, state)).toBe(
      '*filter\n-I KUBE-SERVICES 1 -m comment --comment "ns4/svc4:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j REJECT\nCOMMIT\n',
    );
  });

  it('its first endpoint swaps the REJECT for nat chains', () => {
    setObject(state, slice(4, ['10.0.4.1']));
    const tables = parseRules(partial(compiler, state)!);
    expect(tables.get('filter')!.get('!ops')).toEqual([
      '-D KUBE-SERVICES -m comment --comment "ns4/svc4:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j REJECT',
    ]);
    const nat = tables.get('nat')!;
    expect([...nat.keys()].sort()).toEqual(['!ops', 'KUBE-SEP-AYCN5HPXMIRJNJXU', 'KUBE-SVC-4SW47YFZTEDKD3PK']);
  });

  it('an endpoint change rewrites the SVC chain, adds the new SEP and deletes the old one, nothing else', () => {
    setObject(state, slice(3, ['10.0.3.2']));
    const tables = parseRules(partial(compiler, state)!);
    expect(tables.has('filter')).toBe(false);
    const nat = tables.get('nat')!;
    expect([...nat.keys()].sort()).toEqual(['!ops', 'KUBE-SEP-BSWRHOQ77KEXZLNL', 'KUBE-SEP-DKCFIS26GWF2WLWC', 'KUBE-SVC-X27LE4BHSL4DOUIK']);
    expect(nat.get('!ops')).toEqual(['-X KUBE-SEP-BSWRHOQ77KEXZLNL']);
    expect(nat.get('KUBE-SEP-BSWRHOQ77KEXZLNL')).toEqual([]);
  });

  it('adding an endpoint leaves the unchanged SEP chain out of the payload', () => {
    setObject(state, slice(3, ['10.0.3.2', '10.0.3.3']));
    const nat = parseRules(partial(compiler, state)!).get('nat')!;
    expect(nat.get('KUBE-SVC-X27LE4BHSL4DOUIK')).toEqual([
      '-m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
      '-m comment --comment "ns3/svc3:p80 -> 10.0.3.2:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-DKCFIS26GWF2WLWC',
      '-m comment --comment "ns3/svc3:p80 -> 10.0.3.3:80" -j KUBE-SEP-JVVZVJ7BSEPPRNBS',
    ]);
    expect(nat.has('KUBE-SEP-DKCFIS26GWF2WLWC')).toBe(false);
    expect(nat.has('KUBE-SEP-JVVZVJ7BSEPPRNBS')).toBe(true);
  });

  it('an aborted plan keeps its Services pending for the next plan', () => {
    setObject(state, slice(1, ['10.0.1.9']));
    compiler.update(state, state.takeChanges());
    const first = compiler.planPartial()!;
    first.abort();
    const second = compiler.planPartial()!;
    expect(second.payload.text).toBe(first.payload.text);
    second.commit();
    expect(compiler.planPartial()).toBeUndefined();
  });
});

describe('full syncs over live state', () => {
  it('flushes and deletes stale per-service chains found in iptables-save output, and no other chains', () => {
    const { state } = load([svc(1), slice(1, ['10.0.1.1'])]);
    const compiler = new IptablesCompiler(defaultIptablesOptions());
    compiler.update(state, state.takeChanges());
    const live = parseLiveRules(
      ['*nat', ':PREROUTING ACCEPT [0:0]', ':KUBE-SVC-OLDOLDOLDOLDOLD1 - [0:0]', ':KUBE-SEP-OLDOLDOLDOLDOLD2 - [0:0]', ':FOREIGN - [0:0]', ':KUBE-SERVICES - [0:0]', 'COMMIT', ''].join('\n'),
    );
    const tables = parseRules(compiler.planFull(live).payload.text);
    const ops = tables.get('nat')!.get('!ops')!;
    expect(ops.filter((l) => l.startsWith('-X'))).toEqual(['-X KUBE-SEP-OLDOLDOLDOLDOLD2', '-X KUBE-SVC-OLDOLDOLDOLDOLD1']);
    expect(tables.get('nat')!.has('FOREIGN')).toBe(false);
  });

  it('prepends only the built-in jumps that are missing', () => {
    const { state } = load([]);
    const compiler = new IptablesCompiler(defaultIptablesOptions());
    compiler.update(state, state.takeChanges());
    const live = parseLiveRules(
      '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\nCOMMIT\n',
    );
    const natOps = parseRules(compiler.planFull(live).payload.text).get('nat')!.get('!ops')!;
    expect(natOps).toEqual([
      '-I OUTPUT 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-I POSTROUTING 1 -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ]);
  });

  it('drops per-endpoint comments above 1000 endpoints (large-cluster mode) and re-renders on the flip', () => {
    const eps = (n: number) => Array.from({ length: n }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
    const { state } = load([svc(1), slice(1, eps(1000))]);
    const compiler = new IptablesCompiler(defaultIptablesOptions());
    compiler.update(state, state.takeChanges());
    expect(compiler.planFull().payload.text).toContain('"ns1/svc1:p80 -> 10.1.0.0:80"');
    setObject(state, svc(2));
    setObject(state, slice(2, ['10.2.0.1']));
    compiler.update(state, state.takeChanges());
    expect(compiler.isLargeCluster).toBe(true);
    const text = compiler.planFull().payload.text;
    expect(text).not.toContain(' -> 10.1.0.0:80');
    expect(text).toContain('-A KUBE-SEP-');
    expect(text).toContain('"ns1/svc1:p80 cluster IP"');
  });
});

describe('partial syncs of external traffic stay per Service', () => {
  const np = (nodePort: number, extra: { externalIPs?: string[] } = {}) =>
    service({ namespace: 'ns1', name: 'web', type: 'NodePort', clusterIP: '172.30.0.51', ports: [{ name: 'p80', port: 80, nodePort }], ...extra });
  const eps = endpointSlice({ namespace: 'ns1', name: 'web-1', service: 'web', ports: [{ name: 'p80', port: 80 }], endpoints: [{ ip: '10.0.1.1' }] });
  const { state } = load([np(30080), eps, svc(2), slice(2, ['10.0.2.1'])]);
  const compiler = new IptablesCompiler(defaultIptablesOptions({ clusterCidr: '10.0.0.0/8' }));
  compiler.update(state, state.takeChanges());
  compiler.planFull().commit();

  it('a NodePort change deletes the old KUBE-NODEPORTS rule and inserts the new one, touching no other Service', () => {
    setObject(state, np(30081));
    const text = partial(compiler, state)!;
    expect(text).toContain('-D KUBE-NODEPORTS -m comment --comment ns1/web:p80 -m tcp -p tcp --dport 30080 -j KUBE-EXT-');
    expect(text).toMatch(/^-I KUBE-NODEPORTS 1 -m comment --comment ns1\/web:p80 -m tcp -p tcp --dport 30081 -j KUBE-EXT-/m);
    expect(text).not.toContain('ns2/svc2');
    expect(text).not.toContain(':KUBE-SERVICES');
  });

  it('an external IP added inserts its dispatch rule; removed, it is deleted again', () => {
    setObject(state, np(30081, { externalIPs: ['192.168.99.5'] }));
    const added = partial(compiler, state)!;
    expect(added).toMatch(/^-I KUBE-SERVICES 1 -m comment --comment "ns1\/web:p80 external IP" -m tcp -p tcp -d 192\.168\.99\.5 --dport 80 -j KUBE-EXT-/m);
    setObject(state, np(30081));
    const removed = partial(compiler, state)!;
    expect(removed).toMatch(/^-D KUBE-SERVICES -m comment --comment "ns1\/web:p80 external IP" .* -d 192\.168\.99\.5 /m);
  });

  it('losing every endpoint swaps the NAT rules for filter REJECTs on the NodePort', () => {
    setObject(state, endpointSlice({ namespace: 'ns1', name: 'web-1', service: 'web', ports: [{ name: 'p80', port: 80 }], endpoints: [] }));
    const text = partial(compiler, state)!;
    expect(text).toContain('-I KUBE-EXTERNAL-SERVICES 1 -m comment --comment "ns1/web:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30081 -j REJECT');
    expect(text).toContain('-X KUBE-EXT-');
  });
});
