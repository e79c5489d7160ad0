import type { ServerResponse } from 'node:http';
import type { Entry, StoreEvent } from './store.js';
import { toTable, type IncludeObject } from './table.js';
import type { ResourceDef } from './resources.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

// The object a DELETED event carries (old content at the event's RV) is the same for every watch: build it once.
const deletedForm = new WeakMap<StoreEvent, Entry>();

function deletedEntry(ev: StoreEvent, prev: Entry): Entry {
  let e = deletedForm.get(ev);
  if (e === undefined) {
    e = prev.atVersion(ev.rv);
    deletedForm.set(ev, e);
  }
  return e;
}

export interface WatchStreamOptions {
  readonly def: ResourceDef;
  readonly res: ServerResponse;
  /** Namespace, label and field selectors of the request. */
  readonly filter: (e: Entry) => boolean;
  readonly bookmarks: boolean;
  /** Set when the client asked for Table output (kubectl). */
  readonly table: IncludeObject | undefined;
  readonly silent: boolean;
}

/**
 * One open WATCH response: newline-delimited JSON events, written in batches (one write per tick) so a
 * bulk apply of 10,000 objects is not 10,000 socket writes.
 */
export class WatchStream {
  /** A silent stream writes nothing more, ever: it models a half-open connection or a stuck proxy. */
  silent: boolean;
  private buf: string[] = [];
  private scheduled = false;
  private closed = false;
  private tableHeadersSent = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly o: WatchStreamOptions) {
    this.silent = o.silent;
    o.res.on('close', () => this.cleanup());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.cleanups.push(fn);
  }

  /** Sends what a store event means to this watch: selectors turn a MODIFIED into ADDED or DELETED, as upstream's cacher does. */
  offer(ev: StoreEvent): void {
    if (ev.def !== this.o.def) return;
    const curPasses = ev.cur !== undefined && this.o.filter(ev.cur);
    const prevPasses = ev.prev !== undefined && this.o.filter(ev.prev);
    if (curPasses && ev.cur) this.sendEntry(prevPasses ? 'MODIFIED' : 'ADDED', ev.cur);
    else if (prevPasses && ev.prev) this.sendEntry('DELETED', deletedEntry(ev, ev.prev));
  }

  /** A synthetic ADDED for an object that already exists (watch from RV "" or "0"). */
  initial(e: Entry): void {
    if (this.o.filter(e)) this.sendEntry('ADDED', e);
  }

  bookmark(rv: number, annotations?: Readonly<Record<string, string>>): void {
    if (!this.o.bookmarks) return;
    const metadata = { resourceVersion: String(rv), ...(annotations ? { annotations } : {}) };
    this.write(JSON.stringify({ type: 'BOOKMARK', object: { kind: this.o.def.kind, apiVersion: this.o.def.apiVersion, metadata } }));
  }

  /** An ERROR event carrying a Status, then a clean end (what the real server does for 410). */
  error(statusObject: object): void {
    this.write(JSON.stringify({ type: 'ERROR', object: statusObject }));
    this.end();
  }

  /** Flushes and ends the response cleanly (server-side timeout). */
  end(): void {
    if (this.closed) return;
    this.flush();
    this.o.res.end();
    this.cleanup();
  }

  /** Drops what was queued and writes nothing more. */
  silence(): void {
    this.silent = true;
    this.buf = [];
  }

  private sendEntry(type: EventType, e: Entry): void {
    if (this.silent || this.closed) return;
    if (this.o.table !== undefined) {
      const table = toTable(this.o.def, [JSON.parse(e.body) as Record<string, unknown>], {
        include: this.o.table,
        headers: !this.tableHeadersSent,
      });
      this.tableHeadersSent = true;
      this.write(JSON.stringify({ type, object: table }));
    } else {
      this.write(`{"type":"${type}","object":${e.fullJson()}}`);
    }
  }

  private write(line: string): void {
    if (this.silent || this.closed) return;
    this.buf.push(line, '\n');
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (this.buf.length === 0 || this.closed || this.silent) return;
    const chunk = this.buf.join('');
    this.buf = [];
    this.o.res.write(chunk);
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.buf = [];
    for (const fn of this.cleanups.splice(0)) fn();
  }
}
