// The IPv6 rulesets the kernel is handed: the IPv6 goldens (iptables in both layouts, nftables) are accepted by
// ip6tables-restore (nft and legacy) and nft in the lab's node namespace, save-form.ts predicts ip6tables-save's
// text for every chain (so a full sync can skip held chains), and a second full sync over what the first left
// declares no per-service chain. Packets over IPv6 are the lab's suites'; this is about the rule text.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { IptablesCompiler } from '../../src/backends/iptables/compiler.js';
import { parseLiveRules } from '../../src/backends/iptables/live-rules.js';
import { type IptablesLayout, defaultIptablesOptions } from '../../src/backends/iptables/options.js';
import { chainSaveForm } from '../../src/backends/iptables/save-form.js';
import { parseManifestText } from '../../src/sources/manifests.js';
import { loadObjects } from '../../src/sources/objects.js';
import { parseRules } from '../support/iptables-text.js';
import { type Lab } from './lab/index.js';
import { useKernelLab } from './helpers.js';

const golden = (path: string): Promise<string> => readFile(new URL(`../../rules/golden/${path}`, import.meta.url), 'utf8');
const EMPTY = ['filter', 'nat', 'mangle'].map((t) => `*${t}\nCOMMIT\n`).join('');

/** The flat layout's ipset input, printed as `#` lines before the restore input; '' when there is none. */
function ipsetInput(text: string): string {
  const m = /^# ipset restore -exist, before ip6tables-restore:\n((?:# .*\n)*)/m.exec(text);
  return m === null ? '' : m[1]!.replace(/^# /gm, '');
}

async function emptyIp6tables(lab: Lab, mode: string): Promise<void> {
  await lab.exec('node', `ip6tables-${mode}-restore`, [], { input: EMPTY });
}

describe('IPv6 iptables rules in the kernel', () => {
  const k = useKernelLab([]);

  it.each(['nft', 'legacy'])('ip6tables-%s-restore takes the IPv6 goldens, and ip6tables-save prints what save-form.ts predicts', async (mode) => {
    for (const name of ['dual-stack-ipv6', 'dual-stack-ipv6-flat']) {
      const text = await golden(`iptables/${name}.rules`);
      const ipset = ipsetInput(text);
      expect(ipset !== '').toBe(name.endsWith('flat'));
      if (ipset !== '') await k.lab.exec('node', 'ipset', ['restore', '-exist'], { input: ipset });
      const restore = await k.lab.exec('node', `ip6tables-${mode}-restore`, ['-w', '5', '--noflush', '--counters'], { input: text, reject: false });
      expect(restore.stderr, `${name}: ip6tables-${mode}-restore`).toBe('');
      expect(restore.exitCode).toBe(0);
      const saved = parseRules((await k.lab.exec('node', `ip6tables-${mode}-save`, [])).stdout);
      let compared = 0;
      for (const [table, chains] of parseRules(text)) {
        for (const [chain, rules] of chains) {
          if (chain === '!ops') continue;
          const ours = chainSaveForm(rules.map((r) => `-A ${chain} ${r}\n`).join(''), 'IPv6');
          const theirs = (saved.get(table)?.get(chain) ?? []).map((r) => `-A ${chain} ${r}`).join('\n');
          expect(ours, `${name}: ${table} ${chain}`).toBe(theirs);
          compared += rules.length;
        }
      }
      expect(compared, `${name}: rules compared`).toBeGreaterThan(40);
      if (ipset !== '') expect((await k.lab.exec('node', 'ipset', ['list', '-n'])).stdout.split('\n')).toContain('KUBE-6-LOOP-BACK');
      await emptyIp6tables(k.lab, mode);
    }
  });

  it.each(['kube-proxy', 'flat'] as const)('%s layout: a second full sync over the first one\'s rules declares no per-service chain', async (layout: IptablesLayout) => {
    const text = await readFile(new URL('../../rules/examples/dual-stack.yaml', import.meta.url), 'utf8');
    const parsed = parseManifestText(text, 'dual-stack.yaml');
    const { state, errors } = loadObjects(parsed.objects, 'node-a');
    expect([...parsed.errors, ...errors]).toEqual([]);
    const compiler = (): IptablesCompiler => {
      const c = new IptablesCompiler(defaultIptablesOptions({ family: 'IPv6', clusterCidr: 'fd00:10:244::/48', layout }));
      c.update(state, [...state.allServices()].map((s) => s.key));
      return c;
    };
    const save = async (): Promise<string> => (await k.lab.exec('node', 'ip6tables-save', [])).stdout;
    const perService = (payload: string): string[] => payload.split('\n').filter((l) => /^:KUBE-(SVC|SVL|SEP|EXT|FW)-/.test(l));

    const cold = compiler().planFull(parseLiveRules(await save()));
    expect(perService(cold.payload.text).length).toBeGreaterThan(5);
    if (cold.ipset) await k.lab.exec('node', 'ipset', ['restore', '-exist'], { input: cold.ipset.input });
    await k.lab.exec('node', 'ip6tables-restore', ['-w', '5', '--noflush', '--counters'], { input: cold.payload.text });

    const warm = compiler().planFull(parseLiveRules(await save()));
    expect(perService(warm.payload.text)).toEqual([]);
    // Nor a jump from a built-in chain: they are all in place.
    expect(warm.payload.text).not.toContain('\n-I ');
    await k.lab.exec('node', 'ip6tables-restore', ['-w', '5', '--noflush', '--counters'], { input: warm.payload.text });
    await emptyIp6tables(k.lab, 'nft');
  });
});

describe('IPv6 nftables table in the kernel', () => {
  const k = useKernelLab([]);

  it('nft takes the IPv6 golden, twice (a full sync over its own table), next to the IPv4 one', async () => {
    const v6 = await golden('nftables/dual-stack-ipv6.nft');
    const v4 = await golden('nftables/dual-stack-ipv4.nft');
    try {
      for (const input of [v6, v4, v6]) {
        const r = await k.lab.exec('node', 'nft', ['-f', '-'], { input, reject: false });
        expect(r.stderr).toBe('');
        expect(r.exitCode).toBe(0);
      }
      const listed = (await k.lab.exec('node', 'nft', ['list', 'table', 'ip6', 'kube-proxy'])).stdout;
      expect(listed).toContain('type ipv6_addr . inet_proto . inet_service : verdict');
      expect(listed).toContain('fd00:10:96::50 . tcp . 80 comment "default/web:http cluster IP" : goto lb-tcp-2');
      expect(listed).toContain('chain endpoint-');
      expect(listed).toMatch(/dnat ip6 to \[fd00:10:244:1::10\]:8080|dnat to \[fd00:10:244:1::10\]:8080/);
      expect((await k.lab.exec('node', 'nft', ['list', 'table', 'ip', 'kube-proxy'])).stdout).toContain('10.96.0.50 . tcp . 80');
    } finally {
      await k.lab.exec('node', 'nft', ['delete', 'table', 'ip6', 'kube-proxy'], { reject: false });
    }
  });
});
