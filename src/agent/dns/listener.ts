/**
 * DNS sockets in a namespace, made there by the agent (src/sys nssocket): the resolver's on
 * 127.0.0.1:53, each query handed to a Forwarder, and a vL3 endpoint's on its own address.
 * TCP carries two-byte length-prefixed messages, several per connection; a connection idle for TCP_IDLE_MS, or one whose message is
 * too short to be DNS, is closed. UDP answers are limited to 512 bytes, or the size the
 * query's EDNS record allows.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import type { Server, Socket } from 'node:net';
import type { Netns } from '../../sys';
import { tcpServerInNetns, udpSocketInNetns } from '../../sys';
import type { Forwarder } from './forwarder';
import { dnsAnswers, type DnsServerKind } from './counts';

export const RESOLVER_ADDRESS = '127.0.0.1';
const TCP_IDLE_MS = 10_000;
const MAX_TCP_CONNECTIONS = 64;
const MAX_UDP_QUERY = 4_096;

/** The UDP payload size a query's EDNS (OPT) record offers, else 512. */
export function udpLimit(query: Buffer): number {
  // An OPT record: root name (0), TYPE 41, then CLASS = the payload size. A false match
  // only moves the limit within 512..4096.
  const ar = query.length >= 12 ? query.readUInt16BE(10) : 0;
  if (ar === 0) return 512;
  const i = query.lastIndexOf(Buffer.from([0x00, 0x00, 0x29]));
  if (i < 12 || i + 5 > query.length) return 512;
  return Math.min(4_096, Math.max(512, query.readUInt16BE(i + 3)));
}

export interface ResolverSockets {
  close(): Promise<void>;
}

/** Answers one query (at most `maxSize` bytes); undefined: answer nothing. */
export type Answerer = (query: Buffer, maxSize: number) => Promise<Buffer | undefined>;

export function serveResolver(netns: Netns, forwarder: Forwarder, port = 53): Promise<ResolverSockets> {
  return serveDns(netns, RESOLVER_ADDRESS, port, (q, max) => forwarder.answer(q, max), 'resolver');
}

/**
 * UDP and TCP DNS on `address`:`port` inside `netns`, each query handed to `answer`; each one
 * handled is counted for `server` (dnsAnswers).
 */
export async function serveDns(netns: Netns, address: string, port: number, answerQuery: Answerer, server: DnsServerKind): Promise<ResolverSockets> {
  const answer: Answerer = async (query, maxSize) => {
    const out = await answerQuery(query, maxSize);
    dnsAnswers.count(server, out);
    return out;
  };
  const udp: UdpSocket = await udpSocketInNetns(netns, address, port);
  udp.on('error', () => {});
  udp.on('message', (msg, rinfo) => {
    if (msg.length > MAX_UDP_QUERY) return;
    answer(msg, udpLimit(msg)).then(
      (out) => {
        if (out) udp.send(out, rinfo.port, rinfo.address, () => {});
      },
      () => {},
    );
  });
  const conns = new Set<Socket>();
  let tcp: Server;
  try {
    tcp = await tcpServerInNetns(netns, address, port, (sock) => serveTcp(sock, answer, conns));
  } catch (err) {
    udp.close();
    throw err;
  }
  tcp.on('error', () => {});
  return {
    async close() {
      udp.close();
      for (const c of conns) c.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

function serveTcp(sock: Socket, answer: Answerer, conns: Set<Socket>): void {
  if (conns.size >= MAX_TCP_CONNECTIONS) {
    sock.destroy();
    return;
  }
  conns.add(sock);
  sock.on('close', () => conns.delete(sock));
  sock.on('error', () => {});
  sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
  let buffered: Buffer = Buffer.alloc(0);
  sock.on('data', (chunk: Buffer) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    while (buffered.length >= 2) {
      const len = buffered.readUInt16BE(0);
      if (len < 12) {
        sock.destroy();
        return;
      }
      if (buffered.length < 2 + len) return;
      const msg = Buffer.from(buffered.subarray(2, 2 + len));
      buffered = buffered.subarray(2 + len);
      answer(msg, 65_535).then(
        (out) => {
          if (!out || sock.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(out.length);
          sock.write(Buffer.concat([head, out]));
        },
        () => {},
      );
    }
  });
}
