/** The output of `ping -i` (stopped with SIGINT) as loss and the longest outage. */
export interface PingReport {
  sent: number;
  received: number;
  lost: number;
  /** Longest run of unanswered echoes times the interval (ms). */
  longestGapMs: number;
}

export function parsePingLog(out: string, intervalMs: number): PingReport {
  const answered = new Set<number>();
  for (const m of out.matchAll(/icmp_seq=(\d+) ttl=/g)) answered.add(Number(m[1]));
  const m = /(\d+) packets transmitted/.exec(out);
  // The last echo may have been sent just before SIGINT, its reply still on the way: it is
  // counted neither as sent nor as lost.
  const sent = Math.max(0, (m ? Number(m[1]) : 0) - 1);
  let gap = 0;
  let runLen = 0;
  let lost = 0;
  for (let seq = 1; seq <= sent; seq++) {
    runLen = answered.has(seq) ? 0 : runLen + 1;
    if (runLen) lost++;
    gap = Math.max(gap, runLen);
  }
  return { sent, received: sent - lost, lost, longestGapMs: gap * intervalMs };
}
