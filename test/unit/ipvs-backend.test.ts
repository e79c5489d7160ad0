import { describe, expect, it } from 'vitest';
import { IpvsBackend } from '../../src/backends/ipvs/backend.js';
import { defaultIpvsOptions } from '../../src/backends/ipvs/options.js';
import { ClusterState } from '../../src/model/state.js';
import { PrintApplier, syncBackend } from '../../src/sync/applier.js';
import { load } from '../support/compile.js';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';

const NODE = 'test-node';
const ep = (ip: string, nodeName = NODE) => ({ ip, nodeName });

function web(ips: string[], extra: Partial<Parameters<typeof service>[0]> = {}): K8sObject[] {
  return [
    service({ name: 'web', clusterIP: '10.96.0.10', ports: [{ port: 80, targetPort: 8080 }], ...extra }),
    endpointSlice({ name: 'web-1', service: 'web', ports: [{ port: 8080 }], endpoints: ips.map((ip) => ep(ip)) }),
  ];
}

/** A dry-run backend fed the way the sync loop feeds it; returns what each sync printed. */
function dryRun() {
  const backend = new IpvsBackend(defaultIpvsOptions({ clusterCidr: '10.244.0.0/16' }));
  let state = new ClusterState();
  return {
    async sync(objects: readonly K8sObject[], full = false): Promise<string> {
      const loaded = load(objects, NODE);
      const changed = new Set([...loaded.state.takeChanges(), ...[...state.allServices()].map((s) => s.key)]);
      state = loaded.state;
      backend.update(state, changed);
      let text = '';
      await syncBackend(backend, full, { applier: new PrintApplier((t) => (text += t), 'pipeable'), readKernel: false });
      return text;
    },
  };
}

/** The lines of the labelled sections (`#### <command>`) of a printed sync with this header, in order. */
function section(text: string, header: string): string[] {
  return text
    .split(/^#### /m)
    .filter((p) => p.startsWith(`${header}\n`))
    .flatMap((p) => p.slice(header.length + 1).split('\n'))
    .filter((l) => l !== '');
}

describe('IpvsBackend (dry run): partial syncs print only what changed', () => {
  it('a full sync prints every section; an endpoint change only its ipvsadm and set lines; no change prints nothing', async () => {
    const b = dryRun();
    const full = await b.sync(web(['10.244.1.2', '10.244.1.3']), true);
    expect(full.split('\n').filter((l) => l.startsWith('#### '))).toEqual([
      '#### ip link add kube-ipvs0 type dummy',
      '#### ipset restore -exist',
      '#### iptables-restore --noflush',
      '#### ip -batch -',
      '#### ipvsadm -R',
    ]);
    expect(section(full, 'ipvsadm -R')).toEqual([
      '-A -t 10.96.0.10:80 -s rr',
      '-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1',
      '-a -t 10.96.0.10:80 -r 10.244.1.3:8080 -m -w 1',
    ]);

    const scaled = await b.sync(web(['10.244.1.3', '10.244.1.4']));
    expect(scaled).not.toContain('iptables-restore');
    expect(section(scaled, 'ipvsadm -R')).toEqual([
      '-a -t 10.96.0.10:80 -r 10.244.1.4:8080 -m -w 1',
      // A dry run reads no connection counters: an endpoint that went away is simply deleted.
      '-d -t 10.96.0.10:80 -r 10.244.1.2:8080',
    ]);
    expect(section(scaled, 'ip -batch -')).toEqual([]);
    expect(section(scaled, 'ipset restore -exist')).toEqual([
      'add KUBE-LOOP-BACK 10.244.1.4,tcp:8080,10.244.1.4',
      'del KUBE-LOOP-BACK 10.244.1.2,tcp:8080,10.244.1.2',
    ]);

    expect(await b.sync(web(['10.244.1.3', '10.244.1.4']))).toBe('');
  });

  it('losing every endpoint removes the virtual server and adds the REJECT rule; affinity edits in place', async () => {
    const b = dryRun();
    await b.sync(web(['10.244.1.2']), true);
    const empty = await b.sync(web([]));
    expect(section(empty, 'ipvsadm -R')).toEqual(['-D -t 10.96.0.10:80']);
    expect(section(empty, 'iptables-restore --noflush').join('\n')).toContain(
      '-A KUBE-SERVICES -m comment --comment "default/web has no endpoints" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j REJECT',
    );
    // The ClusterIP stays bound: the REJECT (and the IPVS filter) need it local.
    expect(empty).not.toContain('address del');

    await b.sync(web(['10.244.1.2']));
    const sticky = await b.sync(web(['10.244.1.2'], { affinityTimeoutSeconds: 60 }));
    expect(section(sticky, 'ipvsadm -R')).toEqual(['-E -t 10.96.0.10:80 -s rr -p 60']);
  });
});
