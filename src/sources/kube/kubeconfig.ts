import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

/** The API server configuration cannot be found or read: the operator's to fix (the CLI exits 2). */
export class KubeconfigError extends Error {
  override readonly name = 'KubeconfigError';
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubeConfigSource {
  readonly kc: KubeConfig;
  /** Where it came from, for the startup log. */
  readonly origin: string;
}

/**
 * --kubeconfig, then $KUBECONFIG, then ~/.kube/config, then the in-cluster service account. Unlike
 * client-node's loadFromDefault, it never falls back to an unauthenticated http://localhost:8080.
 */
export function loadKubeConfig(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): KubeConfigSource {
  const kc = new KubeConfig();
  const load = (origin: string, fn: () => void): KubeConfigSource => {
    try {
      fn();
    } catch (e) {
      throw new KubeconfigError(`${origin}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (kc.getCurrentCluster() === null) throw new KubeconfigError(`${origin}: no current cluster (set current-context)`);
    return { kc, origin };
  };
  if (flag !== undefined && flag !== '') {
    if (!existsSync(flag)) throw new KubeconfigError(`--kubeconfig: ${flag} does not exist`);
    return load(`--kubeconfig ${flag}`, () => kc.loadFromFile(flag));
  }
  const fromEnv = env['KUBECONFIG'];
  if (fromEnv !== undefined && fromEnv !== '') return load(`$KUBECONFIG (${fromEnv})`, () => kc.loadFromDefault());
  const home = join(env['HOME'] ?? homedir(), '.kube', 'config');
  if (existsSync(home)) return load(home, () => kc.loadFromFile(home));
  if (env['KUBERNETES_SERVICE_HOST'] !== undefined && existsSync(SERVICE_ACCOUNT_TOKEN)) {
    return load('in-cluster service account', () => kc.loadFromCluster());
  }
  throw new KubeconfigError(
    'no API server configuration: pass --kubeconfig, set $KUBECONFIG, create ~/.kube/config, or run in a pod with a service account',
  );
}
