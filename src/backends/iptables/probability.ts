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
  const numerator = BigInt(scaled) * 10_000_000_000n;
  let quotient = numerator / 2048n;
  const twiceRemainder = (numerator % 2048n) * 2n;
  if (twiceRemainder > 2048n || (twiceRemainder === 2048n && quotient % 2n === 1n)) quotient += 1n;
  const digits = quotient.toString().padStart(11, '0');
  return `${digits.slice(0, -10)}.${digits.slice(-10)}`;
}

const TWO_POW_31 = 2n ** 31n;
const TEN_POW_11 = 10n ** 11n;

/**
 * A `--probability` argument as iptables-save prints it back: the kernel keeps lround(p * 2^31), and the
 * statistic match prints that over 2^31 with `%.11f` (ties to even, computed exactly here).
 */
export function savedProbability(text: string): string | undefined {
  const p = Number(text);
  if (!Number.isFinite(p) || p < 0 || p > 1) return undefined;
  const stored = BigInt(Math.round(p * 2 ** 31));
  const numerator = stored * TEN_POW_11;
  let quotient = numerator / TWO_POW_31;
  const twiceRemainder = (numerator % TWO_POW_31) * 2n;
  if (twiceRemainder > TWO_POW_31 || (twiceRemainder === TWO_POW_31 && quotient % 2n === 1n)) quotient += 1n;
  const digits = quotient.toString().padStart(12, '0');
  return `${digits.slice(0, -11)}.${digits.slice(-11)}`;
}
