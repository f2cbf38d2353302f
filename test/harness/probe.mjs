// @ts-check
/**
 * Long-lived python3 probes (probe.py), started once so that their own start-up is never
 * timed. Times are CLOCK_MONOTONIC milliseconds (as `Number(process.hrtime.bigint()) / 1e6`).
 */
import path from 'node:path';
import { ROOT } from './exec.mjs';
import { lineProc } from './proc.mjs';

const PROBE = path.join(ROOT, 'test/harness/probe.py');

/**
 * An ICMP prober in `netns`: `ping(addr, timeoutMs)` sends an echo every millisecond until the
 * first reply and resolves with that reply's time, or rejects on timeout.
 * @param {string} netns
 */
export async function startProber(netns) {
  const lp = lineProc('ip', ['netns', 'exec', netns, 'python3', PROBE, 'ping']);
  if ((await lp.next()) !== 'ready') {
    await lp.stop();
    throw new Error(`probe did not start in ${netns}`);
  }
  return {
    /**
     * @param {string} addr
     * @param {number} [timeoutMs]
     * @returns {Promise<number>}
     */
    async ping(addr, timeoutMs = 10_000) {
      const line = await lp.send(`${addr} ${timeoutMs}`);
      const [what, ns] = line.split(' ');
      if (what !== 'ok') throw new Error(`no ping reply from ${addr} within ${timeoutMs} ms (in ${netns})`);
      return Number(ns) / 1e6;
    },
    stop: lp.stop,
  };
}

/**
 * A unix datagram socket at `file` (what systemd's NOTIFY_SOCKET is): `next()` resolves with
 * { t, msg } for each datagram.
 * @param {string} file
 */
export async function notifySocket(file) {
  const lp = lineProc('python3', [PROBE, 'notify', file]);
  if ((await lp.next()) !== 'ready') {
    await lp.stop();
    throw new Error('notify listener did not start');
  }
  return {
    /** @returns {Promise<{ t: number; msg: string }>} */
    async next() {
      const line = await lp.next();
      const i = line.indexOf(' ');
      return { t: Number(line.slice(0, i)) / 1e6, msg: line.slice(i + 1) };
    },
    stop: lp.stop,
  };
}
