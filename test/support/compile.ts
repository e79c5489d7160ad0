import { IptablesCompiler } from '../../src/backends/iptables/compiler.js';
import { type IptablesOptions, defaultIptablesOptions } from '../../src/backends/iptables/options.js';
import { normalizeEndpointSlice } from '../../src/model/endpoint-slice.js';
import { normalizeService } from '../../src/model/service.js';
import type { ClusterState } from '../../src/model/state.js';
import { parseManifestText } from '../../src/sources/manifests.js';
import { type LoadedState, loadObjects } from '../../src/sources/objects.js';
import { type K8sObject, list } from './objects.js';

/** Loads builder objects through the same path the CLI uses (text → manifests → state). */
export function load(objects: readonly K8sObject[], nodeName = 'test-node'): LoadedState {
  const parsed = parseManifestText(list(objects), 'test.json');
  if (parsed.errors.length > 0) throw new Error(parsed.errors.map((e) => e.message).join('\n'));
  return loadObjects(parsed.objects, nodeName);
}

export function compilerFor(loaded: LoadedState, overrides: Partial<IptablesOptions> = {}): IptablesCompiler {
  const compiler = new IptablesCompiler(
    defaultIptablesOptions({ ...overrides }),
  );
  compiler.update(loaded.state, loaded.state.takeChanges());
  return compiler;
}

/** Puts one builder Service or EndpointSlice into `state`, as a watch event would; throws if it is invalid. */
export function setObject(state: ClusterState, obj: K8sObject): void {
  if (obj['kind'] === 'Service') {
    const r = normalizeService(obj);
    if (r.status !== 'ok') throw new Error(JSON.stringify(r));
    state.setService(r.value);
  } else {
    const r = normalizeEndpointSlice(obj);
    if (r.status !== 'ok') throw new Error(JSON.stringify(r));
    state.setSlice(r.value);
  }
}
