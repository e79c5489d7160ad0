// FakeIpset: ipset restore -exist's idempotent creates, adds and deletes, its refusals, line-by-line application.
import { describe, expect, it } from 'vitest';
import { FakeToolError } from '../../support/fakes/common.js';
import { FakeIpset } from '../../support/fakes/ipset.js';

const CREATE = 'create S hash:ip,port family inet hashsize 1024 maxelem 1048576';

function refusedAt(fake: FakeIpset, text: string, lineNumber: number, reason: RegExp): void {
  let caught: unknown;
  try {
    fake.restore(text);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FakeToolError);
  const e = caught as FakeToolError;
  expect(e.lineNumber).toBe(lineNumber);
  expect(e.line).toBe(text.split('\n')[lineNumber - 1]);
  expect(e.reason).toMatch(reason);
}

describe('FakeIpset', () => {
  it('creates, fills, swaps and destroys sets, and dumps them sorted with their type', () => {
    const fake = new FakeIpset();
    fake.restore(
      [
        'create NEXT hash:ip,port,ip family inet hashsize 1024 maxelem 1048576',
        'flush NEXT',
        'add NEXT 10.244.1.7,udp:53,10.244.1.7',
        'add NEXT 10.244.1.5,tcp:8080,10.244.1.5',
        'create LIVE hash:ip,port,ip family inet hashsize 1024 maxelem 1048576',
        'add LIVE 10.0.0.9,tcp:1,10.0.0.9',
        'swap NEXT LIVE',
        'destroy NEXT',
        'create IPS hash:ip family inet',
        'add IPS 10.96.0.10',
        '',
      ].join('\n'),
    );
    expect(fake.dump()).toBe(
      [
        'IPS hash:ip family inet maxelem 65536',
        '  10.96.0.10',
        'LIVE hash:ip,port,ip family inet maxelem 1048576',
        '  10.244.1.5,tcp:8080,10.244.1.5',
        '  10.244.1.7,udp:53,10.244.1.7',
        '',
      ].join('\n'),
    );
    expect(fake.save()).toBe(
      [
        'create IPS hash:ip family inet',
        'add IPS 10.96.0.10',
        'create LIVE hash:ip,port,ip family inet hashsize 1024 maxelem 1048576',
        'add LIVE 10.244.1.5,tcp:8080,10.244.1.5',
        'add LIVE 10.244.1.7,udp:53,10.244.1.7',
        '',
      ].join('\n'),
    );
    expect(new FakeIpset().dump()).toBe('');
  });

  it('with -exist: an identical create, a present add and an absent del change nothing', () => {
    const fake = new FakeIpset();
    fake.restore(`${CREATE}\nadd S 10.0.0.1,tcp:80\n`);
    // hashsize is not part of a set's identity: the kernel resizes.
    fake.restore(`${CREATE.replace('hashsize 1024', 'hashsize 4096')}\nadd S 10.0.0.1,tcp:80\ndel S 10.0.0.2,tcp:80\n`);
    expect(fake.members('S')).toEqual(['10.0.0.1,tcp:80']);
  });

  it('refuses creating a set under a taken name with another type, family or maxelem', () => {
    const fake = new FakeIpset();
    fake.restore(`${CREATE}\n`);
    refusedAt(fake, 'create S hash:ip family inet hashsize 1024 maxelem 1048576\n', 1, /same name already exists/);
    refusedAt(fake, 'create S hash:ip,port family inet6 hashsize 1024 maxelem 1048576\n', 1, /same name already exists/);
    refusedAt(fake, 'create S hash:ip,port family inet hashsize 1024\n', 1, /same name already exists/);
    expect(fake.type('S')).toBe('hash:ip,port');
  });

  it('refuses members of missing sets, and members that do not fit the type or family', () => {
    const fake = new FakeIpset();
    fake.restore(`${CREATE}\ncreate I6 hash:ip family inet6\n`);
    refusedAt(fake, 'add NOPE 10.0.0.1,tcp:80\n', 1, /does not exist/);
    refusedAt(fake, 'del NOPE 10.0.0.1,tcp:80\n', 1, /does not exist/);
    refusedAt(fake, 'add S 10.0.0.1\n', 1, /not a hash:ip,port entry/);
    refusedAt(fake, 'add S 10.0.0.1,tcp:99999\n', 1, /invalid port/);
    refusedAt(fake, 'add S 10.0.0.1,icmpx:80\n', 1, /invalid protocol/);
    refusedAt(fake, 'add S fd00::1,tcp:80\n', 1, /as an IPv4 address/);
    refusedAt(fake, 'add I6 10.0.0.1\n', 1, /as an IPv6 address/);
    refusedAt(fake, 'add S 10.0.0.1,tcp:80 timeout 5\n', 1, /one member expected/);
    // A port without protocol is tcp; IPv6 is held in its printed form.
    fake.restore('add S 10.0.0.1,80\nadd I6 FD00:0::1\n');
    expect(fake.members('S')).toEqual(['10.0.0.1,tcp:80']);
    expect(fake.members('I6')).toEqual(['fd00::1']);
  });

  it('refuses a member beyond maxelem, but not one already there', () => {
    const fake = new FakeIpset();
    fake.restore('create T hash:ip family inet maxelem 2\nadd T 10.0.0.1\nadd T 10.0.0.2\nadd T 10.0.0.2\n');
    refusedAt(fake, 'add T 10.0.0.3\n', 1, /Hash is full/);
    expect(fake.members('T')).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('swap needs two existing sets of one type and family', () => {
    const fake = new FakeIpset();
    fake.restore(`${CREATE}\ncreate T hash:ip family inet\n`);
    refusedAt(fake, 'swap S NOPE\n', 1, /does not exist/);
    refusedAt(fake, 'swap NOPE S\n', 1, /does not exist/);
    refusedAt(fake, 'swap S T\n', 1, /type does not match/);
  });

  it('destroy refuses a missing set and one a rule still uses', () => {
    const used = new Set(['S']);
    const fake = new FakeIpset((name) => used.has(name));
    fake.restore(`${CREATE}\ncreate T hash:ip family inet\n`);
    refusedAt(fake, 'destroy NOPE\n', 1, /does not exist/);
    refusedAt(fake, 'destroy S\n', 1, /in use by a kernel component/);
    // Destroying them all fails whole when one is in use.
    refusedAt(fake, 'destroy\n', 1, /in use/);
    expect(fake.names()).toEqual(['S', 'T']);
    used.clear();
    fake.restore('destroy S\n');
    expect(fake.names()).toEqual(['T']);
  });

  it('applies line by line: a refused line leaves the lines before it applied and stops the run', () => {
    const fake = new FakeIpset();
    refusedAt(fake, `${CREATE}\nadd S 10.0.0.1,tcp:80\nadd NOPE 10.0.0.2\nadd S 10.0.0.3,tcp:80\n`, 3, /does not exist/);
    expect(fake.members('S')).toEqual(['10.0.0.1,tcp:80']);
  });

  it('skips blank and comment lines and COMMIT, and refuses unknown commands and long names', () => {
    const fake = new FakeIpset();
    fake.restore(`# sets\n\n${CREATE}\n   \nCOMMIT\n`);
    expect(fake.has('S')).toBe(true);
    refusedAt(fake, '\nlist S\n', 2, /Unknown command list/);
    refusedAt(fake, `create ${'N'.repeat(32)} hash:ip\n`, 1, /longer than 31/);
    refusedAt(fake, 'create X hash:mac\n', 1, /Unknown set type/);
    refusedAt(fake, 'create X hash:ip family inet bogus 1\n', 1, /Unknown argument/);
  });
});
