// save-form.ts predicts iptables-save's text for our rules (checked against the real tools in
// test/kernel/held-chains.test.ts); here: its rules one by one, and how a full sync uses it.
import { describe, expect, it } from 'vitest';
import { parseLiveRules } from '../../src/backends/iptables/live-rules.js';
import { EMPTY_LIVE_RULES } from '../../src/kernel/syntax/iptables-save.js';
import { savedProbability } from '../../src/backends/iptables/probability.js';
import { chainSaveForm, toSaveForm } from '../../src/backends/iptables/save-form.js';
import { endpointSlice, service } from '../support/objects.js';
import { compilerFor, load } from '../support/compile.js';

describe('toSaveForm', () => {
  it.each([
    [
      '-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j KUBE-SVC-X',
      '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-X',
    ],
    [
      '-A KUBE-SVC-X -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ',
      '-A KUBE-SVC-X ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ',
    ],
    [
      '-A KUBE-SEP-X -m comment --comment shop/sticky:http -m recent --name KUBE-SEP-X --set -m tcp -p tcp -j DNAT --to-destination 10.244.1.10:8080',
      '-A KUBE-SEP-X -p tcp -m comment --comment "shop/sticky:http" -m recent --set --name KUBE-SEP-X --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.10:8080',
    ],
    [
      '-A KUBE-SVC-X -m comment --comment "a/b:c -> 10.0.0.1:80" -m recent --name KUBE-SEP-Y --rcheck --seconds 600 --reap -j KUBE-SEP-Y',
      '-A KUBE-SVC-X -m comment --comment "a/b:c -> 10.0.0.1:80" -m recent --rcheck --seconds 600 --reap --name KUBE-SEP-Y --mask 255.255.255.255 --rsource -j KUBE-SEP-Y',
    ],
    [
      '-A KUBE-SVC-X -m comment --comment "a/b:c -> 10.0.0.1:80" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-Y',
      '-A KUBE-SVC-X -m comment --comment "a/b:c -> 10.0.0.1:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-Y',
    ],
    ['-A KUBE-SEP-X -m comment --comment a/b:c -s 10.0.0.1 -j KUBE-MARK-MASQ', '-A KUBE-SEP-X -s 10.0.0.1/32 -m comment --comment "a/b:c" -j KUBE-MARK-MASQ'],
    ['-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000', '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000'],
    ['-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000', '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0'],
    ['-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN', '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN'],
    [
      '-A KUBE-SERVICES -m comment --comment "x has no endpoints" -m udp -p udp -d 10.96.0.1 --dport 53 -j REJECT',
      '-A KUBE-SERVICES -d 10.96.0.1/32 -p udp -m comment --comment "x has no endpoints" -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable',
    ],
  ])('%s', (ours, saved) => {
    expect(toSaveForm(ours, 'IPv4')).toBe(saved);
  });

  // IPv6: ip6tables-save (1.8.9, nf_tables) output for these exact rules, read off a throwaway network namespace.
  it.each([
    [
      '-A KUBE-SERVICES -m comment --comment "ns1/aff:p80 cluster IP" -m tcp -p tcp -d fd00:172:30::42 --dport 80 -j KUBE-SVC-7OAMXYFOHIJTWZAG',
      '-A KUBE-SERVICES -d fd00:172:30::42/128 -p tcp -m comment --comment "ns1/aff:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-7OAMXYFOHIJTWZAG',
    ],
    [
      '-A KUBE-SVC-7OAMXYFOHIJTWZAG -m comment --comment "ns1/aff:p80 cluster IP" -m tcp -p tcp -d fd00:172:30::42 --dport 80 ! -s fd00:10::/64 -j KUBE-MARK-MASQ',
      '-A KUBE-SVC-7OAMXYFOHIJTWZAG ! -s fd00:10::/64 -d fd00:172:30::42/128 -p tcp -m comment --comment "ns1/aff:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ',
    ],
    [
      '-A KUBE-SVC-7OAMXYFOHIJTWZAG -m comment --comment "ns1/aff:p80 -> [fd00:10:180::3]:80" -m recent --name KUBE-SEP-QZCI6O3EVINQCF3Q --rcheck --seconds 100 --reap -j KUBE-SEP-QZCI6O3EVINQCF3Q',
      '-A KUBE-SVC-7OAMXYFOHIJTWZAG -m comment --comment "ns1/aff:p80 -> [fd00:10:180::3]:80" -m recent --rcheck --seconds 100 --reap --name KUBE-SEP-QZCI6O3EVINQCF3Q --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -j KUBE-SEP-QZCI6O3EVINQCF3Q',
    ],
    [
      '-A KUBE-SEP-QZCI6O3EVINQCF3Q -m comment --comment ns1/aff:p80 -s fd00:10:180::3 -j KUBE-MARK-MASQ',
      '-A KUBE-SEP-QZCI6O3EVINQCF3Q -s fd00:10:180::3/128 -m comment --comment "ns1/aff:p80" -j KUBE-MARK-MASQ',
    ],
    [
      '-A KUBE-SEP-QZCI6O3EVINQCF3Q -m comment --comment ns1/aff:p80 -m recent --name KUBE-SEP-QZCI6O3EVINQCF3Q --set -m tcp -p tcp -j DNAT --to-destination [fd00:10:180::3]:80',
      '-A KUBE-SEP-QZCI6O3EVINQCF3Q -p tcp -m comment --comment "ns1/aff:p80" -m recent --set --name KUBE-SEP-QZCI6O3EVINQCF3Q --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -m tcp -j DNAT --to-destination [fd00:10:180::3]:80',
    ],
    [
      '-A KUBE-FW-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 2001:db8:ff::1 -j KUBE-EXT-XPGD46QRK7WJZT7O',
      '-A KUBE-FW-XPGD46QRK7WJZT7O -s 2001:db8:ff::1/128 -m comment --comment "ns1/svc1:p80 loadbalancer IP" -j KUBE-EXT-XPGD46QRK7WJZT7O',
    ],
    [
      '-A X -m comment --comment "ns1/noep:p80 has no endpoints" -m udp -p udp -d fd00:172:30::43 --dport 53 -j REJECT',
      '-A X -d fd00:172:30::43/128 -p udp -m comment --comment "ns1/noep:p80 has no endpoints" -m udp --dport 53 -j REJECT --reject-with icmp6-port-unreachable',
    ],
    [
      '-A Y -m comment --comment "a/b:c -> [fd00::1]:80" -m statistic --mode random --probability 0.3333333333 -p tcp -j DNAT --to-destination [fd00::1]:80',
      '-A Y -p tcp -m comment --comment "a/b:c -> [fd00::1]:80" -m statistic --mode random --probability 0.33333333349 -j DNAT --to-destination [fd00::1]:80',
    ],
  ])('IPv6: %s', (ours, saved) => {
    expect(toSaveForm(ours, 'IPv6')).toBe(saved);
  });

  it('gives up (so the chain is rewritten) on anything it does not model', () => {
    expect(toSaveForm('-A X -m owner --uid-owner 0 -j ACCEPT', 'IPv4')).toBeUndefined();
    expect(toSaveForm('-A X -j DNAT --to-destination 10.0.0.1:80 --persistent', 'IPv4')).toBeUndefined();
    expect(toSaveForm('-A X -m comment --comment "unterminated -j ACCEPT', 'IPv4')).toBeUndefined();
    expect(toSaveForm('-A X -m statistic --mode nth --every 2 -j ACCEPT', 'IPv4')).toBeUndefined();
    expect(toSaveForm('-I X 1 -j ACCEPT', 'IPv4')).toBeUndefined();
    expect(chainSaveForm('-A X -j ACCEPT\n-A X -m owner --uid-owner 0 -j ACCEPT\n', 'IPv4')).toBeUndefined();
  });

  it('prints probabilities as the kernel stores them (lround(p * 2^31)), with exact ties to even', () => {
    expect(savedProbability('0.5000000000')).toBe('0.50000000000');
    expect(savedProbability('0.1000000000')).toBe('0.10000000009');
    expect(savedProbability('0.0002441406')).toBe('0.00024414062'); // stored as 2^19, i.e. 1/4096 = 0.000244140625: the tie goes to the even digit
    expect(savedProbability('1')).toBe('1.00000000000');
    expect(savedProbability('nope')).toBeUndefined();
  });
});

describe('full sync over live rules', () => {
  const objects = [
    service({ name: 'web', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    endpointSlice({ name: 'web-1', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.1.2' }, { ip: '10.244.1.3' }] }),
  ];
  const compiler = compilerFor(load(objects), { clusterCidr: '10.244.0.0/16' });
  const cold = compiler.planFull(EMPTY_LIVE_RULES).payload.text;
  const perService = (text: string): string[] => text.split('\n').filter((l) => /^:KUBE-(SVC|SEP)-/.test(l));
  /** What iptables-save would print after the cold payload: each per-service chain in save form. */
  const savedDump = (tamper?: (chain: string, saved: string) => string): string => {
    const chains = [...parseChains(cold)];
    return [
      '*nat',
      ...chains.map(([name]) => `:${name} - [0:0]`),
      ...chains.map(([name, body]) => {
        const saved = chainSaveForm(body, 'IPv4')!;
        return tamper ? tamper(name, saved) : saved;
      }),
      'COMMIT',
      '',
    ].join('\n');
  };

  it('keeps each per-service chain of the dump as its save text', () => {
    const live = parseLiveRules(savedDump());
    expect(live.serviceChains.size).toBe(3);
    for (const [name, body] of parseChains(cold)) expect(live.serviceChains.get(name)).toBe(chainSaveForm(body, 'IPv4'));
  });

  it('declares none of the chains the kernel holds verbatim, and rewrites one that differs', () => {
    expect(perService(cold)).toHaveLength(3);
    expect(perService(compiler.planFull(parseLiveRules(savedDump())).payload.text)).toEqual([]);
    const sep = perService(cold).find((l) => l.startsWith(':KUBE-SEP-'))!.slice(1).split(' ')[0]!;
    const tampered = parseLiveRules(savedDump((name, saved) => (name === sep ? saved.replace(':8080', ':9090') : saved)));
    expect(perService(compiler.planFull(tampered).payload.text)).toEqual([`:${sep} - [0:0]`]);
  });

  it('does not trust a chain whose rules are split across the dump', () => {
    const dump = '*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-B - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-B\n-A KUBE-SEP-B -j ACCEPT\n-A KUBE-SVC-A -j ACCEPT\nCOMMIT\n';
    const live = parseLiveRules(dump);
    expect(live.serviceChains.get('KUBE-SEP-B')).toBe('-A KUBE-SEP-B -j ACCEPT');
    expect(live.serviceChains.get('KUBE-SVC-A')).not.toContain('-A KUBE-SVC-A');
  });
});

/** Per-service chain name → body (its `-A` lines with newlines) of a single-transaction payload. */
function parseChains(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^-A (KUBE-(?:SVC|SEP)-\S+) /.exec(line);
    if (m) out.set(m[1]!, `${out.get(m[1]!) ?? ''}${line}\n`);
  }
  return out;
}
