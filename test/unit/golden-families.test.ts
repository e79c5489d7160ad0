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

// Golden rulesets of each family's half of a dual-stack cluster: the iptables and nftables backends built for one
// family as `compile` builds them (dry run: kube-proxy's defaults, nothing read from the machine), their full sync
// printed as `compile` prints a single family, so each file is valid input for its tool (the kernel and fake
// tests apply them). Compared byte for byte; regenerate deliberately with UPDATE_GOLDEN=1 and review the diff.
// What `compile` prints for the whole input (both families, labelled sections) is a CLI golden (golden.test.ts).
const root = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLE = 'rules/examples/dual-stack.yaml';
const POD_CIDR = { IPv4: '10.244.0.0/16', IPv6: 'fd00:10:244::/48' } as const;
type Family = keyof typeof POD_CIDR;

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

const iptables = (family: Family, layout: 'kube-proxy' | 'flat'): ProxyBackend =>
  new IptablesBackend(defaultIptablesOptions({ family, clusterCidr: POD_CIDR[family], layout }), defaultIptablesTools(family));
const nftables = (family: Family): ProxyBackend => new NftablesBackend(defaultNftablesOptions({ family, clusterCidr: POD_CIDR[family] }));

const cases: Array<[string, () => ProxyBackend, string]> = [
  ['iptables, IPv6', () => iptables('IPv6', 'kube-proxy'), 'rules/golden/iptables/dual-stack-ipv6.rules'],
  ['iptables, IPv6, flat layout', () => iptables('IPv6', 'flat'), 'rules/golden/iptables/dual-stack-ipv6-flat.rules'],
  ['nftables, IPv6', () => nftables('IPv6'), 'rules/golden/nftables/dual-stack-ipv6.nft'],
];
const v4cases: Array<[string, () => ProxyBackend, string]> = [
  ['iptables, IPv4', () => iptables('IPv4', 'kube-proxy'), 'rules/golden/iptables/dual-stack-ipv4.rules'],
  ['nftables, IPv4', () => nftables('IPv4'), 'rules/golden/nftables/dual-stack-ipv4.nft'],
];

describe('golden rulesets, one family each', () => {
  it.each([...v4cases, ...cases])('%s', async (_name, backend, golden) => {
    const text = await printed(backend());
    if (process.env['UPDATE_GOLDEN'] === '1') await writeFile(`${root}${golden}`, text);
    expect(text).toBe(await readFile(`${root}${golden}`, 'utf8'));
  });

  it.each(v4cases)('%s: no IPv6 address, nothing of the IPv6-only Service', async (_name, backend) => {
    const text = await printed(backend());
    expect(text).not.toMatch(/\b[0-9a-f]{1,4}:[0-9a-f:]*:[0-9a-f]{1,4}\b/);
    expect(text).not.toContain('shop/dns6');
  });

  it.each(cases)('%s: no IPv4 address, nothing of the IPv4-only Service', async (_name, backend) => {
    const text = await printed(backend());
    expect(text.match(/\b\d{1,3}(\.\d{1,3}){3}\b/g) ?? []).toEqual([]);
    expect(text).not.toContain('shop/legacy');
    expect(text).not.toContain('30081');
  });
});
