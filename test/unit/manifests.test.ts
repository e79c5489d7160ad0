import { describe, expect, it } from 'vitest';
import { parseManifestText } from '../../src/sources/manifests.js';
import { loadObjects } from '../../src/sources/objects.js';

describe('manifest parsing', () => {
  it('reads multi-document YAML and skips empty documents', () => {
    const text = '---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n';
    const r = parseManifestText(text, 'x.yaml');
    expect(r.errors).toEqual([]);
    expect(r.objects.map((o) => o.object['kind'])).toEqual(['Service', 'ConfigMap']);
  });

  it('expands a List as kubectl prints it, and typed lists whose items lack kind', () => {
    const list = { apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'a' } }] };
    expect(parseManifestText(JSON.stringify(list), 'l.json').objects[0]?.location).toBe('document 1, items[0]');
    const typed = { apiVersion: 'v1', kind: 'ServiceList', items: [{ metadata: { name: 'a' } }] };
    expect(parseManifestText(JSON.stringify(typed), 't.json').objects[0]?.object).toMatchObject({ kind: 'Service', apiVersion: 'v1' });
  });

  it('reports YAML syntax errors with the file and line', () => {
    const r = parseManifestText('kind: Service\nmetadata: {name: a\n', 'broken.yaml');
    expect(r.errors[0]?.source).toBe('broken.yaml');
    expect(r.errors[0]?.message).toMatch(/document 1: YAML error at line \d+/);
  });

  it('ignores other kinds, reads the zone of this node, and names file, object and field in errors', () => {
    const text = [
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}',
      'apiVersion: v1\nkind: Node\nmetadata: {name: node-a, labels: {topology.kubernetes.io/zone: z1}}',
      'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 70000}]}',
    ].join('\n---\n');
    const loaded = loadObjects(parseManifestText(text, 'in.yaml').objects, 'node-a');
    expect(loaded.state.node).toEqual({ name: 'node-a', zone: 'z1', ips: [] });
    expect(loaded.errors).toEqual(['in.yaml (document 3): Service shop/web: spec.ports[0].port: 70000 is out of range 1-65535']);
    expect(loaded.state.serviceCount).toBe(0);
  });
});
