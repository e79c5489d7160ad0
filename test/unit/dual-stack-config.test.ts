// Dual-stack flags: one --node-ip per family (the first names the primary family), --nodeport-addresses split by
// family, the Node's addresses filling in families --node-ip leaves out, and the families compile programs.
import { describe, expect, it } from 'vitest';
import { buildProxyConfig, familyConfig, nodeIPList } from '../../src/cli/config.js';
import { compileFamilies } from '../../src/cli/compile.js';
import { mergeNodeIPs } from '../../src/model/ip.js';
import { load } from '../support/compile.js';
import { service } from '../support/objects.js';

const config = (extra: { nodeIp?: string; clusterCidr?: string; nodeportAddresses?: string } = {}) =>
  buildProxyConfig({ backend: 'iptables', nodeName: 'n', ...extra });

describe('--node-ip IP[,IP]', () => {
  it('takes one address per family, the first naming the primary family', () => {
    const c = config({ nodeIp: 'fd00:10::10, 10.0.0.10' });
    expect(c.nodeIPs).toEqual({ IPv6: 'fd00:10::10', IPv4: '10.0.0.10' });
    expect(c.primaryFamily).toBe('IPv6');
    expect(nodeIPList(c)).toEqual(['fd00:10::10', '10.0.0.10']);
    expect(config({ nodeIp: '10.0.0.10' }).primaryFamily).toBe('IPv4');
    expect(config().primaryFamily).toBe('IPv4');
  });

  it('rejects two of one family and what is not an address, naming the flag', () => {
    expect(() => config({ nodeIp: '10.0.0.10,10.0.0.11' })).toThrow(/--node-ip: at most one IPv4 address/);
    expect(() => config({ nodeIp: '10.0.0.10,nope' })).toThrow(/--node-ip: "nope" is not an IP address/);
  });

  it('splits --nodeport-addresses and --cluster-cidr by family', () => {
    const c = config({ nodeIp: '10.0.0.10,fd00:10::10', clusterCidr: '10.244.0.0/16,fd00:10:244::/56', nodeportAddresses: '10.0.0.0/8,fd00:10::/64' });
    const v4 = familyConfig(c, 'IPv4');
    const v6 = familyConfig(c, 'IPv6');
    expect([v4.nodeIP, v4.clusterCidr, v4.nodePortAddresses.kind === 'cidrs' && v4.nodePortAddresses.cidrs.map((x) => x.text)]).toEqual(['10.0.0.10', '10.244.0.0/16', ['10.0.0.0/8']]);
    expect([v6.nodeIP, v6.clusterCidr, v6.nodePortAddresses.kind === 'cidrs' && v6.nodePortAddresses.cidrs.map((x) => x.text)]).toEqual(['fd00:10::10', 'fd00:10:244::/56', ['fd00:10::/64']]);
  });
});

describe('node IPs', () => {
  it('--node-ip wins for its family; the Node gives the others', () => {
    expect(mergeNodeIPs(['10.0.0.10'], ['192.168.1.5', 'fd00:10::5', '203.0.113.1'])).toEqual(['10.0.0.10', 'fd00:10::5']);
    expect(mergeNodeIPs([], ['192.168.1.5', 'fd00:10::5'])).toEqual(['192.168.1.5', 'fd00:10::5']);
    expect(mergeNodeIPs(['10.0.0.10', 'fd00::1'], ['192.168.1.5', 'fd00:10::5'])).toEqual(['10.0.0.10', 'fd00::1']);
  });
});

describe('the families compile programs', () => {
  const v4 = service({ name: 'a', clusterIP: '10.96.0.1', ports: [{ port: 80 }] });
  const v6 = service({ name: 'b', clusterIP: 'fd00:10:96::1', ports: [{ port: 80 }] });
  it('IPv4 for IPv4-only input; each family a Service, --node-ip or --cluster-cidr names', () => {
    expect(compileFamilies(config(), load([v4]))).toEqual(['IPv4']);
    expect(compileFamilies(config(), load([]))).toEqual(['IPv4']);
    expect(compileFamilies(config(), load([v6]))).toEqual(['IPv6']);
    expect(compileFamilies(config(), load([v4, v6]))).toEqual(['IPv4', 'IPv6']);
    expect(compileFamilies(config({ nodeIp: 'fd00:10::10' }), load([v4]))).toEqual(['IPv4', 'IPv6']);
    expect(compileFamilies(config({ clusterCidr: 'fd00:10:244::/56' }), load([]))).toEqual(['IPv6']);
  });
});
