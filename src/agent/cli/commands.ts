/**
 * The client commands: they talk to a running agent over its unix socket and print
 * tables, or JSON with --json.
 */
import { readFileSync } from 'node:fs';
import type { NetworkService, NetworkServiceEndpoint } from '../../api';
import { fromTimestamp } from '../../api/time';
import { AgentError } from '../../core/errors';
import { localClients, streamAll, unaryCall, LocalClients } from '../client';
import { parseManifests } from '../manifest';
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
    if (e.code === 'UNAVAILABLE' && !e.message.includes('cannot reach the ')) throw new AgentError('UNAVAILABLE', `cannot reach the agent at ${socket}: ${e.message}`);
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

export async function apply(socket: string, file: string): Promise<NetworkService[]> {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    throw new AgentError('INVALID_ARGUMENT', `${file}: cannot read: ${(err as Error).message}`);
  }
  const list = parseManifests(text, file);
  return withClients(socket, async (c) => {
    const out: NetworkService[] = [];
    for (const ns of list) out.push(await unaryCall<NetworkService>(c.ns, 'Register', ns));
    return out;
  });
}
