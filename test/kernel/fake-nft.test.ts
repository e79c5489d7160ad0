// The FakeNft's cases against the real nft: every transaction the fake accepts or refuses, nft accepts or
// refuses alike, so unit tests that trust the fake (the partial-equals-full property test) trust nft.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NftTable, renderTransaction } from '../../src/kernel/syntax/nft.js';
import { NFT_CASES } from '../support/fakes/nft-cases.js';
import { NS_PREFIX, requireKernelTestPrereqs } from './lab/index.js';
import { addNamespace, deleteNamespace } from './lab/netns.js';
import { runIn } from './lab/run.js';

const NS = `${NS_PREFIX}${process.pid}-fakenft`;
const T: NftTable = { family: 'ip', name: 'fake_conformance' };

describe('FakeNft agrees with nft', () => {
  beforeAll(async () => {
    requireKernelTestPrereqs();
    await addNamespace(NS);
  });
  afterAll(() => deleteNamespace(NS));

  const nftInput = (ops: Parameters<typeof renderTransaction>[0]['ops']): string => [...renderTransaction({ table: T, ops })].join('');

  it.each(NFT_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await runIn(NS, 'nft', ['flush', 'ruleset']);
    for (const ops of c.setup) {
      const r = await runIn(NS, 'nft', ['-f', '-'], { input: nftInput(ops), reject: false });
      if (r.exitCode !== 0) throw new Error(`setup refused by nft: ${r.stderr}`);
    }
    const before = (await runIn(NS, 'nft', ['list', 'ruleset'])).stdout;
    const r = await runIn(NS, 'nft', ['-f', '-'], { input: nftInput(c.tx), reject: false });
    expect({ accepted: r.exitCode === 0, stderr: r.exitCode === 0 ? '' : 'refused' }).toEqual({ accepted: c.accepted, stderr: c.accepted ? '' : 'refused' });
    if (!c.accepted) expect((await runIn(NS, 'nft', ['list', 'ruleset'])).stdout).toBe(before);
  });
});
