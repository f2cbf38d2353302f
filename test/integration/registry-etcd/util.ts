/** Small helpers shared by the etcd registry tests. */
import { AddressInfo, Server, Socket, createConnection, createServer } from 'node:net';

export async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== (false as unknown)) return v;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Counts of this process's active resources by kind (sockets, child processes, timers...). */
export function activeHandles(): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of process.getActiveResourcesInfo()) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

/**
 * A TCP proxy on 127.0.0.1 in front of an etcd, to take it away from a client and give it back
 * on the same address: cut() closes every connection and stops listening (as a stopped etcd
 * looks), restore(target?) listens again, optionally in front of another etcd; freeze() stops
 * forwarding without closing anything (a partition that sends no reset).
 */
export interface TcpProxy {
  /** host:port clients connect to. */
  endpoint: string;
  cut(): Promise<void>;
  restore(target?: string): Promise<void>;
  freeze(): void;
  close(): Promise<void>;
}

export async function tcpProxy(target: string): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  let frozen = false;
  const connect = (client: Socket) => {
    const [host, p] = target.split(':');
    const upstream = createConnection({ host, port: Number(p) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    if (frozen) return;
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer(connect);
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const cut = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return {
    endpoint: `127.0.0.1:${port}`,
    cut,
    restore: async (to?: string) => {
      if (to) target = to;
      frozen = false;
      if (!server) await listen();
    },
    freeze: () => {
      frozen = true;
      for (const sock of sockets) {
        sock.unpipe();
        sock.pause();
      }
    },
    close: cut,
  };
}
