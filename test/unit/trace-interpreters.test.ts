// The trace interpreters on what the kernel prints back (iptables-save, nft list: both captured from real tools,
// iptables 1.8.9 nf_tables and nft 1.0.6, in test/unit/trace/), on rules other agents write, and on IPVS
// tables; and how a trace's branches are summed up. The golden tests (trace-goldens) cover compile's own text.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IptablesRuleset, ruleWords } from '../../src/diagnose/trace/iptables-rules.js';
import { traceIptables } from '../../src/diagnose/trace/iptables.js';
import { Ipsets } from '../../src/diagnose/trace/ipsets.js';
import { ipvsTableOf, traceIpvs } from '../../src/diagnose/trace/ipvs.js';
import { NftRuleset } from '../../src/diagnose/trace/nft-rules.js';
import { summarize } from '../../src/diagnose/trace/outcome.js';
import { nftTableOf, rulesFromPlan, splitPrintedPlan, traceRules } from '../../src/diagnose/trace/rules.js';
import { AFFINITY_NOTE, type Entry, type Packet, TraceInputError } from '../../src/diagnose/trace/types.js';

const fixture = (name: string): string => readFileSync(new URL(`./trace/${name}`, import.meta.url), 'utf8');
const golden = (name: string): string => readFileSync(new URL(`../../rules/golden/${name}`, import.meta.url), 'utf8');
const tcp = (src: string, dst: string, dport: number): Packet => ({ src, dst, dport, proto: 'tcp' });

function iptablesTrace(rules: IptablesRuleset, packet: Packet, entry: Entry = 'remote', local = ['192.168.0.2'], ipsets?: Ipsets) {
  return summarize(traceIptables(rules, { packet, entry, localAddresses: local }, { source: 'test', ipsets }), packet);
}

describe('the iptables interpreter on iptables-save output', () => {
  // dual-stack.yaml applied by `compile --apply` (IPv4), then iptables-save: options reordered, /32 added.
  const saved = new IptablesRuleset().apply(fixture('iptables-save-dual-stack-ipv4.txt'), 'iptables-save');
  const compiled = rulesFromPlan(splitPrintedPlan(golden('dual-stack/iptables.txt')), 'iptables', 'IPv4', 'golden');
  if (compiled.backend !== 'iptables') throw new Error('not iptables');

  it.each([
    ['pod to web', tcp('10.244.9.9', '10.96.0.50', 80), 'remote'],
    ['node to web', tcp('192.168.0.2', '10.96.0.50', 80), 'local'],
    ['outside to the LB IP (allowed range)', tcp('203.0.113.5', '198.51.100.20', 443), 'remote'],
    ['outside to the LB IP (other source)', tcp('203.0.113.200', '198.51.100.20', 443), 'remote'],
    ['outside to a NodePort without endpoints', tcp('203.0.113.5', '192.168.0.2', 30082), 'remote'],
    ['pod to a ClusterIP without endpoints', tcp('10.244.9.9', '10.96.1.40', 80), 'remote'],
  ] as const)('%s: the kernel\'s form traces as compile\'s', (_name, packet, entry) => {
    const live = iptablesTrace(saved, packet, entry);
    const plan = iptablesTrace(compiled.rules, packet, entry);
    expect({ ...live, path: [] }).toEqual({ ...plan, path: [] });
    expect(live.path.length).toBe(plan.path.length);
  });

  it('reads a policy, and other agents\' rules it cannot evaluate are noted and not taken', () => {
    const rules = new IptablesRuleset().apply(
      [
        '*filter',
        ':INPUT ACCEPT [0:0]',
        ':FORWARD DROP [10:600]',
        ':OUTPUT ACCEPT [0:0]',
        ':DOCKER - [0:0]',
        '-A FORWARD -i docker0 -o docker0 -j ACCEPT',
        '-A FORWARD -m owner --uid-owner 0 -j ACCEPT',
        '-A FORWARD -j DOCKER',
        'COMMIT',
        '*nat',
        ':PREROUTING ACCEPT [0:0]',
        ':KUBE-SERVICES - [0:0]',
        ':KUBE-SEP-A - [0:0]',
        '-A PREROUTING -j KUBE-SERVICES',
        '-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "ns/a:http cluster IP" -m tcp --dport 80 -j KUBE-SEP-A',
        '-A KUBE-SEP-A -p tcp -m comment --comment "ns/a:http" -m tcp -j DNAT --to-destination 10.244.2.2:8080',
        'COMMIT',
      ].join('\n'),
      'save',
    );
    const r = iptablesTrace(rules, tcp('10.244.9.9', '10.96.0.1', 80));
    expect(r.verdict).toBe('drop');
    expect(r.path.at(-1)).toBe('filter FORWARD: policy DROP');
    expect(r.notes.join('\n')).toContain('-i docker0');
    expect(r.notes.join('\n')).toContain('-m owner');
    // The same rules with FORWARD accepting: the endpoint is reached.
    rules.chain('filter', 'FORWARD')!.policy = 'ACCEPT';
    expect(iptablesTrace(rules, tcp('10.244.9.9', '10.96.0.1', 80)).endpoints).toEqual([{ ip: '10.244.2.2', port: 8080, probability: 1, masquerade: false }]);
  });

  it('refuses, naming chain and rule, a match it cannot read in our chains, and a jump to no chain', () => {
    const text = (rule: string): string => ['*nat', ':KUBE-SERVICES - [0:0]', `-A KUBE-SERVICES ${rule}`, 'COMMIT'].join('\n');
    const trace = (rule: string) => iptablesTrace(new IptablesRuleset().apply(text(rule), 'x'), tcp('1.1.1.1', '10.96.0.1', 80));
    expect(() => trace('-m owner --uid-owner 0 -j ACCEPT')).toThrow(/nat KUBE-SERVICES rule 1: -m owner is not understood in "-m owner --uid-owner 0 -j ACCEPT"/);
    expect(() => trace('-j KUBE-SVC-NOWHERE')).toThrow(/-j KUBE-SVC-NOWHERE: no such chain in table nat/);
    expect(() => trace('-j DNAT')).toThrow(TraceInputError);
  });

  it('splits rule words as iptables-save quotes them', () => {
    expect(ruleWords('-m comment --comment "a \\"b\\" c"  -d 10.0.0.1/32 -j X')).toEqual(['-m', 'comment', '--comment', 'a "b" c', '-d', '10.0.0.1/32', '-j', 'X']);
    expect(ruleWords('--comment ns/a:http -j KUBE-SEP-A')).toEqual(['--comment', 'ns/a:http', '-j', 'KUBE-SEP-A']);
  });

  it('refuses restore input it cannot apply, naming the line', () => {
    expect(() => new IptablesRuleset().apply('*nat\n-D KUBE-SERVICES -j X\nCOMMIT\n', 'payload')).toThrow(/payload line 2: no chain KUBE-SERVICES/);
    expect(() => new IptablesRuleset().apply('*nat\n:X - [0:0]\n-D X -j Y\nCOMMIT\n', 'payload')).toThrow(/payload line 3: no rule "-j Y" to delete in X/);
    expect(() => new IptablesRuleset().apply('*nat\n:X - [0:0]\n', 'payload')).toThrow(/table nat has no COMMIT/);
    expect(() => new IptablesRuleset().apply('-A X -j Y\n', 'payload')).toThrow(/outside a table/);
  });

  it('gives three endpoints a third each through statistic splits, and notes affinity', () => {
    const rules = new IptablesRuleset().apply(
      [
        '*nat',
        ':KUBE-SERVICES - [0:0]',
        ':KUBE-SVC-X - [0:0]',
        '-I OUTPUT 1 -j KUBE-SERVICES',
        '-A KUBE-SERVICES -m comment --comment "ns/x cluster IP" -m tcp -p tcp -d 10.96.0.9 --dport 80 -j KUBE-SVC-X',
        '-A KUBE-SVC-X -m recent --name KUBE-SEP-A --rcheck --seconds 10800 --reap -j DNAT --to-destination 10.0.1.1:80',
        '-A KUBE-SVC-X -m statistic --mode random --probability 0.3333333333 -j DNAT --to-destination 10.0.1.1:80',
        '-A KUBE-SVC-X -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.0.1.2:80',
        '-A KUBE-SVC-X -j DNAT --to-destination 10.0.1.3:80',
        'COMMIT',
      ].join('\n'),
      'x',
    );
    const r = iptablesTrace(rules, tcp('192.168.0.2', '10.96.0.9', 80), 'local');
    expect(r.endpoints.map((e) => [e.ip, e.probability.toFixed(6)])).toEqual([
      ['10.0.1.1', '0.333333'],
      ['10.0.1.2', '0.333333'],
      ['10.0.1.3', '0.333333'],
    ]);
    expect(r.service).toBe('ns/x');
    expect(r.notes).toContain(AFFINITY_NOTE);
  });
});

describe('the nftables interpreter on nft list output', () => {
  // dual-stack-ipv6.nft applied with nft 1.0.6, then `nft list ruleset`: priorities by name, marks as
  // 0x00004000, `dnat ip6 to`, element lists over several lines.
  const listed = nftTableOf(NftRuleset.fromListing(fixture('nft-list-dual-stack-ipv6.txt'), 'nft list ruleset'), 'IPv6');
  const script = nftTableOf(new NftRuleset().applyScript(golden('nftables/dual-stack-ipv6.nft'), 'golden'), 'IPv6');

  it('reads the same table from both forms', () => {
    expect([...listed.chains.keys()].sort()).toEqual([...script.chains.keys()].sort());
    expect([...listed.sets.keys()].sort()).toEqual([...script.sets.keys()].sort());
    for (const [name, set] of script.sets) expect([...listed.sets.get(name)!.elements.values()].sort(byKey), name).toEqual([...set.elements.values()].sort(byKey));
    for (const [name, chain] of script.chains) expect(listed.chains.get(name)!.base, name).toEqual(chain.base);
  });

  it.each([
    ['pod to web', tcp('fd00:10:244:9::9', 'fd00:10:96::50', 80), 'remote'],
    ['node to dns (udp)', { src: '2001:db8::2', dst: 'fd00:10:96::a', dport: 53, proto: 'udp' }, 'local'],
    ['outside to the LB IP', tcp('2600:5200::5', '2001:db8:ff::20', 443), 'remote'],
    ['outside to the LB IP, not in a range', tcp('2600:5300::5', '2001:db8:ff::20', 443), 'remote'],
    ['outside to the sticky NodePort', tcp('2600:5200::5', '2001:db8::2', 30080), 'remote'],
    ['pod to gone', tcp('fd00:10:244:9::9', 'fd00:10:96::1:40', 80), 'remote'],
    ['pod to another port of a ClusterIP', tcp('fd00:10:244:9::9', 'fd00:10:96::50', 81), 'remote'],
  ] as const)('%s: listing and script trace alike', (_name, packet, entry) => {
    const req = { packet, entry, localAddresses: ['2001:db8::2'] };
    const a = summarize(traceRules({ backend: 'nftables', family: 'IPv6', ruleset: wrap(listed), source: 'list' }, req), packet);
    const b = summarize(traceRules({ backend: 'nftables', family: 'IPv6', ruleset: wrap(script), source: 'script' }, req), packet);
    expect({ ...a, path: [] }).toEqual({ ...b, path: [] });
    expect(a.path.length).toBe(b.path.length);
  });

  it('reads a dynamic (affinity) set as holding no entry for the client, whatever the kernel lists', () => {
    const rs = NftRuleset.fromListing(fixture('nft-list-dual-stack-ipv6.txt'), 'list');
    const t = nftTableOf(rs, 'IPv6');
    const affinity = [...t.sets.values()].find((s) => s.name.startsWith('affinity-'))!;
    affinity.elements.set('2600:5200::5', { key: '2600:5200::5', value: undefined, comment: undefined });
    const packet = tcp('2600:5200::5', 'fd00:10:96::1:10', 80);
    const r = summarize(traceRules({ backend: 'nftables', family: 'IPv6', ruleset: rs, source: 'list' }, { packet, entry: 'remote', localAddresses: [] }), packet);
    expect(r.endpoints.length).toBe(2);
    expect(r.notes).toContain(AFFINITY_NOTE);
  });
});

const byKey = (a: { key: string }, b: { key: string }): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

function wrap(table: ReturnType<typeof nftTableOf>): NftRuleset {
  const rs = new NftRuleset();
  rs.tables.set(`${table.family} ${table.name}`, table);
  return rs;
}

describe('the IPVS interpreter', () => {
  const sets = (): Ipsets =>
    new Ipsets().apply(
      [
        'create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536',
        'add KUBE-CLUSTER-IP 10.96.0.1,tcp:80',
        'add KUBE-CLUSTER-IP 10.96.0.2,tcp:80',
        'add KUBE-CLUSTER-IP 10.96.0.3,tcp:80',
        'create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536',
        'add KUBE-LOOP-BACK 10.244.1.1,tcp:8080,10.244.1.1',
      ].join('\n'),
      'ipset save',
    );
  const iptables = (): IptablesRuleset =>
    new IptablesRuleset().apply(
      [
        '*nat',
        ':KUBE-SERVICES - [0:0]',
        ':KUBE-POSTROUTING - [0:0]',
        ':KUBE-MARK-MASQ - [0:0]',
        '-I PREROUTING 1 -j KUBE-SERVICES',
        '-I OUTPUT 1 -j KUBE-SERVICES',
        '-I POSTROUTING 1 -j KUBE-POSTROUTING',
        '-A KUBE-POSTROUTING -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE',
        '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
        '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
        '-A KUBE-POSTROUTING -j MASQUERADE --random-fully',
        '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
        '-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ',
        '-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT',
        'COMMIT',
      ].join('\n'),
      'iptables-save',
    );
  const table = ipvsTableOf(
    [
      '-A -t 10.96.0.1:80 -s wrr',
      '-a -t 10.96.0.1:80 -r 10.244.1.1:8080 -m -w 3',
      '-a -t 10.96.0.1:80 -r 10.244.2.2:8080 -m -w 1',
      '-a -t 10.96.0.1:80 -r 10.244.3.3:8080 -m -w 0',
      '-A -t 10.96.0.2:80 -s lc',
      '-a -t 10.96.0.2:80 -r 10.244.2.2:8080 -m -w 1',
      '-A -t 10.96.0.3:80 -s rr',
      '-a -t 10.96.0.3:80 -r 10.244.3.3:8080 -m -w 0',
    ].join('\n'),
    'ipvsadm -S -n',
  );
  const trace = (packet: Packet, entry: Entry = 'remote') =>
    summarize(traceIpvs({ table, iptables: iptables(), ipsets: sets() }, { packet, entry, localAddresses: ['10.96.0.1', '10.96.0.2', '10.96.0.3', '192.168.0.2'] }, 'ipvs'), packet);

  it('shares new connections by weight; weight 0 takes none; a client reaching itself is masqueraded', () => {
    const r = trace(tcp('10.244.1.1', '10.96.0.1', 80));
    expect(r.verdict).toBe('dnat');
    expect(r.kind).toBe('clusterIP');
    expect(r.endpoints).toEqual([
      { ip: '10.244.1.1', port: 8080, probability: 0.75, masquerade: true },
      { ip: '10.244.2.2', port: 8080, probability: 0.25, masquerade: false },
    ]);
    expect(r.path).toContain('[10.244.1.1:8080 75%] ipvs: -a -t 10.96.0.1:80 -r 10.244.1.1:8080 -w 3 (3 of 4)');
  });

  it('marks the node\'s connections for masquerade; other schedulers are shared by weight, with a note', () => {
    const r = trace(tcp('192.168.0.2', '10.96.0.2', 80), 'local');
    expect(r.endpoints).toEqual([{ ip: '10.244.2.2', port: 8080, probability: 1, masquerade: true }]);
    expect(r.notes.join('\n')).toMatch(/scheduler lc of -t 10.96.0.2:80/);
  });

  it('rejects where a virtual server has no real server to take a connection, and leaves other addresses alone', () => {
    expect(trace(tcp('10.244.9.9', '10.96.0.3', 80)).verdict).toBe('reject');
    expect(trace(tcp('10.244.9.9', '10.96.0.1', 81)).verdict).toBe('none');
  });

  it('refuses an ipvsadm line it cannot read', () => {
    expect(() => ipvsTableOf('-X -t 10.96.0.1:80\n', 'ipvsadm -S -n')).toThrow(TraceInputError);
  });
});

describe('a trace summed up', () => {
  it('renormalises over the branches that reach an endpoint, and notes the others', () => {
    const rules = new IptablesRuleset().apply(
      [
        '*nat',
        ':KUBE-SVC-X - [0:0]',
        '-I PREROUTING 1 -j KUBE-SVC-X',
        '-A KUBE-SVC-X -m statistic --mode random --probability 0.5 -j DNAT --to-destination 10.0.1.1:80',
        '-A KUBE-SVC-X -j DNAT --to-destination 10.0.1.2:80',
        'COMMIT',
        '*filter',
        '-A FORWARD -d 10.0.1.2 -j DROP',
        'COMMIT',
      ].join('\n'),
      'x',
    );
    const r = iptablesTrace(rules, tcp('10.244.9.9', '10.96.0.9', 80));
    expect(r.verdict).toBe('dnat');
    expect(r.endpoints).toEqual([{ ip: '10.0.1.1', port: 80, probability: 1, masquerade: false }]);
    expect(r.notes).toContain('50% of new connections are dropped (see the path), the rest reach the endpoints listed');
    // The shared steps once, then each branch's own, labelled with where it went.
    expect(r.path).toEqual([
      'nat PREROUTING: -j KUBE-SVC-X',
      '[10.0.1.2:80 drop 50%] nat KUBE-SVC-X: -j DNAT --to-destination 10.0.1.2:80',
      '[10.0.1.2:80 drop 50%] filter FORWARD: -d 10.0.1.2 -j DROP',
      '[10.0.1.1:80 50%] nat KUBE-SVC-X: -m statistic --mode random --probability 0.5 -j DNAT --to-destination 10.0.1.1:80',
    ]);
  });
});
