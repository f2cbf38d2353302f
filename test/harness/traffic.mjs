// @ts-check
/**
 * Traffic across vWires and tunnels, run in a namespace and stopped by PID: a fast pinger
 * (`ping -D -i 0.02`) that reports loss, the longest outage and the recovery after a
 * disruption; a paced TCP stream (iperf3) that must not break; iperf3 throughput.
 */
import { spawn } from 'node:child_process';
import { run, sleep } from './exec.mjs';
import { stopPid } from './proc.mjs';

/**
 * @typedef {object} PingReport
 * @property {number} sent
 * @property {number} received
 * @property {number} lost
 * @property {number} longestGapMs  longest run of unanswered echoes, times the interval: the outage as ping saw it
 * @property {number} recoveryMs  with stop(t0): see Pinger.recovery (NaN if unknown)
 */

/**
 * @typedef {object} Recovery
 * @property {number} recoveredAt  epoch ms of the first reply after the first loss (t0 if
 *   nothing was lost; Infinity if echoes were lost and none answered since)
 * @property {number} firstLost  sequence number (0 if nothing was lost)
 * @property {number} [firstAnswered]
 */

/**
 * @typedef {object} Pinger
 * @property {() => number} received  echoes answered so far
 * @property {(t0: number) => Recovery | undefined} recovery  after a disruption at `t0`
 *   (epoch ms, as Date.now()): the first echo lost after the last one sent before t0, and the
 *   first answered echo after it; undefined while that is not known yet (nothing lost so far
 *   and replies went on for less than 1.5 s)
 * @property {(t0?: number) => Promise<PingReport>} stop  lets the echoes in flight come back, then
 *   stops ping and reports; with `t0`, the recovery after a disruption at t0 too
 * @property {() => void} kill  stops ping at once, reporting nothing (clean-up)
 */

/**
 * `ping -n -D -i <interval>` from `netns` to `dst`, until stop().
 * @param {string} netns
 * @param {string} dst
 * @param {number} [intervalMs]
 * @returns {Pinger}
 */
export function startPinger(netns, dst, intervalMs = 20) {
  const p = spawn('ip', ['netns', 'exec', netns, 'ping', '-n', '-D', '-i', String(intervalMs / 1000), '-W', '1', dst], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  /** Replies by sequence number: reply time (epoch ms, ping's -D timestamp) and round trip. */
  /** @type {Map<number, { recv: number; rtt: number }>} */
  const replies = new Map();
  let transmitted = 0;
  let part = '';
  p.stdout.setEncoding('utf8');
  p.stdout.on('data', (/** @type {string} */ d) => {
    part += d;
    let i;
    while ((i = part.indexOf('\n')) >= 0) {
      const line = part.slice(0, i);
      part = part.slice(i + 1);
      const m = /^\[(\d+\.\d+)\] .*icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms/.exec(line);
      if (m) replies.set(Number(m[2]), { recv: Number(m[1]) * 1000, rtt: Number(m[3]) });
      const t = /(\d+) packets transmitted/.exec(line);
      if (t) transmitted = Number(t[1]);
    }
  });
  p.stderr.resume();
  const exited = new Promise((resolve) => p.once('exit', resolve));

  /**
   * @param {number} t0
   * @param {number} sent
   * @param {number} quietMs
   * @returns {Recovery | undefined}
   */
  const recovery = (t0, sent, quietMs) => {
    const seqs = [...replies.keys()].sort((a, b) => a - b);
    const at = (/** @type {number} */ s) => /** @type {{ recv: number; rtt: number }} */ (replies.get(s));
    let s0 = 0;
    for (const s of seqs) if (at(s).recv - at(s).rtt <= t0) s0 = s;
    let prev = s0;
    for (const s of seqs) {
      if (s <= s0) continue;
      if (s > prev + 1) return { recoveredAt: at(s).recv, firstLost: prev + 1, firstAnswered: s };
      prev = s;
    }
    // nothing lost among the answered ones; lost at the end (sent but not answered)?
    if (Number.isFinite(sent) && sent > prev) return { recoveredAt: Infinity, firstLost: prev + 1 };
    const last = replies.get(prev);
    if (last && prev > s0 && last.recv - t0 >= quietMs) return { recoveredAt: t0, firstLost: 0 };
    return undefined;
  };

  return {
    kill: () => {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    },
    received: () => replies.size,
    recovery: (t0) => recovery(t0, Infinity, 1500),
    async stop(t0) {
      // Let the echoes in flight come back before stopping.
      await sleep(300);
      p.kill('SIGINT');
      await exited;
      // The last echo may have been sent just before SIGINT, its reply still on the way: it
      // is not counted (neither sent nor lost).
      const sent = Math.max(0, transmitted - 1);
      let gap = 0;
      let runLength = 0;
      let lost = 0;
      for (let seq = 1; seq <= sent; seq++) {
        runLength = replies.has(seq) ? 0 : runLength + 1;
        if (runLength) lost++;
        gap = Math.max(gap, runLength);
      }
      const r = t0 === undefined ? undefined : recovery(t0, sent, 0);
      return { sent, received: sent - lost, lost, longestGapMs: gap * intervalMs, recoveryMs: r && t0 !== undefined ? r.recoveredAt - t0 : NaN };
    },
  };
}

/**
 * @typedef {object} TcpStream
 * @property {() => Promise<{ bytes: number; retransmits: number }>} done  waits for the
 *   stream to finish; rejects with iperf3's error if it broke
 * @property {() => void} kill
 */

/** @param {string[]} args */
function ipSpawn(args) {
  return spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * An iperf3 TCP stream of `seconds` from `clientNs` to `serverIp` (an iperf3 server started in
 * `serverNs` on `port`), paced at `rate` so that it does not starve the machine.
 * @param {string} serverNs
 * @param {string} clientNs
 * @param {string} serverIp
 * @param {number} seconds
 * @param {number} [port]
 * @param {string} [rate]
 * @returns {Promise<TcpStream>}
 */
export async function startTcpStream(serverNs, clientNs, serverIp, seconds, port = 5299, rate = '5M') {
  const server = ipSpawn(['netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-p', String(port)]);
  await sleep(300);
  const client = ipSpawn(['netns', 'exec', clientNs, 'iperf3', '-c', serverIp, '-p', String(port), '-t', String(seconds), '-b', rate, '-J']);
  let json = '';
  client.stdout.on('data', (/** @type {Buffer} */ d) => (json += d.toString()));
  /** @type {Promise<number | null>} */
  const finished = new Promise((resolve) => client.once('exit', (c) => resolve(c)));
  const kill = () => {
    for (const p of [client, server]) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  };
  return {
    kill,
    async done() {
      const code = await finished;
      kill();
      let r;
      try {
        r = JSON.parse(json);
      } catch {
        throw new Error(`iperf3 exited ${code} without a report`);
      }
      if (r.error || code !== 0) throw new Error(`the TCP stream broke: ${r.error ?? `iperf3 exited ${code}`}`);
      return { bytes: r.end?.sum_sent?.bytes ?? 0, retransmits: r.end?.sum_sent?.retransmits ?? 0 };
    },
  };
}

/**
 * iperf3 TCP at full speed from namespace `from` to `addr` (an iperf3 server started in `to`)
 * for `seconds`; resolves with the bits per second received.
 * @param {string} from
 * @param {string} to
 * @param {string} addr
 * @param {number} seconds
 * @returns {Promise<number>}
 */
export async function iperfThroughput(from, to, addr, seconds) {
  const server = spawn('ip', ['netns', 'exec', to, 'iperf3', '-s', '-1', '-B', addr], { stdio: 'ignore' });
  try {
    for (let t = 0; ; t++) {
      try {
        const out = await run('ip', ['netns', 'exec', from, 'iperf3', '-c', addr, '-t', String(seconds), '-J']);
        return JSON.parse(out).end.sum_received.bits_per_second;
      } catch (err) {
        if (t > 20) throw err; // the server may not listen yet
        await sleep(100);
      }
    }
  } finally {
    await stopPid(server, 1000);
  }
}
