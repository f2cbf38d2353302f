/**
 * Background traffic for heal tests: a fast pinger (`ping -i 0.02`) that reports loss and the
 * longest outage, and a TCP stream (iperf3) that must not break. Both run in a namespace, are
 * stopped by PID and report what they saw.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface PingReport {
  sent: number;
  received: number;
  lost: number;
  /** Longest run of unanswered echoes, times the interval (ms): the outage as ping saw it. */
  longestGapMs: number;
}

export interface Pinger {
  /** Echoes answered so far. */
  received(): number;
  stop(): Promise<PingReport>;
}

/** `ping -i <interval>` from `netns` to `dst`, until stop(). */
export function startPinger(netns: string, dst: string, intervalMs = 20): Pinger {
  const p = spawn('ip', ['netns', 'exec', netns, 'ping', '-n', '-i', String(intervalMs / 1000), '-W', '1', dst], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const answered = new Set<number>();
  let out = '';
  p.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (const m of d.toString().matchAll(/icmp_seq=(\d+)/g)) answered.add(Number(m[1]));
  });
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  return {
    received: () => answered.size,
    async stop() {
      // Let the echoes in flight come back before stopping.
      await new Promise((r) => setTimeout(r, 300));
      p.kill('SIGINT');
      await exited;
      answered.clear();
      for (const x of out.matchAll(/icmp_seq=(\d+) ttl=/g)) answered.add(Number(x[1]));
      const m = /(\d+) packets transmitted/.exec(out);
      // The last echo may have been sent just before SIGINT, its reply still on the way: it
      // is not counted (neither sent nor lost).
      const sent = Math.max(0, (m ? Number(m[1]) : 0) - 1);
      let gap = 0;
      let run = 0;
      let lost = 0;
      for (let seq = 1; seq <= sent; seq++) {
        run = answered.has(seq) ? 0 : run + 1;
        if (run) lost++;
        gap = Math.max(gap, run);
      }
      return { sent, received: sent - lost, lost, longestGapMs: gap * intervalMs };
    },
  };
}

export interface TcpStream {
  /** Waits for the stream to finish; rejects with iperf3's error if it broke. */
  done(): Promise<{ bytes: number; retransmits: number }>;
  kill(): void;
}

function run(args: string[]): ChildProcess {
  return spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * An iperf3 TCP stream of `seconds` from `clientNs` to `serverIp` (an iperf3 server started in
 * `serverNs` on `port`), paced at `rate` so that it does not starve the machine.
 */
export async function startTcpStream(serverNs: string, clientNs: string, serverIp: string, seconds: number, port = 5299, rate = '5M'): Promise<TcpStream> {
  const server = run(['netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-p', String(port)]);
  await new Promise((r) => setTimeout(r, 300));
  const client = run(['netns', 'exec', clientNs, 'iperf3', '-c', serverIp, '-p', String(port), '-t', String(seconds), '-b', rate, '-J']);
  let json = '';
  client.stdout!.on('data', (d: Buffer) => (json += d.toString()));
  const finished = new Promise<number | null>((resolve) => client.once('exit', (c) => resolve(c)));
  const kill = () => {
    for (const p of [client, server]) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  };
  return {
    kill,
    async done() {
      const code = await finished;
      kill();
      let r: any;
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
