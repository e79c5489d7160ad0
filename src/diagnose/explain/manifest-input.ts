// explain's input from manifests (`kubectl get svc,endpointslices,pods,nodes -A -o yaml`), already parsed.
import { SERVICE_NAME_LABEL } from '../../model/endpoint-slice.js';
import { type JsonObject, isObject, labelsOf } from '../../model/fields.js';
import type { ManifestObject } from '../../sources/manifests.js';
import type { ExplainInput } from './analyze.js';
import { objectRef } from './objects.js';

/**
 * Picks what explaining `namespace/name` needs out of every object read: the Service, its slices, the Pods
 * (of its namespace, and elsewhere for hints), this node's Node, and the names for "not found" suggestions.
 * Objects of other kinds are ignored. Pods count as read when the input holds at least one Pod anywhere: a
 * dump without any was taken without `pods`, and its absence says nothing about the selector.
 */
export function manifestInput(objects: readonly ManifestObject[], namespace: string, name: string, nodeName: string, source: string): ExplainInput {
  let service: JsonObject | undefined;
  const slices: JsonObject[] = [];
  const pods: JsonObject[] = [];
  const podsElsewhere: JsonObject[] = [];
  let anyPod = false;
  let node: JsonObject | undefined;
  const servicesInNamespace: string[] = [];
  const namespacesWithName: string[] = [];
  for (const { object } of objects) {
    const kind = object['kind'];
    const apiVersion = object['apiVersion'];
    const ref = objectRef(object);
    if (kind === 'Service' && apiVersion === 'v1') {
      if (ref.namespace === namespace) {
        servicesInNamespace.push(ref.name);
        if (ref.name === name) service = object;
      } else if (ref.name === name) namespacesWithName.push(ref.namespace);
    } else if (kind === 'EndpointSlice' && apiVersion === 'discovery.k8s.io/v1') {
      const metadata = object['metadata'];
      if (ref.namespace === namespace && isObject(metadata) && labelsOf(metadata).get(SERVICE_NAME_LABEL) === name) slices.push(object);
    } else if (kind === 'Pod' && apiVersion === 'v1') {
      anyPod = true;
      (ref.namespace === namespace ? pods : podsElsewhere).push(object);
    } else if (kind === 'Node' && apiVersion === 'v1' && ref.name === nodeName) {
      node = object;
    }
  }
  return {
    source,
    service,
    slices,
    pods: anyPod ? pods : undefined,
    podsUnavailable: anyPod ? undefined : 'the input holds no Pod objects',
    podsElsewhere,
    node,
    servicesInNamespace: [...new Set(servicesInNamespace)].sort(),
    namespacesWithName: [...new Set(namespacesWithName)].sort(),
  };
}
