import { describe, expect, it } from 'vitest';
import { ChainTable, type PolicyChainStyle, hostPortKey, hostPortText } from '../../src/backends/iptables/chain-table.js';

describe('ChainTable', () => {
  it('packs IPv4 ip:port into a number and gives back the same text; other addresses stay text', () => {
    for (const [ip, port] of [['10.244.1.2', 8080], ['0.0.0.0', 1], ['255.255.255.255', 65535], ['10.1.0.10', 53]] as const) {
      const key = hostPortKey(ip, port);
      expect(typeof key).toBe('number');
      expect(hostPortText(key)).toBe(`${ip}:${port}`);
    }
    expect(hostPortKey('fd00::1', 80)).toBe('[fd00::1]:80');
    expect(hostPortKey('::ffff:10.1.2.3', 80)).toBe('[::ffff:10.1.2.3]:80');
  });

  it('renders a policy chain from its facts as kube-proxy writes it, and counts its rules without rendering', () => {
    const style: PolicyChainStyle = { spn: 'ns/web:http', ipComment: '-m comment --comment "ns/web:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80', affinitySeconds: 60, largeCluster: false, dnatProto: undefined };
    const table = new ChainTable();
    table.setPolicy('KUBE-SVC-X', { style, masquerade: ' ! -s 10.244.0.0/16', endpoints: [hostPortKey('10.244.1.2', 8080), hostPortKey('10.244.1.3', 8080)], chains: ['KUBE-SEP-A', 'KUBE-SEP-B'] });
    expect(table.get('KUBE-SVC-X')).toBe(
      '-A KUBE-SVC-X -m comment --comment "ns/web:http cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ\n' +
        '-A KUBE-SVC-X -m comment --comment "ns/web:http -> 10.244.1.2:8080" -m recent --name KUBE-SEP-A --rcheck --seconds 60 --reap -j KUBE-SEP-A\n' +
        '-A KUBE-SVC-X -m comment --comment "ns/web:http -> 10.244.1.3:8080" -m recent --name KUBE-SEP-B --rcheck --seconds 60 --reap -j KUBE-SEP-B\n' +
        '-A KUBE-SVC-X -m comment --comment "ns/web:http -> 10.244.1.2:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-A\n' +
        '-A KUBE-SVC-X -m comment --comment "ns/web:http -> 10.244.1.3:8080" -j KUBE-SEP-B\n',
    );
    expect(table.ruleCount(() => Number.NaN)).toBe(5);
    table.setPolicy('KUBE-SVL-X', { style: { ...style, affinitySeconds: undefined, largeCluster: true, dnatProto: 'tcp' }, masquerade: undefined, endpoints: [hostPortKey('10.244.1.2', 8080)], chains: [] });
    expect(table.get('KUBE-SVL-X')).toBe('-A KUBE-SVL-X -p tcp -j DNAT --to-destination 10.244.1.2:8080\n');
    expect(table.ruleCount(() => Number.NaN)).toBe(6);
  });
});
