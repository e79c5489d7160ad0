import { IptablesCompiler } from '../../src/backends/iptables/compiler.js';
import { type IptablesOptions, defaultIptablesOptions } from '../../src/backends/iptables/options.js';
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
    defaultIptablesOptions({ node: { name: 'test-node', zone: loaded.nodeZone }, ...overrides }),
  );
  compiler.update(loaded.state, loaded.state.takeChanges());
  return compiler;
}
