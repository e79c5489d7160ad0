// FakeNft: the cases nft itself was seen to accept or refuse (nft-cases.ts, also run against nft in
// test/kernel/fake-nft.test.ts), atomic transactions, and the canonical dump.
import { describe, expect, it } from 'vitest';
import { type NftTable, nft, renderTransaction } from '../../../src/kernel/syntax/nft.js';
import { FakeNft, FakeNftError } from '../../support/fakes/nft.js';
import { NFT_CASES } from '../../support/fakes/nft-cases.js';

const T: NftTable = { family: 'ip', name: 't' };

describe('FakeNft', () => {
  it.each(NFT_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const fake = new FakeNft();
    for (const ops of c.setup) fake.apply({ table: T, ops });
    const before = fake.dump();
    if (c.accepted) {
      expect(() => fake.apply({ table: T, ops: c.tx })).not.toThrow();
    } else {
      expect(() => fake.apply({ table: T, ops: c.tx })).toThrow(FakeNftError);
      // All or nothing: a refused transaction leaves the table as it was.
      expect(fake.dump()).toBe(before);
    }
  });

  it('dumps tables, sets, elements and chains sorted, rules in order, with comments as nft holds them', () => {
    const fake = new FakeNft();
    fake.apply({
      table: T,
      ops: [
        nft.addTable('rules'),
        nft.addChain({ name: 'z' }),
        nft.addChain({ name: 'a', base: { type: 'filter', hook: 'input', priority: 0 } }),
        nft.addRule('a', 'jump z'),
        nft.addRule('a', 'counter', 'y'.repeat(130)),
        nft.addSet({ kind: 'set', name: 'ips', type: 'ipv4_addr' }),
        nft.addElements('ips', [{ key: '10.0.0.2' }, { key: '10.0.0.1' }]),
      ],
    });
    expect(fake.dump()).toBe(
      [
        'table ip t comment rules',
        '  set ips { type ipv4_addr }',
        '    10.0.0.1',
        '    10.0.0.2',
        '  chain a { type filter hook input priority 0 }',
        '    jump z',
        `    counter comment "${'y'.repeat(128)}"`,
        '  chain z',
        '',
      ].join('\n'),
    );
  });

  it('records what nft -f would have read', () => {
    const fake = new FakeNft();
    fake.apply({ table: T, ops: [nft.addTable(), nft.addChain({ name: 'c' })] });
    expect(fake.applied).toEqual(['add table ip t\nadd chain ip t c\n']);
    expect(fake.applied[0]).toBe([...renderTransaction({ table: T, ops: [nft.addTable(), nft.addChain({ name: 'c' })] })].join(''));
  });
});
