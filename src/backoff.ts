/** Capped exponential backoff with jitter, so a fleet of agents does not reconnect in lockstep. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt: initial × 2^n, capped, then 80–100 % of that. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(base * (0.8 + 0.2 * this.random()));
  }

  reset(): void {
    this.attempt = 0;
  }
}
