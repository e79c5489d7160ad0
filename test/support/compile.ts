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

/** table → chain → rule lines (without `-A CHAIN `), in payload order; `-I`/`-D`/`-X` lines kept under `!ops`. */
export function chainsOf(payload: string): Map<string, Map<string, string[]>> {
  const tables = new Map<string, Map<string, string[]>>();
  let chains: Map<string, string[]> | undefined;
  for (const line of payload.split('\n')) {
    if (line.startsWith('*')) {
      chains = new Map();
      tables.set(line.slice(1), chains);
    } else if (chains && line.startsWith(':')) {
      chains.set(line.slice(1).split(' ')[0]!, chains.get(line.slice(1).split(' ')[0]!) ?? []);
    } else if (chains && line.startsWith('-A ')) {
      const [, chain, ...rest] = line.split(' ');
      const rules = chains.get(chain!) ?? [];
      rules.push(rest.join(' '));
      chains.set(chain!, rules);
    } else if (chains && (line.startsWith('-I ') || line.startsWith('-D ') || line.startsWith('-X '))) {
      const ops = chains.get('!ops') ?? [];
      ops.push(line);
      chains.set('!ops', ops);
    }
  }
  return tables;
}
