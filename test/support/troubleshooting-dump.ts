// The cluster behind docs/troubleshooting.md and rules/examples/troubleshooting.yaml: namespace `shop` with one
// Service per classic failure, as `kubectl get svc,endpointslices,pods,nodes -A -o yaml` prints it.
// test/unit/explain-docs.test.ts checks that the committed file is this dump and that the page's outputs are real.
import { type K8sObject, kNode, kPod, kService, kSlice, kubectlYaml } from './kubectl-dump.js';

const NS = 'shop';

export function troubleshootingObjects(): K8sObject[] {
  const http = [{ name: 'http', containerPort: 8080 }];
  return [
    kNode('node-a', '172.18.0.3', 'zone-a'),
    kNode('node-b', '172.18.0.4', 'zone-b'),

    // Healthy: two ready Pods, one per node.
    kService({ namespace: NS, name: 'checkout', clusterIP: '10.96.12.40', ports: [{ name: 'http', port: 80, targetPort: 'http' }] }),
    kSlice({
      namespace: NS,
      service: 'checkout',
      name: 'checkout-8xk2d',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [
        { ip: '10.244.1.12', node: 'node-a', pod: 'checkout-5c8d7b9f6-2xkqp' },
        { ip: '10.244.2.17', node: 'node-b', pod: 'checkout-5c8d7b9f6-w9m4t' },
      ],
    }),
    kPod({ namespace: NS, name: 'checkout-5c8d7b9f6-2xkqp', labels: { app: 'checkout' }, node: 'node-a', ip: '10.244.1.12', containers: [{ name: 'checkout', ports: http, readiness: { path: '/ready', port: 'http' } }] }),
    kPod({ namespace: NS, name: 'checkout-5c8d7b9f6-w9m4t', labels: { app: 'checkout' }, node: 'node-b', ip: '10.244.2.17', containers: [{ name: 'checkout', ports: http, readiness: { path: '/ready', port: 'http' } }] }),

    // Selector mismatch: the Service wants app=api-svc, the Deployment labels its Pods app=api-service.
    kService({ namespace: NS, name: 'api', clusterIP: '10.96.12.41', selector: { app: 'api-svc' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    kSlice({ namespace: NS, service: 'api', name: 'api-tq7vn', ports: null, endpoints: null }),
    kPod({ namespace: NS, name: 'api-service-6d4f9c7b8-m3n8q', labels: { app: 'api-service' }, node: 'node-a', ip: '10.244.1.21', containers: [{ name: 'api', ports: http }] }),
    kPod({ namespace: NS, name: 'api-service-6d4f9c7b8-x7k2p', labels: { app: 'api-service' }, node: 'node-b', ip: '10.244.2.21', containers: [{ name: 'api', ports: http }] }),

    // Unready Pods: the readiness probe fails on both.
    kService({ namespace: NS, name: 'orders', clusterIP: '10.96.12.42', ports: [{ name: 'grpc', port: 9000, targetPort: 'grpc' }] }),
    kSlice({
      namespace: NS,
      service: 'orders',
      name: 'orders-j2c5w',
      ports: [{ name: 'grpc', port: 9000 }],
      endpoints: [
        { ip: '10.244.1.31', node: 'node-a', pod: 'orders-0', ready: false },
        { ip: '10.244.2.31', node: 'node-b', pod: 'orders-1', ready: false },
      ],
    }),
    ...['orders-0', 'orders-1'].map((name, i) =>
      kPod({
        namespace: NS,
        name,
        labels: { app: 'orders' },
        node: i === 0 ? 'node-a' : 'node-b',
        ip: `10.244.${i + 1}.31`,
        ready: false,
        containers: [{ name: 'orders', ports: [{ name: 'grpc', containerPort: 9000 }], readiness: { path: '/healthz', port: 8081 } }],
      }),
    ),

    // Named targetPort: the Service says `http`, the Pods name their port `web-http`; the controller writes ports: null.
    kService({ namespace: NS, name: 'web', clusterIP: '10.96.12.43', ports: [{ name: 'http', port: 80, targetPort: 'http' }] }),
    kSlice({
      namespace: NS,
      service: 'web',
      name: 'web-abc12',
      ports: null,
      endpoints: [
        { ip: '10.244.1.43', node: 'node-a', pod: 'web-7d9c5b8f4-abcde' },
        { ip: '10.244.2.43', node: 'node-b', pod: 'web-7d9c5b8f4-fghij' },
      ],
    }),
    ...['web-7d9c5b8f4-abcde', 'web-7d9c5b8f4-fghij'].map((name, i) =>
      kPod({ namespace: NS, name, labels: { app: 'web' }, node: i === 0 ? 'node-a' : 'node-b', ip: `10.244.${i + 1}.43`, containers: [{ name: 'web', ports: [{ name: 'web-http', containerPort: 8080 }] }] }),
    ),

    // Wrong numeric targetPort: nginx listens on 80, the Service sends to 8080.
    kService({ namespace: NS, name: 'frontend', clusterIP: '10.96.12.44', ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    kSlice({ namespace: NS, service: 'frontend', name: 'frontend-5lmq2', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.1.52', node: 'node-a', pod: 'frontend-84b6f5d9c7-hq4zn' }] }),
    kPod({ namespace: NS, name: 'frontend-84b6f5d9c7-hq4zn', labels: { app: 'frontend' }, node: 'node-a', ip: '10.244.1.52', containers: [{ name: 'nginx', ports: [{ name: 'http', containerPort: 80 }] }] }),

    // Headless by accident: clusterIP: None, so no virtual IP.
    kService({ namespace: NS, name: 'cart', clusterIP: 'None', ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    kSlice({
      namespace: NS,
      service: 'cart',
      name: 'cart-r8f3k',
      labels: { 'service.kubernetes.io/headless': '' },
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ ip: '10.244.2.61', node: 'node-b', pod: 'cart-6f7c9d8b5-z2r7s' }],
    }),
    kPod({ namespace: NS, name: 'cart-6f7c9d8b5-z2r7s', labels: { app: 'cart' }, node: 'node-b', ip: '10.244.2.61', containers: [{ name: 'cart', ports: http }] }),

    // internalTrafficPolicy: Local with the only endpoint on node-b.
    kService({ namespace: NS, name: 'cache', clusterIP: '10.96.12.46', internalTrafficPolicy: 'Local', ports: [{ name: 'redis', port: 6379 }] }),
    kSlice({ namespace: NS, service: 'cache', name: 'cache-p4d9x', ports: [{ name: 'redis', port: 6379 }], endpoints: [{ ip: '10.244.2.70', node: 'node-b', pod: 'cache-0' }] }),
    kPod({ namespace: NS, name: 'cache-0', labels: { app: 'cache' }, node: 'node-b', ip: '10.244.2.70', containers: [{ name: 'redis', ports: [{ name: 'redis', containerPort: 6379 }] }] }),
  ];
}

export function troubleshootingYaml(): string {
  return (
    '# A cluster with one Service per classic failure (docs/troubleshooting.md), as\n' +
    '# `kubectl get svc,endpointslices,pods,nodes -A -o yaml` prints it. Generated by test/support/troubleshooting-dump.ts.\n' +
    kubectlYaml(troubleshootingObjects())
  );
}
