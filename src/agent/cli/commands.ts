/**
 * The client commands: they talk to a running agent over its unix socket and print
 * tables, or JSON with --json.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { NetworkService, NetworkServiceEndpoint } from '../../api';
import { fromTimestamp } from '../../api/time';
import { AgentError, COMPONENT, plainGrpcDetails } from '../../core/errors';
import { localClients, streamAll, unaryCall, LocalClients } from '../client';
import { MAX_MANIFEST_BYTES, parseManifests, tooLarge } from '../manifest';
import { age, table } from './format';
import { viewConnection, viewStatus, type ConnectionView, type StatusView } from './status';

export { printStatus, viewStatus, type ConnectionView, type StatusView } from './status';

async function withClients<T>(socket: string, fn: (c: LocalClients) => Promise<T>): Promise<T> {
  const c = localClients(socket);
  try {
    return await fn(c);
  } catch (err) {
    const e = AgentError.from(err);
    // An agent that answered may report another component unreachable (the registry at its URL).
    // It names the component that failed when it is not the agent itself; no answer at all is
    // the agent at the socket.
    if (e.code === 'UNAVAILABLE' && !e.component && !e.message.includes('cannot reach the ')) {
      throw new AgentError('UNAVAILABLE', `cannot reach the agent at ${socket}: ${plainGrpcDetails(e.message)}`, { component: COMPONENT.agent(socket) });
    }
    throw e;
  } finally {
    c.close();
  }
}

export async function getStatus(socket: string): Promise<StatusView> {
  return withClients(socket, async (c) => {
    return viewStatus(await unaryCall<any>(c.agent, 'Status', {}));
  });
}

export async function connect(socket: string, url: string, netns: string, id?: string): Promise<ConnectionView> {
  return withClients(socket, async (c) => viewConnection(await unaryCall<any>(c.agent, 'Connect', { url, netns, id: id ?? '' }, 30_000)));
}

export async function disconnect(socket: string, id: string): Promise<void> {
  await withClients(socket, (c) => unaryCall(c.agent, 'Disconnect', { id }));
}

export async function services(socket: string): Promise<NetworkService[]> {
  return withClients(socket, async (c) => {
    const res = await streamAll<any>(c.ns, 'Find', { network_service: {}, watch: false });
    return res.filter((r) => !r.deleted).map((r) => r.network_service);
  });
}

export function printServices(list: NetworkService[]): string {
  return table(
    ['NAME', 'PAYLOAD', 'MATCHES'],
    list.map((s) => [s.name ?? '', s.payload ?? '', String(s.matches?.length ?? 0)]),
  );
}

export async function endpoints(socket: string): Promise<NetworkServiceEndpoint[]> {
  return withClients(socket, async (c) => {
    const res = await streamAll<any>(c.nse, 'Find', { network_service_endpoint: {}, watch: false });
    return res.filter((r) => !r.deleted).map((r) => r.network_service_endpoint);
  });
}

export function printEndpoints(list: NetworkServiceEndpoint[]): string {
  return table(
    ['NAME', 'SERVICES', 'URL', 'LABELS', 'EXPIRES'],
    list.map((e) => {
      const exp = fromTimestamp(e.expiration_time);
      const labels = Object.values(e.network_service_labels ?? {})
        .flatMap((l) => Object.entries(l.labels ?? {}).map(([k, v]) => `${k}=${v}`));
      return [e.name ?? '', (e.network_service_names ?? []).join(','), e.url ?? '', [...new Set(labels)].join(','), exp ? `in ${age(Date.now(), exp)}` : ''];
    }),
  );
}

/**
 * Reads a manifest file ('-': standard input), refusing one of more than MAX_MANIFEST_BYTES
 * before it is parsed (reading stops one byte past the limit).
 */
export function readManifestFile(file: string): string {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    const fd = file === '-' ? 0 : openSync(file, 'r');
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        let n: number;
        try {
          n = readSync(fd, buf, 0, buf.length, null);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
          if ((err as NodeJS.ErrnoException).code === 'EOF') break;
          throw err;
        }
        if (n === 0) break;
        size += n;
        if (size > MAX_MANIFEST_BYTES) throw tooLarge(file);
        chunks.push(Buffer.from(buf.subarray(0, n)));
      }
    } finally {
      if (fd !== 0) closeSync(fd);
    }
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw new AgentError('INVALID_ARGUMENT', `${file}: cannot read: ${(err as Error).message}`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

/** What a NetworkService says, with the defaults the registry fills in made explicit, for comparing. */
function serviceSpec(ns: NetworkService): string {
  const sorted = (l: Record<string, string> | null | undefined) => Object.entries(l ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify({
    payload: ns.payload || 'IP',
    matches: (ns.matches ?? []).map((m) => ({
      source: sorted(m.source_selector),
      routes: (m.routes ?? []).map((r) => ({ dest: sorted(r.destination_selector), weight: r.weight ?? 0 })),
      fallthrough: !!m.fallthrough,
      metadata: sorted(m.metadata?.labels),
    })),
  });
}

async function findService(c: LocalClients, name: string): Promise<NetworkService | undefined> {
  const res = await streamAll<any>(c.ns, 'Find', { network_service: { name }, watch: false });
  return res.filter((r) => !r.deleted).map((r) => r.network_service as NetworkService).find((s) => s.name === name);
}

/**
 * Registers each NetworkService of the manifest file: created (new), configured (changed) or
 * unchanged (the registry has it as the file says; it is not sent again).
 */
export async function apply(socket: string, file: string): Promise<{ name: string; outcome: ApplyOutcome }[]> {
  const list = parseManifests(readManifestFile(file), file);
  return withClients(socket, async (c) => {
    const out: { name: string; outcome: ApplyOutcome }[] = [];
    for (const ns of list) {
      const existing = await findService(c, ns.name ?? '');
      if (existing && serviceSpec(existing) === serviceSpec(ns)) {
        out.push({ name: ns.name ?? '', outcome: 'unchanged' });
        continue;
      }
      await unaryCall<NetworkService>(c.ns, 'Register', ns);
      out.push({ name: ns.name ?? '', outcome: existing ? 'configured' : 'created' });
    }
    return out;
  });
}

/** The names of the NetworkServices of a manifest file, for `delete -f`. */
export function manifestNames(file: string): string[] {
  return parseManifests(readManifestFile(file), file).map((ns) => ns.name ?? '');
}

/**
 * Unregisters network services by name: `deleted`, or `not found` (the others are still
 * deleted; the caller exits 1).
 */
export async function deleteServices(socket: string, names: string[]): Promise<{ name: string; outcome: 'deleted' | 'not found' }[]> {
  return withClients(socket, async (c) => {
    const out: { name: string; outcome: 'deleted' | 'not found' }[] = [];
    for (const name of names) {
      const existing = await findService(c, name);
      if (!existing) {
        out.push({ name, outcome: 'not found' });
        continue;
      }
      await unaryCall(c.ns, 'Unregister', existing);
      out.push({ name, outcome: 'deleted' });
    }
    return out;
  });
}
