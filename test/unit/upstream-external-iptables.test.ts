import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compilerFor, load } from '../support/compile.js';
import { service } from '../support/objects.js';
import { OVERALL, p80, slice } from '../support/upstream-overall.js';


// kubernetes/kubernetes pkg/proxy/iptables/proxier_test.go, TestOverallIPTablesRules: its six Services, its
// fake proxier's settings (node test-node at 192.168.0.2, local detector 10.0.0.0/8, mark 0x4000, every local
// address a NodePort address, localhost NodePorts on), and its expected restore text verbatim.
const EXPECTED = readFileSync(new URL('./upstream/overall-iptables.rules', import.meta.url), 'utf8');

/**
 * Restore text in upstream's comparison form (assertIPTablesRulesEqual sorts): per table, chain declarations
 * sorted, then each chain's rules. Rules of the chains Services share are ordered by Service, in each Service's
 * own order, the NodePorts jump last, since their order across Services is Go map order upstream.
 */
function comparable(text: string): string {
  const out: string[] = [];
  let table = '';
  let chains: string[] = [];
  let rules = new Map<string, string[]>();
  const flush = () => {
    if (table === '') return;
    out.push(`*${table}`, ...chains.sort());
    for (const chain of [...rules.keys()].sort()) {
      const list = rules.get(chain)!;
      const owner = (r: string) => (r.includes('NOTE: this must be the last') ? '~' : (/--comment "?(?:other traffic to )?([^ :"]+)/.exec(r)?.[1] ?? ''));
      out.push(...list.map((r, i) => [owner(r), i, r] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1])).map((x) => x[2]));
    }
    out.push('COMMIT');
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      flush();
      table = line.slice(1);
      chains = [];
      rules = new Map();
    } else if (line.startsWith(':')) chains.push(line);
    else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1]!;
      rules.set(chain, [...(rules.get(chain) ?? []), line]);
    }
  }
  flush();
  return out.join('\n');
}

/** Ours and upstream's text in comparable form, without the deliberate differences (docs/backends/iptables.md). */
function bothComparable(ours: string, expected: string): [string, string] {
  // Ours: a canary chain per table, jumps from built-in chains in the same input (upstream: separate calls),
  // and MASQUERADE --random-fully (upstream's fake iptables lacks it). Upstream: nfacct counters, not kept here.
  const mine = ours
    .split('\n')
    .filter((l) => !l.includes('KUBE-PROXY-CANARY') && !l.startsWith('-I ') && l !== '*mangle')
    .map((l) => l.replace(' --random-fully', ''))
    .join('\n');
  const theirs = expected
    .split('\n')
    .filter((l) => !l.includes('--nfacct-name localhost_nps_accepted_pkts'))
    .map((l) => l.replace(' -m nfacct --nfacct-name ct_state_invalid_dropped_pkts', ''))
    .join('\n');
  return [comparable(mine), comparable(theirs)];
}

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
