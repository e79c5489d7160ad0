// What the agent logs about its syncs, its stale-flow cleanup and its API watches: one structured line per
// event, mapped here, once.
import type { ReflectorEvent } from '../sources/kube/reflector.js';
import type { ReconcileResult } from '../sync/conntrack.js';
import type { SyncHooks } from '../sync/hooks.js';
import type { Logger } from './logger.js';

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The sync loop's reports as log lines; `services` is how many Services the backend renders. */
export function syncLogs(log: Logger, services: () => number): Partial<SyncHooks> {
  return {
    synced: (r) => {
      const fields = {
        kind: r.outcome.kind,
        reason: r.reason,
        durationMs: Math.round(r.durationMs * 10) / 10,
        servicesChanged: r.servicesChanged,
        bytes: r.outcome.bytes,
        rules: r.outcome.ruleTotals,
        services: services(),
      };
      if (r.full) log.info(fields, 'full sync applied');
      else log.debug(fields, 'partial sync applied');
    },
    failed: (r) => {
      const e = r.failure;
      log.error(
        {
          full: r.full,
          retryInMs: r.retryInMs,
          code: e.code,
          // One iptables-restore COMMIT or nft transaction is all or nothing; IPVS's steps and a batched full
          // sync are not. Either way the full sync that follows reconciles.
          kernelUnchanged: e.code !== 'PARTIALLY_APPLIED',
          command: e.command,
          toolOutput: e.stderr,
          offendingLines: e.offendingLines,
        },
        `sync failed; a full sync follows: ${e.message}`,
      );
    },
    noEndpoints: (service, change) => {
      if (change === 'missing') {
        log.warn({ service }, 'service has a selector but no endpoints: connections to it are rejected (check the selector and pod readiness)');
      } else if (change === 'restored') {
        log.info({ service }, 'service has endpoints again');
      }
    },
    flushedFromOutside: () => log.warn('canary chain missing: rules were flushed from outside; running a full sync'),
    internalError: (e) => log.error({ err: errorText(e) }, 'unexpected error in the sync loop; a full sync follows'),
  };
}

/** One stale-UDP-flow cleanup, logged when it deleted something. */
export function conntrackLogs(log: Logger): (r: ReconcileResult) => void {
  return (r) => {
    if (r.deleted > 0) log.info({ deleted: r.deleted, flows: r.flows }, 'stale UDP conntrack entries deleted');
  };
}

/** The API watches' events as log lines. */
export function reflectorLogs(log: Logger): (e: ReflectorEvent) => void {
  return (e) => {
    const resource = e.resource;
    switch (e.kind) {
      case 'event':
        return;
      case 'listed':
        log.info({ resource, items: e.items, pages: e.pages, resourceVersion: e.resourceVersion }, 'listed');
        return;
      case 'watching':
        log.debug({ resource, resourceVersion: e.resourceVersion }, 'watching');
        return;
      case 'watch-ended':
        if (e.reason === 'idle') log.warn({ resource }, 'watch silent for too long; reconnecting');
        else log.debug({ resource, reason: e.reason }, 'watch ended; resuming');
        return;
      case 'relist':
        log.info({ resource, reason: e.reason }, 'resource version expired; listing again');
        return;
      case 'retry':
        log.warn({ resource, delayMs: e.delayMs, err: e.error }, 'API request failed; retrying');
        return;
    }
  };
}
