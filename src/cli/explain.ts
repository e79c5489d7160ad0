import { readManifests } from '../sources/read-manifests.js';
import { ExplainInputError, type ExplainInput, explainService } from '../diagnose/explain/analyze.js';
import { manifestInput } from '../diagnose/explain/manifest-input.js';
import { explanationJson, explanationText } from '../diagnose/explain/render.js';
import type { Io } from './compile.js';
import { type ProxyConfig, nodeIPList } from './config.js';
import { UsageError } from './errors.js';

export interface ExplainRequest {
  /** `NS/NAME`, or `NAME` for the default namespace. */
  readonly ref: string;
  readonly config: ProxyConfig;
  readonly files: readonly string[];
  readonly kubeconfig: string | undefined;
  readonly output: 'text' | 'json';
}

/** DNS-1123 labels, as namespaces and Service names are. */
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function parseServiceRef(ref: string): { namespace: string; name: string } {
  const parts = ref.split('/');
  const [namespace, name] = parts.length === 1 ? ['default', parts[0] ?? ''] : parts;
  if (parts.length > 2 || namespace === undefined || name === undefined || !NAME.test(namespace) || !NAME.test(name)) {
    throw new UsageError(`service: "${ref}" is not NAMESPACE/NAME`);
  }
  return { namespace, name };
}

/**
 * `switchboard explain service NS/NAME`: what this node does with new connections to each port of the Service,
 * and why. Returns the exit code: 0 every port served, 3 not (or not proxied, or not found), 2 unreadable input.
 */
export async function runExplain(req: ExplainRequest, io: Io): Promise<number> {
  const { namespace, name } = parseServiceRef(req.ref);
  const nodeName = req.config.nodeName;
  let input: ExplainInput;
  // With -f the manifests are the input, as the contract says; --kubeconfig is then not read.
  if (req.files.length > 0) {
    const parsed = await readManifests(req.files, io.stdin);
    if (parsed.errors.length > 0) {
      for (const e of parsed.errors) io.stderr(`error: ${e.source}: ${e.message}\n`);
      return 2;
    }
    const source = `the input (${req.files.map((f) => (f === '-' ? '<stdin>' : f)).join(', ')})`;
    input = manifestInput(parsed.objects, namespace, name, nodeName, source);
  } else {
    // Loaded only here: client-node costs some 150 ms at start, which -f never needs.
    const { ApiError, KubeApiClient } = await import('../sources/kube/api-client.js');
    const { KubeconfigError, loadKubeConfig } = await import('../sources/kube/kubeconfig.js');
    const { apiInput } = await import('../diagnose/explain/api-input.js');
    let client: InstanceType<typeof KubeApiClient>;
    try {
      client = new KubeApiClient(loadKubeConfig(req.kubeconfig).kc);
    } catch (e) {
      if (e instanceof KubeconfigError) throw new UsageError(e.message);
      throw e;
    }
    try {
      input = await apiInput(client, namespace, name, nodeName);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      io.stderr(`error: cannot read ${namespace}/${name} from ${client.server}: ${e.message}\n`);
      return 2;
    }
  }
  let text: string;
  let served: boolean;
  try {
    const explanation = explainService({ namespace, name, nodeName, nodeIPs: nodeIPList(req.config) }, input);
    text = req.output === 'json' ? explanationJson(explanation) : explanationText(explanation);
    served = explanation.served;
  } catch (e) {
    if (!(e instanceof ExplainInputError)) throw e;
    for (const p of e.problems) io.stderr(`error: ${p}\n`);
    return 2;
  }
  io.stdout(text);
  return served ? 0 : 3;
}
