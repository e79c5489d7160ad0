// FakeIpvs (ipvsadm -R: kernel refusals collected, parse errors stop the run) and FakeIpLinks (ip -batch -).
import { describe, expect, it } from 'vitest';
import { parseIpvsadmSave } from '../../../src/backends/ipvs/ipvsadm.js';
import { FakeToolError, FakeToolErrors } from '../../support/fakes/common.js';
import { FakeIpLinks, FakeIpvs } from '../../support/fakes/ipvs.js';

/** Restores, expecting the run to be refused with exactly these (line number, reason) pairs. */
function refusals(fake: FakeIpvs, text: string): Array<[number | undefined, string]> {
  let caught: unknown;
  try {
    fake.restore(text);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FakeToolErrors);
  const errors = (caught as FakeToolErrors).errors;
  for (const e of errors) expect(e.line).toBe(text.split('\n')[e.lineNumber! - 1]);
  return errors.map((e) => [e.lineNumber, e.reason]);
}

const BASE = ['-A -t 10.96.0.10:80 -s rr -p 600', '-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1', '-a -t 10.96.0.10:80 -r 10.244.1.3:8080 -m -w 1', ''].join('\n');

describe('FakeIpvs', () => {
  it('adds services and real servers, dumps them sorted in ipvsadm -S -n form, which Switchboard parses', () => {
    const fake = new FakeIpvs();
    fake.restore(['-A -u 10.96.0.10:53 -s rr', '-a -u 10.96.0.10:53 -r 10.244.1.7:53 -m -w 1', BASE].join('\n'));
    const saved = [
      '-A -t 10.96.0.10:80 -s rr -p 600',
      '-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1',
      '-a -t 10.96.0.10:80 -r 10.244.1.3:8080 -m -w 1',
      '-A -u 10.96.0.10:53 -s rr',
      '-a -u 10.96.0.10:53 -r 10.244.1.7:53 -m -w 1',
      '',
    ].join('\n');
    expect(fake.dump()).toBe(saved);
    const table = parseIpvsadmSave(fake.save());
    expect([...table.virtualServers.keys()]).toEqual(['-t 10.96.0.10:80', '-u 10.96.0.10:53']);
    expect(table.virtualServers.get('-t 10.96.0.10:80' as never)?.persistenceSeconds).toBe(600);
    expect(new FakeIpvs().dump()).toBe('');
  });

  it('holds IPv6 services and real servers bracketed, in their printed form', () => {
    const fake = new FakeIpvs();
    fake.restore('-A -t [FD00:0::10]:80 -s rr\n-a -t [fd00::10]:80 -r [fd00:0:0::2]:8080 -m -w 2\n');
    expect(fake.dump()).toBe('-A -t [fd00::10]:80 -s rr\n-a -t [fd00::10]:80 -r [fd00::2]:8080 -m -w 2\n');
    expect(refusals(fake, '-a -t [fd00::10]:80 -r 10.0.0.1:80 -m -w 1\n')).toEqual([[1, expect.stringMatching(/another address family/)]]);
  });

  it('-E states the whole service: without -p persistence is off, without -s the scheduler is wlc', () => {
    const fake = new FakeIpvs();
    fake.restore(BASE);
    fake.restore('-E -t 10.96.0.10:80 -s sh\n');
    expect(fake.dump()).toContain('-A -t 10.96.0.10:80 -s sh\n');
    fake.restore('-E -t 10.96.0.10:80 -p\n');
    expect(fake.dump()).toContain('-A -t 10.96.0.10:80 -s wlc -p 300\n');
  });

  it('refuses -A of an existing service, -E and -D of a missing one; -D takes the real servers with it', () => {
    const fake = new FakeIpvs();
    fake.restore(BASE);
    expect(refusals(fake, '-A -t 10.96.0.10:80 -s rr\n-E -t 10.96.0.11:80 -s rr\n-D -u 10.96.0.10:80\n')).toEqual([
      [1, 'Service already exists'],
      [2, 'No such service'],
      [3, 'No such service'],
    ]);
    fake.restore('-D -t 10.96.0.10:80\n');
    expect(fake.dump()).toBe('');
  });

  it('refuses -a to a missing service or of an existing real server, -e and -d of a missing one', () => {
    const fake = new FakeIpvs();
    fake.restore(BASE);
    const text = [
      '-a -t 10.96.0.11:80 -r 10.244.1.2:8080 -m -w 1',
      '-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1',
      '-e -t 10.96.0.10:80 -r 10.244.1.9:8080 -m -w 0',
      '-d -t 10.96.0.10:80 -r 10.244.1.9:8080',
      '',
    ].join('\n');
    expect(refusals(fake, text)).toEqual([
      [1, 'Service not defined'],
      [2, 'Destination already exists'],
      [3, 'No such destination'],
      [4, 'No such destination'],
    ]);
    fake.restore('-e -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0\n-d -t 10.96.0.10:80 -r 10.244.1.3:8080\n');
    expect(fake.dump()).toBe('-A -t 10.96.0.10:80 -s rr -p 600\n-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0\n');
  });

  it('goes on after a line the kernel refuses: every other line applies, the refusals come at the end', () => {
    const fake = new FakeIpvs();
    const text = ['-A -t 10.96.0.1:80 -s rr', '-a -t 10.96.0.2:80 -r 10.244.0.1:80 -m -w 1', '-A -t 10.96.0.3:80 -s nosuch', '-A -t 10.96.0.4:80 -s rr', ''].join('\n');
    expect(refusals(fake, text)).toEqual([
      [2, 'Service not defined'],
      [3, 'Scheduler not found: nosuch'],
    ]);
    expect(fake.serviceKeys()).toEqual(['-t 10.96.0.1:80', '-t 10.96.0.4:80']);
  });

  it('stops at a line ipvsadm cannot parse: the lines before it stay, the lines after never run', () => {
    const fake = new FakeIpvs();
    const text = ['-A -t 10.96.0.1:80 -s rr', '-A -t 10.96.0.2:99999 -s rr', '-A -t 10.96.0.3:80 -s rr', ''].join('\n');
    expect(refusals(fake, text)).toEqual([[2, expect.stringMatching(/illegal virtual server address/)]]);
    expect(fake.serviceKeys()).toEqual(['-t 10.96.0.1:80']);
    for (const [line, reason] of [
      ['-A -t 10.96.0.5:0 -s rr', /Zero port specified for non-persistent service/],
      ['-A -t 10.96.0.5 -s rr', /Zero port specified for non-persistent service/],
      ['-t 10.96.0.5:80 -A -s rr', /first word must be a command/],
      ['-A -t 10.96.0.5:80 -p 0', /illegal timeout/],
      ['-a -t 10.96.0.1:80 -r 10.0.0.1:80 -m -g', /multiple forwarding methods/],
      ['-d -t 10.96.0.1:80 -r 10.0.0.1:80 -m', /Illegal '-m' option/],
      ['-a -t 10.96.0.1:80 -r 10.0.0.1:80 -m -w 70000', /illegal weight/],
      ['-A -t 10.96.0.5:80 -s rr -r 10.0.0.1:80', /Illegal '-r' option/],
      ['-A -a -t 10.96.0.5:80', /multiple commands/],
      ['-a -t 10.96.0.1:80 -m -w 1', /real server \(-r\) is required/],
      ['-A -s rr', /service .* is required/],
      ['# a comment', /first word must be a command/],
    ] as const) {
      const fake = new FakeIpvs();
      expect(refusals(fake, `${line}\n-A -t 10.96.0.9:80 -s rr\n`)).toEqual([[1, expect.stringMatching(reason)]]);
      expect(fake.dump()).toBe('');
    }
  });

  it('skips a line popt cannot read (an unknown option, a missing argument) and goes on; skips empty lines', () => {
    const fake = new FakeIpvs();
    const text = ['-A -t 10.96.0.1:80 -s rr --bogus', '', '-A -t 10.96.0.2:80 -s', '   ', '-A -t 10.96.0.3:80 -s rr', '-A -t 10.96.0.4 -p', ''].join('\n');
    expect(refusals(fake, text)).toEqual([
      [1, expect.stringMatching(/--bogus: unknown option/)],
      [3, expect.stringMatching(/-s: missing argument/)],
    ]);
    // A persistent service may have port 0.
    expect(fake.serviceKeys()).toEqual(['-t 10.96.0.3:80', '-t 10.96.0.4:0']);
  });

  it('gives a real server without a port, or one not masqueraded, the service port', () => {
    const fake = new FakeIpvs();
    fake.restore('-A -t 10.96.0.1:80 -s rr\n-a -t 10.96.0.1:80 -r 10.244.0.1 -m\n-a -t 10.96.0.1:80 -r 10.244.0.2:8080 -g -w 3\n');
    expect(fake.dump()).toBe('-A -t 10.96.0.1:80 -s rr\n-a -t 10.96.0.1:80 -r 10.244.0.1:80 -m -w 1\n-a -t 10.96.0.1:80 -r 10.244.0.2:80 -g -w 3\n');
  });
});

function batchRefused(links: FakeIpLinks, text: string, lineNumber: number, reason: RegExp): void {
  let caught: unknown;
  try {
    links.batch(text);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FakeToolError);
  const e = caught as FakeToolError;
  expect(e.lineNumber).toBe(lineNumber);
  expect(e.line).toBe(text.split('\n')[lineNumber - 1]);
  expect(e.reason).toMatch(reason);
}

describe('FakeIpLinks', () => {
  it('adds and deletes addresses on a link, and dumps links and addresses sorted', () => {
    const links = new FakeIpLinks();
    links.linkAdd('kube-ipvs0');
    links.batch('address add 10.96.0.2/32 dev kube-ipvs0\naddress add 10.96.0.1/32 dev kube-ipvs0\naddr add fd00::1/128 dev kube-ipvs0\n');
    links.batch('# drop one\n\naddress del 10.96.0.2/32 dev kube-ipvs0\n');
    expect(links.addresses('kube-ipvs0')).toEqual(['10.96.0.1', 'fd00::1']);
    expect(links.addresses('kube-ipvs0', 'IPv4')).toEqual(['10.96.0.1']);
    expect(links.addresses('eth9')).toBeUndefined();
    expect(links.dump()).toBe('kube-ipvs0\n  10.96.0.1/32\n  fd00::1/128\n');
  });

  it('refuses an address that is there, one that is not, a missing device, and garbage', () => {
    const links = new FakeIpLinks();
    links.linkAdd('kube-ipvs0');
    links.batch('address add 10.96.0.1/32 dev kube-ipvs0\naddress add fd00::1/128 dev kube-ipvs0\n');
    batchRefused(links, 'address add 10.96.0.1/32 dev kube-ipvs0\n', 1, /File exists/);
    batchRefused(links, 'address del 10.96.0.9/32 dev kube-ipvs0\n', 1, /Cannot assign requested address/);
    batchRefused(links, 'address del 10.96.0.1/24 dev kube-ipvs0\n', 1, /Cannot assign requested address/);
    batchRefused(links, 'address add 10.96.0.1/32 dev eth9\n', 1, /Cannot find device "eth9"/);
    batchRefused(links, 'address add 10.96.0.300/32 dev kube-ipvs0\n', 1, /valid prefix is expected/);
    batchRefused(links, 'address add 10.96.0.1/32\n', 1, /"dev" argument is required/);
    batchRefused(links, 'route add 10.0.0.0/8 dev kube-ipvs0\n', 1, /not modelled/);
    // An IPv6 address is one address whatever its prefix; IPv4 ones differ by prefix.
    batchRefused(links, 'address add fd00::1/64 dev kube-ipvs0\n', 1, /File exists/);
    links.batch('address add 10.96.0.1/24 dev kube-ipvs0\n');
    expect(links.dump()).toBe('kube-ipvs0\n  10.96.0.1/24\n  10.96.0.1/32\n  fd00::1/128\n');
  });

  it('stops at the first failing line, the lines before it applied', () => {
    const links = new FakeIpLinks();
    links.linkAdd('kube-ipvs0');
    batchRefused(links, 'address add 10.96.0.1/32 dev kube-ipvs0\naddress add 10.96.0.1/32 dev kube-ipvs0\naddress add 10.96.0.3/32 dev kube-ipvs0\n', 2, /File exists/);
    expect(links.addresses('kube-ipvs0')).toEqual(['10.96.0.1']);
  });

  it('linkAdd refuses an existing device; linkDel a missing one, and takes its addresses', () => {
    const links = new FakeIpLinks();
    links.linkAdd('kube-ipvs0');
    expect(() => links.linkAdd('kube-ipvs0')).toThrow(/File exists/);
    expect(() => links.linkAdd('a-name-too-long-16')).toThrow(/not a valid device name/);
    links.batch('address add 10.96.0.1/32 dev kube-ipvs0\n');
    links.linkDel('kube-ipvs0');
    expect(links.hasLink('kube-ipvs0')).toBe(false);
    expect(() => links.linkDel('kube-ipvs0')).toThrow(/Cannot find device/);
    links.linkAdd('kube-ipvs0');
    expect(links.addresses('kube-ipvs0')).toEqual([]);
  });
});
