import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ProxyBackend } from '../../src/backends/backend.js';
import { IptablesBackend } from '../../src/backends/iptables/backend.js';
import { defaultIptablesOptions } from '../../src/backends/iptables/options.js';
import { NftablesBackend } from '../../src/backends/nftables/backend.js';
import { defaultNftablesOptions } from '../../src/backends/nftables/options.js';
import { defaultIptablesTools } from '../../src/kernel/iptables.js';
import { loadObjects } from '../../src/sources/objects.js';
import { readManifests } from '../../src/sources/read-manifests.js';
import { PrintApplier, syncBackend } from '../../src/sync/applier.js';

// Golden rulesets of the IPv6 half of a dual-stack cluster: the iptables and nftables backends built for IPv6 as
// `compile` builds them for IPv4 (dry run: kube-proxy's defaults, nothing read from the machine), their full sync
// printed as `compile` prints it. Compared byte for byte; regenerate deliberately with UPDATE_GOLDEN=1 and review
// the diff. The IPv4 half of the same input is a CLI golden (golden.test.ts).
const root = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLE = 'rules/examples/dual-stack.yaml';
const POD_CIDR = 'fd00:10:244::/48';

async function printed(backend: ProxyBackend): Promise<string> {
  const parsed = await readManifests([`${root}${EXAMPLE}`], () => Promise.resolve(''));
  expect(parsed.errors).toEqual([]);
  const loaded = loadObjects(parsed.objects, 'node-a');
  expect(loaded.errors).toEqual([]);
  backend.update(loaded.state, loaded.state.takeChanges());
  let out = '';
  await syncBackend(backend, true, { applier: new PrintApplier((t) => (out += t), 'pipeable'), readKernel: false });
  return out;
}

const iptables = (layout: 'kube-proxy' | 'flat'): ProxyBackend =>
  new IptablesBackend(defaultIptablesOptions({ family: 'IPv6', clusterCidr: POD_CIDR, layout }), defaultIptablesTools('IPv6'));

const cases: Array<[string, () => ProxyBackend, string]> = [
  ['iptables, IPv6', () => iptables('kube-proxy'), 'rules/golden/iptables/dual-stack-ipv6.rules'],
  ['iptables, IPv6, flat layout', () => iptables('flat'), 'rules/golden/iptables/dual-stack-ipv6-flat.rules'],
  ['nftables, IPv6', () => new NftablesBackend(defaultNftablesOptions({ family: 'IPv6', clusterCidr: POD_CIDR })), 'rules/golden/nftables/dual-stack-ipv6.nft'],
];

describe('golden rulesets, IPv6', () => {
  it.each(cases)('%s', async (_name, backend, golden) => {
    const text = await printed(backend());
    if (process.env['UPDATE_GOLDEN'] === '1') await writeFile(`${root}${golden}`, text);
    expect(text).toBe(await readFile(`${root}${golden}`, 'utf8'));
  });

  it.each(cases)('%s: no IPv4 address, nothing of the IPv4-only Service', async (_name, backend) => {
    const text = await printed(backend());
    expect(text.match(/\b\d{1,3}(\.\d{1,3}){3}\b/g) ?? []).toEqual([]);
    expect(text).not.toContain('shop/legacy');
    expect(text).not.toContain('30081');
  });
});
