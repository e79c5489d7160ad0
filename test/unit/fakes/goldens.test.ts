// Every golden ruleset (rules/golden/iptables/*.rules, IPv6 ones included, rules/golden/ipvs/*.txt) is accepted by the fakes, as it
// is by the real tools, and applying it again behaves as the tools do: chain lines make the rewrite of user
// chains idempotent, while the `-I` jumps into built-in chains go in twice (a full sync writes them only when
// iptables-save lacks them, see missingJumps).
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseIpvsadmSave } from '../../../src/backends/ipvs/ipvsadm.js';
import { missingJumps } from '../../../src/backends/shared/iptables-fixed.js';
import { parseIptablesSave } from '../../../src/kernel/syntax/iptables-save.js';
import {
  FakeIpLinks,
  FakeIpset,
  FakeIptables,
  FakeIpvs,
  type FakeNode,
  FakeToolError,
  FakeToolErrors,
  applySection,
  canonicalRule,
  splitLabelledSections,
} from '../../support/fakes/index.js';

const root = fileURLToPath(new URL('../../../rules/golden/', import.meta.url));
const goldens = (dir: string, ext: string): string[] => readdirSync(`${root}${dir}`).filter((f) => f.endsWith(ext)).sort();
const read = (path: string): string => readFileSync(`${root}${path}`, 'utf8');

/** A node whose iptables refuses rules naming missing sets and whose ipset refuses to destroy sets rules use. */
function fakeNode(): FakeNode {
  const ipset: FakeIpset = new FakeIpset((name) => iptables.usesSet(name));
  const iptables: FakeIptables = new FakeIptables({ setExists: (name) => ipset.has(name) });
  return { iptables, ipset, ipvs: new FakeIpvs(), links: new FakeIpLinks() };
}

/** The flat layout's ipset input, printed as `#` lines before the restore input; '' when there is none. */
function ipsetPreamble(text: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^# ipset restore -exist, before ip6?tables-restore:$/.test(l));
  if (start < 0) return '';
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith('# ')) break;
    out.push(`${line.slice(2)}\n`);
  }
  return out.join('');
}

/** The input without its `-I CHAIN 1 rule` lines whose rule the chain already holds: what a full sync would write. */
function withoutPresentJumps(fake: FakeIptables, text: string): string {
  let table = '';
  return text
    .split('\n')
    .filter((line) => {
      if (line.startsWith('*')) table = line.slice(1);
      const m = /^-I (\S+) 1 (.*)$/.exec(line);
      return m === null || !(fake.rules(table, m[1]!) ?? []).includes(canonicalRule(m[2]!));
    })
    .join('\n');
}

/** Only the `-I` lines of the input, with their tables: what a second verbatim application adds. */
function jumpsOnly(text: string): string {
  return text
    .split('\n')
    .filter((line) => line.startsWith('*') || line === 'COMMIT' || line.startsWith('-I '))
    .join('\n');
}

/** The user chains an input declares, per table. */
function declaredChains(text: string): Array<[string, string]> {
  let table = '';
  const out: Array<[string, string]> = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith(':')) out.push([table, line.slice(1).split(' ')[0]!]);
  }
  return out;
}

const ruleLines = (text: string): number => text.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith('-I ')).length;

function ruleCount(fake: FakeIptables): number {
  let n = 0;
  for (const t of fake.tableNames()) for (const c of fake.chains(t) ?? []) n += fake.rules(t, c)!.length;
  return n;
}

/** Applies the same input to a copy of `fake` (through save()) and returns the copy. */
function copyWith(fake: FakeIptables, node: FakeNode, input: string): FakeIptables {
  const copy = new FakeIptables({ dump: fake.save(), setExists: (n) => node.ipset.has(n) });
  copy.restore(input);
  return copy;
}

describe('splitLabelledSections', () => {
  it('splits labelled sections, keeping each input line with its newline, empty inputs as ""', () => {
    expect(splitLabelledSections('#### ip link add kube-ipvs0 type dummy\n#### ipset restore -exist\ncreate A hash:ip\nadd A 10.0.0.1\n#### ip -batch -\n')).toEqual([
      { command: 'ip link add kube-ipvs0 type dummy', input: '' },
      { command: 'ipset restore -exist', input: 'create A hash:ip\nadd A 10.0.0.1\n' },
      { command: 'ip -batch -', input: '' },
    ]);
    // A `#` line that is not a label is input (iptables-restore and ipset skip it themselves).
    expect(splitLabelledSections('#### iptables-restore --noflush\n# note\n*nat\nCOMMIT')).toEqual([{ command: 'iptables-restore --noflush', input: '# note\n*nat\nCOMMIT\n' }]);
    expect(splitLabelledSections('')).toEqual([]);
  });

  it('refuses input before the first label', () => {
    expect(() => splitLabelledSections('*nat\n#### ipvsadm -R\n')).toThrow(/line 1 \(\*nat\): input before the first/);
  });

  it('applySection refuses a command it has no fake for, and input for ip link add', () => {
    expect(() => applySection(fakeNode(), { command: 'conntrack -F', input: '' })).toThrow(/no fake for the command 'conntrack -F'/);
    expect(() => applySection(fakeNode(), { command: 'ip link add kube-ipvs0 type dummy', input: 'x\n' })).toThrow(/takes no input/);
  });
});

describe('iptables goldens', () => {
  const files = goldens('iptables', '.rules');

  it('are all here', () => {
    expect(files).toEqual([
      'dual-stack-ipv4.rules',
      'dual-stack-ipv6-flat.rules',
      'dual-stack-ipv6.rules',
      'empty.rules',
      'features-flat.rules',
      'features.rules',
      'web-masquerade-all.rules',
      'web.rules',
    ]);
  });

  it.each(files)('%s applies onto an empty node, and again', (file) => {
    const text = read(`iptables/${file}`);
    const node = fakeNode();
    const preamble = ipsetPreamble(text);
    expect(preamble !== '').toBe(file.includes('flat'));
    node.ipset.restore(preamble);
    node.iptables.restore(text);
    const first = node.iptables.dump();
    const sets = node.ipset.dump();

    // Everything it declares is there, and every rule it writes, once.
    for (const [table, chain] of declaredChains(text)) expect(node.iptables.chains(table)).toContain(chain);
    expect(ruleCount(node.iptables)).toBe(ruleLines(text));
    // save() is iptables-save's shape: Switchboard's own parser finds every jump it needs in place.
    const live = parseIptablesSave(node.iptables.save());
    expect(missingJumps('filter', live)).toEqual([]);
    expect(missingJumps('nat', live)).toEqual([]);

    // Again, as a full sync writes it onto this node (its jumps are present): nothing changes.
    const again = withoutPresentJumps(node.iptables, text);
    expect(again).not.toContain('\n-I ');
    node.ipset.restore(preamble);
    node.iptables.restore(again);
    expect(node.iptables.dump()).toBe(first);
    expect(node.ipset.dump()).toBe(sets);

    // Again, verbatim: accepted, the user chains rewritten alike, the jumps inserted a second time.
    const verbatim = copyWith(node.iptables, node, text);
    expect(verbatim.dump()).toBe(copyWith(node.iptables, node, jumpsOnly(text)).dump());
    expect(verbatim.dump()).not.toBe(first);
  });

  it('features-flat.rules needs its ipset input first: without the set, the restore is refused whole', () => {
    const text = read('iptables/features-flat.rules');
    const node = fakeNode();
    const before = node.iptables.dump();
    let caught: unknown;
    try {
      node.iptables.restore(text);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(FakeToolError);
    expect((caught as FakeToolError).reason).toMatch(/Set KUBE-LOOP-BACK doesn't exist/);
    expect((caught as FakeToolError).line).toContain('--match-set KUBE-LOOP-BACK');
    // The filter COMMIT before it went in; nat did not.
    expect(node.iptables.chains('filter')).toContain('KUBE-SERVICES');
    expect(node.iptables.chains('nat')).toEqual(['INPUT', 'OUTPUT', 'POSTROUTING', 'PREROUTING']);
    expect(node.iptables.dump()).not.toBe(before);
  });
});

describe('ipvs goldens', () => {
  const files = goldens('ipvs', '.txt');

  it('are all here', () => {
    expect(files).toEqual(['empty.txt', 'features.txt', 'web-masquerade-all-sh.txt']);
  });

  it.each(files)('%s applies section by section, in the backend order, onto an empty node', (file) => {
    const sections = splitLabelledSections(read(`ipvs/${file}`));
    expect(sections.map((s) => s.command)).toEqual(['ip link add kube-ipvs0 type dummy', 'ipset restore -exist', 'iptables-restore --noflush', 'ip -batch -', 'ipvsadm -R']);
    const node = fakeNode();
    for (const s of sections) applySection(node, s);

    // Every bound address is recorded in KUBE-IPVS-IPS, and every virtual server's address is bound.
    const bound = node.links.addresses('kube-ipvs0', 'IPv4');
    expect(bound).toEqual(node.ipset.members('KUBE-IPVS-IPS'));
    const table = parseIpvsadmSave(node.ipvs.save());
    const ipvsadm = sections[4]!.input;
    expect(table.virtualServers.size).toBe(ipvsadm.split('\n').filter((l) => l.startsWith('-A ')).length);
    for (const vs of table.virtualServers.values()) expect(bound).toContain(vs.address);
    let reals = 0;
    for (const r of table.realServers.values()) reals += r.size;
    expect(reals).toBe(ipvsadm.split('\n').filter((l) => l.startsWith('-a ')).length);
    const rules = sections[2]!.input;
    expect(ruleCount(node.iptables)).toBe(ruleLines(rules));
    for (const name of ['KUBE-CLUSTER-IP', 'KUBE-IPVS-IPS']) expect(node.iptables.usesSet(name)).toBe(true);
    // A set the rules use cannot go.
    expect(() => node.ipset.restore('destroy KUBE-CLUSTER-IP\n')).toThrow(/in use/);

    // Again: the ipset input (with -exist) and the ruleset (its jumps present) change nothing; ipvsadm -R and
    // ip -batch are not idempotent, and say so on every line.
    const before = { iptables: node.iptables.dump(), ipset: node.ipset.dump(), ipvs: node.ipvs.dump(), links: node.links.dump() };
    applySection(node, sections[1]!);
    node.iptables.restore(withoutPresentJumps(node.iptables, rules));
    expect(node.iptables.dump()).toBe(before.iptables);
    expect(node.ipset.dump()).toBe(before.ipset);
    expect(() => applySection(node, sections[0]!)).toThrow(/File exists/);
    if (ipvsadm === '') {
      applySection(node, sections[4]!);
      applySection(node, sections[3]!);
    } else {
      let caught: unknown;
      try {
        applySection(node, sections[4]!);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(FakeToolErrors);
      const reasons = (caught as FakeToolErrors).errors.map((e) => e.reason);
      expect(reasons).toEqual(ipvsadm.split('\n').filter((l) => l !== '').map((l) => (l.startsWith('-A ') ? 'Service already exists' : 'Destination already exists')));
      expect(() => applySection(node, sections[3]!)).toThrow(/line 1 \(address add .*\): RTNETLINK answers: File exists/);
    }
    expect(node.ipvs.dump()).toBe(before.ipvs);
    expect(node.links.dump()).toBe(before.links);
  });
});
