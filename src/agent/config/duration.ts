/** Go-style durations as used in NSM settings: "10m", "1m30s", "500ms", "3s". */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds, or undefined if the text is not a positive duration. */
export function parseDuration(text: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const m of text.matchAll(re)) {
    if (m.index !== consumed) return undefined;
    total += Number(m[1]) * (UNITS[m[2] as string] ?? NaN);
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== text.length || !(total > 0)) return undefined;
  return total;
}
