/**
 * Queries to the DNS servers of a namespace, sent from inside it (the mesh's servers are
 * reachable only there): one UDP socket per address family, made in the namespace, with a
 * fresh random id per query. An answer counts only if it comes from the server asked, carries
 * the id given and repeats the question; anything else arriving on the socket is ignored.
 * An answer the server truncated (TC) is asked again over TCP, from the namespace too, within
 * what is left of the time; if that fails the truncated answer stands.
 */
import { randomInt } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { Netns } from '../../sys';
import { formatIp, parseIp, tcpClientInNetns, udpSocketInNetns } from '../../sys';
import { questionEnd, type Exchange } from './forwarder';

const DNS_PORT = 53;
/** Queries waiting for answers at once, per namespace. */
const MAX_PENDING = 4_096;
/**
 * A server the kernel refused to send to (no route from the namespace, typically a default
 * resolver that only the host reaches) is not asked again for this long: each try would fail
 * the same way, and costs the other servers' answers time.
 */
const SEND_FAILED_MS = 1_000;

/** Spellings already made canonical, a bounded few (servers are few; answers come from them). */
const canonicalSeen = new Map<string, string>();
const CANONICAL_SEEN_MAX = 256;

/** One spelling per address (2001:db8:0::1 and 2001:db8::1 are the same server). */
function canonical(ip: string): string {
  const seen = canonicalSeen.get(ip);
  if (seen !== undefined) return seen;
  let out: string;
  try {
    out = formatIp(parseIp(ip.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1')).bytes);
  } catch {
    out = ip;
  }
  if (canonicalSeen.size >= CANONICAL_SEEN_MAX) canonicalSeen.clear();
  canonicalSeen.set(ip, out);
  return out;
}

interface Pending {
  server: string;
  question: Buffer;
  resolve: (answer: Buffer) => void;
}

export class UdpUpstream {
  private readonly sockets = new Map<4 | 6, Promise<Socket>>();
  private readonly pending = new Map<number, Pending>();
  /** Servers whose last send failed, and until when they are skipped. */
  private readonly sendFailed = new Map<string, { until: number; error: Error }>();
  private closed = false;

  constructor(private readonly netns: Netns) {}

  readonly exchange: Exchange = async (server, query, timeoutMs) => {
    const start = Date.now();
    const answer = await this.exchangeUdp(server, query, timeoutMs);
    if (!(answer[2]! & 0x02)) return answer;
    const left = timeoutMs - (Date.now() - start);
    if (left <= 0) return answer;
    return this.exchangeTcp(server, query, left).catch(() => answer);
  };

  /** One query over TCP (two-byte length prefix), the connection made in the namespace. */
  exchangeTcp(server: string, query: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('resolver closed'));
    const family = isIP(server) === 6 ? 6 : 4;
    const qEnd = questionEnd(query);
    return new Promise<Buffer>((resolve, reject) => {
      let sock: ReturnType<typeof tcpClientInNetns>;
      try {
        sock = tcpClientInNetns(this.netns, family);
      } catch (err) {
        reject(err);
        return;
      }
      const timer = setTimeout(() => finish(new Error(`no answer over TCP from ${server} within ${timeoutMs} ms`)), timeoutMs);
      let got: Buffer = Buffer.alloc(0);
      const finish = (err?: Error, answer?: Buffer) => {
        clearTimeout(timer);
        sock.destroy();
        if (answer) resolve(answer);
        else reject(err ?? new Error('closed'));
      };
      sock.on('error', (err) => finish(err));
      sock.on('close', () => finish(new Error(`${server} closed the TCP connection`)));
      sock.on('data', (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length < 2 || got.length < 2 + got.readUInt16BE(0)) return;
        const answer = Buffer.from(got.subarray(2, 2 + got.readUInt16BE(0)));
        const sameQuestion = qEnd > 0 && answer.length >= qEnd && answer.subarray(12, qEnd).toString('latin1').toLowerCase() === query.subarray(12, qEnd).toString('latin1').toLowerCase();
        if (answer.length < 12 || answer.readUInt16BE(0) !== query.readUInt16BE(0) || !sameQuestion) finish(new Error(`${server} answered another question over TCP`));
        else finish(undefined, answer);
      });
      const head = Buffer.alloc(2);
      head.writeUInt16BE(query.length);
      sock.connect(DNS_PORT, server, () => sock.write(Buffer.concat([head, query])));
    });
  }

  private async exchangeUdp(server: string, query: Buffer, timeoutMs: number): Promise<Buffer> {
    const family = isIP(server);
    if (family !== 4 && family !== 6) throw new Error(`${server} is not an IP address`);
    const qEnd = questionEnd(query);
    if (qEnd < 0) throw new Error('query without a question');
    if (this.pending.size >= MAX_PENDING) throw new Error('too many queries waiting');
    const failed = this.sendFailed.get(server);
    if (failed) {
      if (Date.now() < failed.until) throw failed.error;
      this.sendFailed.delete(server);
    }
    const sock = await this.socket(family);
    let id = randomInt(0x10000);
    while (this.pending.has(id)) id = randomInt(0x10000);
    const out = Buffer.from(query);
    out.writeUInt16BE(id, 0);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer from ${server} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        server: canonical(server),
        question: query.subarray(12, qEnd),
        resolve: (answer) => {
          clearTimeout(timer);
          this.pending.delete(id);
          resolve(answer);
        },
      });
      sock.send(out, DNS_PORT, server, (err) => {
        if (!err) return;
        this.sendFailed.set(server, { until: Date.now() + SEND_FAILED_MS, error: err });
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err);
      });
    });
  }

  close(): void {
    this.closed = true;
    for (const s of this.sockets.values()) s.then((sock) => sock.close(), () => {});
    this.sockets.clear();
  }

  private socket(family: 4 | 6): Promise<Socket> {
    if (this.closed) return Promise.reject(new Error('resolver closed'));
    let s = this.sockets.get(family);
    if (!s) {
      s = udpSocketInNetns(this.netns, family === 4 ? '0.0.0.0' : '::', 0).then((sock) => {
        sock.on('message', (msg, rinfo) => this.onAnswer(msg, rinfo.address));
        // ICMP errors reported on the socket (port unreachable): the query times out instead.
        sock.on('error', () => {});
        return sock;
      });
      s.catch(() => this.sockets.delete(family));
      this.sockets.set(family, s);
    }
    return s;
  }

  private onAnswer(msg: Buffer, from: string): void {
    if (msg.length < 12 || !(msg[2]! & 0x80)) return;
    const p = this.pending.get(msg.readUInt16BE(0));
    if (!p || p.server !== canonical(from)) return;
    const q = msg.subarray(12, 12 + p.question.length);
    if (q.length !== p.question.length || q.toString('latin1').toLowerCase() !== p.question.toString('latin1').toLowerCase()) return;
    p.resolve(msg);
  }
}
