// A full sync skips the per-service chains the kernel already holds verbatim. That rests on save-form.ts
// predicting iptables-save's text for our rules, so check the prediction against the real tools (nft and
// legacy), and check that a restart skips what is intact and repairs what was changed from outside.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { IptablesCompiler } from '../../src/backends/iptables/compiler.js';
import { parseLiveRules } from '../../src/backends/iptables/live-rules.js';
import { defaultIptablesOptions } from '../../src/backends/iptables/options.js';
import { chainSaveForm } from '../../src/backends/iptables/save-form.js';
import { loadObjects } from '../../src/sources/objects.js';
import { parseManifestText } from '../../src/sources/manifests.js';
import { parseRules } from '../support/iptables-text.js';
import { endpointSlice, list, service } from '../support/objects.js';
import { CLUSTER_CIDR, NODE_NAME, podsHit, rawSave, useKernelLab } from './helpers.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.2' };
const VIP = '10.96.3.1';
const STICKY_VIP = '10.96.3.2';

const GOLDEN = ['features', 'features-flat', 'web', 'web-masquerade-all', 'empty'];

describe('iptables-save form of our rules', () => {
  const k = useKernelLab([]);

  it.each(['nft', 'legacy'])('matches what iptables-%s-save prints for every chain of every golden ruleset', async (mode) => {
    for (const name of GOLDEN) {
      const golden = await readFile(new URL(`../../rules/golden/iptables/${name}.rules`, import.meta.url), 'utf8');
      // The flat layout's rules name an ipset: create it from the payload's commented ipset section first.
      const ipset = /^# ipset restore -exist, before iptables-restore:\n((?:# .*\n)*)/m.exec(golden);
      if (ipset) await k.lab.exec('node', 'ipset', ['restore', '-exist'], { input: ipset[1]!.replace(/^# /gm, '') });
      const restore = await k.lab.exec('node', `iptables-${mode}-restore`, ['--noflush'], { input: golden, reject: false });
      expect(restore.stderr, `${name}: iptables-${mode}-restore`).toBe('');
      const saved = parseRules((await k.lab.exec('node', `iptables-${mode}-save`, [])).stdout);
      let compared = 0;
      for (const [table, chains] of parseRules(golden)) {
        for (const [chain, rules] of chains) {
          if (chain === '!ops') continue;
          const ours = chainSaveForm(rules.map((r) => `-A ${chain} ${r}\n`).join(''), 'IPv4');
          const theirs = (saved.get(table)?.get(chain) ?? []).map((r) => `-A ${chain} ${r}`).join('\n');
          expect(ours, `${name}: ${table} ${chain}`).toBe(theirs);
          compared += rules.length;
        }
      }
      expect(compared, `${name}: rules compared`).toBeGreaterThan(name === 'empty' ? 5 : 20);
      // Empty this mode's tables for the next ruleset (legacy and nft tables live side by side).
      const tables = ['filter', 'nat', 'mangle'].map((t) => `*${t}\nCOMMIT\n`).join('');
      await k.lab.exec('node', `iptables-${mode}-restore`, [], { input: tables });
    }
  });
});

describe('full sync over rules the kernel already holds', () => {
  const k = useKernelLab([A, B, C]);

  it('rewrites no intact per-service chain, and exactly the chain changed from outside', async () => {
    const objects = [
      service({ name: 'web', clusterIP: VIP, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
      endpointSlice({ name: 'web-1', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: A.ip }, { ip: B.ip }] }),
      service({ name: 'sticky', clusterIP: STICKY_VIP, ports: [{ name: 'http', port: 80, targetPort: 8080 }], affinityTimeoutSeconds: 600 }),
      endpointSlice({ name: 'sticky-1', service: 'sticky', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: A.ip }, { ip: B.ip }] }),
    ];
    const parsed = parseManifestText(list(objects), 'held');
    const { state, errors } = loadObjects(parsed.objects, NODE_NAME);
    expect([...parsed.errors, ...errors]).toEqual([]);
    /** A fresh compiler over the same cluster, as a restarted agent holds it. */
    const restarted = (): IptablesCompiler => {
      const compiler = new IptablesCompiler(
        defaultIptablesOptions({ family: 'IPv4', clusterCidr: CLUSTER_CIDR, masqueradeAll: false, dropInvalid: false }),
      );
      compiler.update(state, [...state.allServices()].map((s) => s.key));
      return compiler;
    };
    const declared = (payload: string): string[] =>
      payload.split('\n').filter((l) => /^:KUBE-(SVC|SEP|SVL)-/.test(l)).map((l) => l.slice(1).split(' ')[0]!);

    const cold = restarted().planFull(parseLiveRules(await rawSave(k.lab)));
    expect(declared(cold.payload.text)).toHaveLength(2 + 4);
    await k.lab.iptablesRestore(cold.payload.text);
    const programmed = await k.lab.iptablesSave();

    const restart = restarted().planFull(parseLiveRules(await rawSave(k.lab)));
    expect(declared(restart.payload.text)).toEqual([]);
    expect(restart.payload.stats.chainsWritten).toBe(5 + 7 + 1); // the fixed chains only (filter's with KUBE-FIREWALL)
    await k.lab.iptablesRestore(restart.payload.text);
    expect(await k.lab.iptablesSave()).toBe(programmed);
    expect(new Set(podsHit(await k.lab.probe('c', { proto: 'tcp', ip: VIP, port: 80, count: 12 })))).toEqual(new Set(['a', 'b']));

    // Someone removes web's jump to one endpoint: only that Service chain is rewritten, and both pods serve again.
    const svc = programmed.split('\n').find((l) => l.startsWith('-A KUBE-SVC-') && l.includes('"default/web:http ->'))!;
    const chain = svc.split(' ')[1]!;
    await k.lab.exec('node', 'iptables', ['-t', 'nat', '-D', chain, '1']);
    const repair = restarted().planFull(parseLiveRules(await rawSave(k.lab)));
    expect(declared(repair.payload.text)).toEqual([chain]);
    await k.lab.iptablesRestore(repair.payload.text);
    expect(await k.lab.iptablesSave()).toBe(programmed);
    expect(new Set(podsHit(await k.lab.probe('c', { proto: 'tcp', ip: VIP, port: 80, count: 12 })))).toEqual(new Set(['a', 'b']));
  });
});
