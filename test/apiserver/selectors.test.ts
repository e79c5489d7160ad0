import { describe, expect, it } from 'vitest';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError } from './selectors.js';
import { Store } from './store.js';
import { service } from '../support/objects.js';

describe('label selectors', () => {
  const labels = { app: 'web', 'service.kubernetes.io/headless': '' };
  it.each([
    ['', true],
    ['app', true],
    ['!app', false],
    ['app=web', true],
    ['app==web', true],
    ['app!=web', false],
    ['app!=db', true],
    ['tier!=x', true], // != matches objects without the label, as upstream
    ['!service.kubernetes.io/headless', false],
    ['!service.kubernetes.io/service-proxy-name,app=web', true],
    ['app=web,tier', false],
  ])('%j matches %j', (sel, expected) => {
    expect(matchesLabels(parseLabelSelector(sel), labels)).toBe(expected);
  });
  it('treats objects without labels as having none', () => {
    expect(matchesLabels(parseLabelSelector('!app'), undefined)).toBe(true);
    expect(matchesLabels(parseLabelSelector('app'), undefined)).toBe(false);
  });
  it('rejects malformed selectors', () => {
    expect(() => parseLabelSelector('a,,b')).toThrow(SelectorError);
    expect(() => parseLabelSelector('a=b c')).toThrow(SelectorError);
  });
});

describe('field selectors', () => {
  it('supports metadata.name and metadata.namespace with =, == and !=', () => {
    expect(matchesFields(parseFieldSelector('metadata.name=web'), 'shop', 'web')).toBe(true);
    expect(matchesFields(parseFieldSelector('metadata.namespace==shop,metadata.name!=web'), 'shop', 'web')).toBe(false);
    expect(matchesFields(parseFieldSelector('metadata.namespace!=kube-system'), 'shop', 'web')).toBe(true);
  });
  it('rejects other fields as upstream does for these kinds', () => {
    expect(() => parseFieldSelector('spec.clusterIP=10.0.0.1')).toThrow(/field label not supported: spec.clusterIP/);
  });
});

describe('store history', () => {
  const web = (port: number) => service({ name: 'web', clusterIP: '10.96.0.1', ports: [{ port }] });
  it('keeps historyLimit events and moves the floor past the ones it forgets', () => {
    const store = new Store(2);
    const start = store.resourceVersion;
    store.apply(web(1));
    store.apply(web(2));
    expect(store.eventsSince(start)?.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED']);
    store.apply(web(3));
    expect(store.eventsSince(start)).toBeUndefined();
    expect(store.floor).toBe(start + 1);
    expect(store.eventsSince(start + 1)?.map((e) => e.rv)).toEqual([start + 2, start + 3]);
    store.remove('svc', 'default', 'web');
    const del = store.eventsSince(store.resourceVersion - 1)?.[0];
    expect(del?.type).toBe('DELETED');
    expect(del?.prev?.atVersion(del.rv).object()).toMatchObject({ metadata: { resourceVersion: String(store.resourceVersion) } });
    store.compact();
    expect(store.eventsSince(store.resourceVersion - 1)).toBeUndefined();
    expect(store.eventsSince(store.resourceVersion)).toEqual([]);
  });
  it('keeps uid and creationTimestamp across updates and refuses kinds it does not serve', () => {
    const store = new Store(10);
    const a = store.apply(web(1));
    const b = store.apply(web(2));
    expect((b['metadata'] as Record<string, unknown>)['uid']).toBe((a['metadata'] as Record<string, unknown>)['uid']);
    expect(Number((b['metadata'] as Record<string, unknown>)['resourceVersion'])).toBe(store.resourceVersion);
    expect(() => store.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'p' } })).toThrow(/v1 ConfigMap: not a served kind/);
  });
});
