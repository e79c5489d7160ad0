/**
 * Go-style durations as kube-proxy's flags take them: "1s", "500ms", "1m30s", "1h", and a bare "0".
 * Returns milliseconds, or undefined if the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let matched = 0;
  while (re.lastIndex < s.length) {
    const m = re.exec(s);
    if (m === null) return undefined;
    total += Number(m[1]) * (unit[m[2]!] ?? 0);
    matched++;
  }
  return matched > 0 ? Math.round(total) : undefined;
}
