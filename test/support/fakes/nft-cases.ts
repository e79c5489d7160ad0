// Transactions with the outcome nft gives them, shared by the FakeNft unit test and the kernel test that checks
// the same cases against the real nft (test/kernel/fake-nft.test.ts), so the fake cannot drift from the tool.
import { type NftOp, nft } from '../../../src/kernel/syntax/nft.js';

export interface NftCase {
  readonly name: string;
  /** Applied first, each must succeed. */
  readonly setup: readonly (readonly NftOp[])[];
  readonly tx: readonly NftOp[];
  readonly accepted: boolean;
}

const table = nft.addTable();
const map = nft.addSet({ kind: 'map', name: 'm', type: 'ipv4_addr : verdict' });
const set = nft.addSet({ kind: 'set', name: 's', type: 'ipv4_addr' });
const chainC = nft.addChain({ name: 'c' });
const base = [table, map, set, chainC];

export const NFT_CASES: readonly NftCase[] = [
  { name: 'a fresh table, sets, chains, rules and elements', setup: [], tx: [...base, nft.addRule('c', 'ip daddr @s counter'), nft.addElements('m', [{ key: '10.0.0.1', value: 'goto c' }])], accepted: true },
  { name: 'the same map element again', setup: [[...base, nft.addElements('m', [{ key: '10.0.0.1', value: 'goto c' }])]], tx: [nft.addElements('m', [{ key: '10.0.0.1', value: 'goto c' }])], accepted: true },
  { name: 'a map key again with another value', setup: [[...base, nft.addElements('m', [{ key: '10.0.0.1', value: 'goto c' }])]], tx: [nft.addElements('m', [{ key: '10.0.0.1', value: 'drop' }])], accepted: false },
  { name: 'a map key again with another comment', setup: [[...base, nft.addElements('m', [{ key: '10.0.0.1', value: 'drop' }])]], tx: [nft.addElements('m', [{ key: '10.0.0.1', value: 'drop', comment: 'x' }])], accepted: true },
  { name: 'deleting a chain a map element jumps to', setup: [[...base, nft.addElements('m', [{ key: '10.0.0.1', value: 'goto c' }])]], tx: [nft.deleteChain('c')], accepted: false },
  { name: 'deleting a chain a rule jumps to', setup: [[...base, nft.addChain({ name: 'd' }), nft.addRule('d', 'jump c')]], tx: [nft.deleteChain('c')], accepted: false },
  { name: 'deleting a chain once nothing refers to it', setup: [[...base, nft.addChain({ name: 'd' }), nft.addRule('d', 'jump c')]], tx: [nft.flushChain('d'), nft.deleteChain('c')], accepted: true },
  { name: 'a jump to a chain declared later in the transaction', setup: [[...base]], tx: [nft.addRule('c', 'jump later'), nft.addChain({ name: 'later' })], accepted: false },
  { name: 'a rule reading a missing set', setup: [[...base]], tx: [nft.addRule('c', 'ip daddr @missing counter')], accepted: false },
  { name: 'deleting a missing element', setup: [[...base]], tx: [nft.deleteElements('m', [{ key: '10.0.0.9' }])], accepted: false },
  { name: 'flushing a missing chain', setup: [[...base]], tx: [nft.flushChain('missing')], accepted: false },
  { name: 'deleting a set a rule reads', setup: [[...base, nft.addRule('c', 'ip daddr @s counter')]], tx: [nft.deleteSet('set', 's')], accepted: false },
  { name: 'a base chain added twice alike', setup: [[table]], tx: [nft.addChain({ name: 'pre', base: { type: 'nat', hook: 'prerouting', priority: -100 } }), nft.addChain({ name: 'pre', base: { type: 'nat', hook: 'prerouting', priority: -100 } })], accepted: true },
  { name: 'a set added again with another timeout', setup: [[table, nft.addSet({ kind: 'set', name: 'a', type: 'ipv4_addr', flags: ['dynamic', 'timeout'], timeout: '10s' })]], tx: [nft.addSet({ kind: 'set', name: 'a', type: 'ipv4_addr', flags: ['dynamic', 'timeout'], timeout: '20s' })], accepted: true },
  { name: 'a 200-character comment (cut to 128)', setup: [[...base]], tx: [nft.addElements('m', [{ key: '10.0.0.2', value: 'drop', comment: 'x'.repeat(200) }])], accepted: true },
  { name: 'a failing transaction changes nothing', setup: [[...base]], tx: [nft.addElements('m', [{ key: '10.0.0.3', value: 'drop' }]), nft.flushChain('missing')], accepted: false },
];
