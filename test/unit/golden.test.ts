import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

// Golden rulesets: `switchboard compile` (the built CLI, as operators run it) on the bundled examples,
// compared byte for byte. Regenerate deliberately with UPDATE_GOLDEN=1 and review the diff.
const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = `${root}dist/cli/main.js`;
const base = ['--node-name', 'node-a', '--cluster-cidr', '10.244.0.0/16'];
// A dual-stack node: one pod CIDR per family; compile prints each family's full sync as a labelled section.
const dual = ['--node-name', 'node-a', '--cluster-cidr', '10.244.0.0/16,fd00:10:244::/48'];

const cases: Array<[string, string[], string]> = [
  ['web', ['-f', 'rules/examples/web.yaml', ...base], 'rules/golden/iptables/web.rules'],
  ['web, masquerade-all', ['-f', 'rules/examples/web.yaml', ...base, '--masquerade-all'], 'rules/golden/iptables/web-masquerade-all.rules'],
  ['features', ['-f', 'rules/examples/features.yaml', ...base], 'rules/golden/iptables/features.rules'],
  ['features, flat layout', ['-f', 'rules/examples/features.yaml', ...base, '--iptables-layout', 'flat'], 'rules/golden/iptables/features-flat.rules'],
  ['empty cluster', ['-f', 'rules/examples/empty.yaml', ...base], 'rules/golden/iptables/empty.rules'],
  ['dual-stack', ['-f', 'rules/examples/dual-stack.yaml', ...dual], 'rules/golden/dual-stack/iptables.txt'],
  ['dual-stack, flat layout', ['-f', 'rules/examples/dual-stack.yaml', ...dual, '--iptables-layout', 'flat'], 'rules/golden/dual-stack/iptables-flat.txt'],
  ['ipvs: features', ['-f', 'rules/examples/features.yaml', ...base, '--backend', 'ipvs'], 'rules/golden/ipvs/features.txt'],
  ['ipvs: web, masquerade-all, sh', ['-f', 'rules/examples/web.yaml', ...base, '--backend', 'ipvs', '--masquerade-all', '--ipvs-scheduler', 'sh'], 'rules/golden/ipvs/web-masquerade-all-sh.txt'],
  ['ipvs: empty cluster', ['-f', 'rules/examples/empty.yaml', ...base, '--backend', 'ipvs'], 'rules/golden/ipvs/empty.txt'],
  ['nftables: features', ['-f', 'rules/examples/features.yaml', ...base, '--backend', 'nftables'], 'rules/golden/nftables/features.nft'],
  ['nftables: web', ['-f', 'rules/examples/web.yaml', ...base, '--backend', 'nftables'], 'rules/golden/nftables/web.nft'],
  ['nftables: web, masquerade-all', ['-f', 'rules/examples/web.yaml', ...base, '--backend', 'nftables', '--masquerade-all'], 'rules/golden/nftables/web-masquerade-all.nft'],
  ['nftables: web, no cluster CIDR', ['-f', 'rules/examples/web.yaml', '--node-name', 'node-a', '--backend', 'nftables'], 'rules/golden/nftables/web-no-cidr.nft'],
  ['nftables: dual-stack', ['-f', 'rules/examples/dual-stack.yaml', ...dual, '--backend', 'nftables'], 'rules/golden/dual-stack/nftables.txt'],
  ['nftables: empty cluster', ['-f', 'rules/examples/empty.yaml', ...base, '--backend', 'nftables'], 'rules/golden/nftables/empty.nft'],
];

describe('golden rulesets', () => {
  it.each(cases)('%s', async (_name, args, golden) => {
    const { stdout, exitCode } = await execa(process.execPath, [cli, 'compile', ...args], { cwd: root });
    expect(exitCode).toBe(0);
    if (process.env['UPDATE_GOLDEN'] === '1') await writeFile(`${root}${golden}`, stdout + '\n');
    expect(stdout + '\n').toBe(await readFile(`${root}${golden}`, 'utf8'));
  });
});
