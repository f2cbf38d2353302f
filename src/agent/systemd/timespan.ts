/**
 * systemd's time spans (systemd.time(7)): "30", "30s", "5min", "1h 30min", "2m 10s", "500ms".
 * A bare number is seconds; units may be joined or blank-separated and add up.
 */
const UNIT_MS: Record<string, number> = {
  us: 0.001, usec: 0.001, µs: 0.001,
  ms: 1, msec: 1,
  s: 1000, sec: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
  w: 604_800_000, week: 604_800_000, weeks: 604_800_000,
};

/** Milliseconds of a time span, or undefined if it is not one ("infinity" is not accepted). */
export function parseTimeSpan(text: string): number | undefined {
  const s = text.trim();
  if (!s) return undefined;
  let total = 0;
  let rest = s;
  while (rest.length) {
    const m = /^(\d+(?:\.\d+)?)\s*([a-zµ]*)\s*/.exec(rest);
    if (!m) return undefined;
    const unit = m[2] || 's';
    const factor = Object.hasOwn(UNIT_MS, unit) ? UNIT_MS[unit] : undefined;
    if (factor === undefined) return undefined;
    total += Number(m[1]) * factor;
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}
