import { describe, expect, it } from 'vitest';
import { buildProxyConfig, parseNodePortAddresses } from '../../src/cli/config.js';
import { UsageError } from '../../src/cli/errors.js';
import { healthCheckAddresses } from '../../src/cli/nodeport-addresses.js';

describe('--nodeport-addresses', () => {
  it('is the backend default when unset or empty', () => {
    expect(parseNodePortAddresses(undefined, 'IPv4')).toEqual({ kind: 'default' });
    expect(parseNodePortAddresses(' ', 'IPv4')).toEqual({ kind: 'default' });
  });

  it('takes primary alone', () => {
    expect(parseNodePortAddresses('primary', 'IPv4')).toEqual({ kind: 'primary' });
    expect(() => parseNodePortAddresses('primary,10.0.0.0/8', 'IPv4')).toThrow(/primary must be the only value/);
  });

  it("keeps this family's CIDRs; none of it, or a /0, means every address (upstream's MatchAll)", () => {
    const v4 = parseNodePortAddresses('192.168.0.0/24, 2001:db8::/64,10.0.0.0/8', 'IPv4');
    expect(v4.kind === 'cidrs' && v4.cidrs.map((c) => c.text)).toEqual(['192.168.0.0/24', '10.0.0.0/8']);
    expect(parseNodePortAddresses('2001:db8::/64', 'IPv4')).toEqual({ kind: 'all' });
    expect(parseNodePortAddresses('0.0.0.0/0', 'IPv4')).toEqual({ kind: 'all' });
  });

  it('rejects what is not a CIDR, naming the flag', () => {
    expect(() => parseNodePortAddresses('10.0.0.1', 'IPv4')).toThrow(UsageError);
    expect(() => parseNodePortAddresses('10.0.0.1/8', 'IPv4')).toThrow(/--nodeport-addresses/);
  });
});

describe('--iptables-localhost-nodeports', () => {
  it('defaults to true, takes true or false, and rejects anything else', () => {
    expect(buildProxyConfig({ backend: 'iptables', nodeName: 'n' }).localhostNodePorts).toBe(true);
    expect(buildProxyConfig({ backend: 'iptables', nodeName: 'n', iptablesLocalhostNodeports: 'false' }).localhostNodePorts).toBe(false);
    expect(() => buildProxyConfig({ backend: 'iptables', nodeName: 'n', iptablesLocalhostNodeports: 'no' })).toThrow(/true or false/);
  });
});

describe('health-check node port addresses (upstream: the NodePort addresses)', () => {
  it('nftables: the primary node IP by default, every address until it is known', () => {
    const nft = (extra: { nodeIp?: string; nodeportAddresses?: string } = {}) => healthCheckAddresses(buildProxyConfig({ backend: 'nftables', nodeName: 'n', ...extra }), ['IPv4']);
    expect(nft({ nodeIp: '10.0.0.10' })).toEqual(['10.0.0.10']);
    expect(nft({ nodeIp: '10.0.0.10', nodeportAddresses: 'primary' })).toEqual(['10.0.0.10']);
    expect(nft()).toEqual([]);
  });

  it('iptables and IPVS: every address by default, the node IP for primary', () => {
    for (const backend of ['iptables', 'ipvs']) {
      expect(healthCheckAddresses(buildProxyConfig({ backend, nodeName: 'n', nodeIp: '10.0.0.10' }), ['IPv4'])).toEqual([]);
      expect(healthCheckAddresses(buildProxyConfig({ backend, nodeName: 'n', nodeIp: '10.0.0.10', nodeportAddresses: 'primary' }), ['IPv4'])).toEqual(['10.0.0.10']);
    }
  });
});
