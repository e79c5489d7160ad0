const cache: string[] = [];

/**
 * The statistic-match probability 1/n with ten decimals, exactly as Go's `%0.10f` prints the float64: the
 * nearest decimal, ties to even. JavaScript's toFixed breaks ties upwards, and ties do happen (1/2048 is
 * 0.00048828125 exactly), so ties are detected and resolved with exact integer arithmetic.
 */
export function probability(n: number): string {
  const cached = cache[n];
  if (cached !== undefined) return cached;
  const text = formatTenDecimals(1 / n);
  if (n < 10_000) cache[n] = text;
  return text;
}

function formatTenDecimals(x: number): string {
  // A tie needs an exact 11th decimal 5 and nothing after, so x must be a multiple of 2^-11.
  const scaled = x * 2048;
  if (!Number.isInteger(scaled)) return x.toFixed(10);
  return fixedPoint(BigInt(scaled), 2048n, 10);
}

/** numerator / denominator with `decimals` digits, rounded to nearest, ties to even, in exact integer arithmetic. */
function fixedPoint(numerator: bigint, denominator: bigint, decimals: number): string {
  const scaled = numerator * 10n ** BigInt(decimals);
  let quotient = scaled / denominator;
  const twiceRemainder = (scaled % denominator) * 2n;
  if (twiceRemainder > denominator || (twiceRemainder === denominator && quotient % 2n === 1n)) quotient += 1n;
  const digits = quotient.toString().padStart(decimals + 1, '0');
  return `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}

/**
 * A `--probability` argument as iptables-save prints it back: the kernel keeps lround(p * 2^31), and the
 * statistic match prints that over 2^31 with `%.11f` (ties to even, computed exactly here).
 */
export function savedProbability(text: string): string | undefined {
  const p = Number(text);
  if (!Number.isFinite(p) || p < 0 || p > 1) return undefined;
  return fixedPoint(BigInt(Math.round(p * 2 ** 31)), 2n ** 31n, 11);
}
