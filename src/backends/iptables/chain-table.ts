import { joinHostPort } from '../../model/ip.js';
import { KUBE_MARK_MASQ } from './skeleton.js';

/** What every endpoint chain of one service port shares. */
export interface EndpointChainStyle {
  /** ` -m comment --comment ns/svc:port`, or '' in large-cluster mode. */
  readonly comment: string;
  readonly affinity: boolean;
  /** tcp, udp or sctp. */
  readonly proto: string;
}

/** An endpoint chain kept as its facts, not its text. */
interface EndpointChainSpec {
  readonly style: EndpointChainStyle;
  readonly ip: string;
  readonly port: number;
}

/** Exactly the two rules of a KUBE-SEP chain, as kube-proxy writes them. */
export function renderEndpointChain(name: string, style: EndpointChainStyle, ip: string, port: number): string {
  const recent = style.affinity ? ` -m recent --name ${name} --set` : '';
  return [
    `-A ${name}${style.comment} -s ${ip} -j ${KUBE_MARK_MASQ}\n`,
    `-A ${name}${style.comment}${recent} -m ${style.proto} -p ${style.proto} -j DNAT --to-destination ${joinHostPort(ip, port)}\n`,
  ].join('');
}

/**
 * A Service's nat chains, name → rules text, in insertion order. Policy chains (SVC, SVL) keep their text;
 * endpoint chains (SEP, two rules each and nine in ten of all chains) keep only their address, port and
 * shared style, and are rendered when read. At 10,000 Services x 10 endpoints that is 15 MB of text the
 * agent never holds.
 */
export class ChainTable implements ReadonlyMap<string, string> {
  private readonly names: string[] = [];
  private readonly items: (string | EndpointChainSpec)[] = [];
  private index: Map<string, number> | undefined;

  setText(name: string, text: string): void {
    this.add(name, text);
  }

  setEndpoint(name: string, style: EndpointChainStyle, ip: string, port: number): void {
    this.add(name, { style, ip, port });
  }

  private add(name: string, item: string | EndpointChainSpec): void {
    const at = this.find(name);
    if (at >= 0) {
      this.items[at] = item;
      return;
    }
    this.names.push(name);
    this.items.push(item);
    this.index?.set(name, this.names.length - 1);
  }

  private find(name: string): number {
    // Most Services have a handful of chains: a scan beats a Map per Service; big ones get an index.
    if (this.names.length <= 16) return this.names.indexOf(name);
    if (this.index === undefined) this.index = new Map(this.names.map((n, i) => [n, i]));
    return this.index.get(name) ?? -1;
  }

  private render(i: number): string {
    const item = this.items[i]!;
    return typeof item === 'string' ? item : renderEndpointChain(this.names[i]!, item.style, item.ip, item.port);
  }

  /** Rules in all chains, without rendering: endpoint chains have two. */
  ruleCount(countText: (text: string) => number): number {
    let n = 0;
    for (const item of this.items) n += typeof item === 'string' ? countText(item) : 2;
    return n;
  }

  get size(): number {
    return this.names.length;
  }

  get(name: string): string | undefined {
    const i = this.find(name);
    return i < 0 ? undefined : this.render(i);
  }

  has(name: string): boolean {
    return this.find(name) >= 0;
  }

  *entries(): MapIterator<[string, string]> {
    for (let i = 0; i < this.names.length; i++) yield [this.names[i]!, this.render(i)];
  }

  keys(): MapIterator<string> {
    return this.names.values();
  }

  *values(): MapIterator<string> {
    for (let i = 0; i < this.names.length; i++) yield this.render(i);
  }

  forEach(fn: (value: string, key: string, map: ReadonlyMap<string, string>) => void): void {
    for (let i = 0; i < this.names.length; i++) fn(this.render(i), this.names[i]!, this);
  }

  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.entries();
  }
}
