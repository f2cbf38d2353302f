/**
 * End to end, as root with real namespaces: one agent hosts an icmp-responder endpoint
 * in one namespace and connects a client namespace to it with a veth vWire.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, existsSync, rmSync, chmodSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startAgent, stopAll, type RunningAgent, cli, writeAgentConfig, BIN } from '../harness/agent.mjs';
import { uniq, isRoot } from '../harness/exec.mjs';
import { addNetns, delNetns, links, addrs, ping } from '../harness/netns.mjs';
import { NsmClient, kernelRequest } from '../harness/clients.mjs';

const run = isRoot ? describe : describe.skip;

async function until(cond: () => boolean, ms: number, step = 100): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, step));
  }
  return cond();
}

async function grpcCode(p: Promise<unknown>): Promise<{ code: number; details: string; stable: unknown }> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details, stable: e.metadata?.get('nsm-agent-error-code')[0] };
  }
  throw new Error('expected the call to fail');
}

run('local vWire (one agent)', () => {
  const nse = uniq('nse');
  const nsc = uniq('nsc');
  let agent: RunningAgent;

  beforeAll(async () => {
    addNetns(nse);
    addNetns(nsc);
    agent = await startAgent({
      name: 'host-a',
      endpoints: [{ name: 'icmp-responder', services: ['icmp-responder'], cidr: '172.16.1.100/31', netns: nse, labels: { app: 'icmp' } }],
    });
  });

  afterAll(async () => {
    await stopAll();
    delNetns(nse);
    delNetns(nsc);
  });

  it('connects a client namespace, packets flow both ways, status shows it, disconnect removes it', () => {
    const c = agent.cliJson(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc, '--id', 'nsc-1']);
    expect(c.srcIps).toEqual(['172.16.1.101/32']);
    expect(c.dstIps).toEqual(['172.16.1.100/32']);
    expect(addrs(nsc, 'nsm-1')).toContain('172.16.1.101/32');
    const nseLinks = links(nse).filter((l) => l.ifname !== 'lo');
    expect(nseLinks).toHaveLength(1);
    expect(nseLinks[0]!.ifname).toMatch(/^icmp-respo-\w{4}$/);
    expect(addrs(nse, nseLinks[0]!.ifname)).toContain('172.16.1.100/32');
    expect(ping(nsc, '172.16.1.100')).toBe(true);
    expect(ping(nse, '172.16.1.101')).toBe(true);

    const status = agent.cliJson(['status']);
    const conn = status.connections.find((x: any) => x.clientId === 'nsc-1');
    expect(conn).toMatchObject({ state: 'UP', service: 'icmp-responder', endpoint: 'icmp-responder', mechanism: 'KERNEL', interface: 'nsm-1' });
    expect(conn.path.map((p: any) => p.name)).toEqual(['host-a-nsc', 'host-a', 'icmp-responder']);
    expect(conn.path[0].id).toBe('nsc-1');
    expect(agent.cli(['status']).stdout).toMatch(/nsc-1\s+icmp-responder\s+UP\s+veth \(local\)/);

    expect(agent.cli(['disconnect', 'nsc-1']).code).toBe(0);
    expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
    expect(links(nse).map((l) => l.ifname)).toEqual(['lo']);
    expect(agent.cliJson(['status']).connections).toEqual([]);
  });

  it('has one id per connection (table, JSON, connect, disconnect); a disconnect by the JSON id stays done', async () => {
    agent.cliJson(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc, '--id', 'nsc-2']);
    const conn = agent.cliJson(['status']).connections.find((x: any) => x.clientId === 'nsc-2');
    // The id this agent gave its own hop (what `id` was in the JSON) still closes it, for good.
    const agentId = conn.path[1].id;
    expect(agent.cli(['disconnect', agentId]).code).toBe(0);
    // Past heal's reaction (liveness every 200 ms, retries up to 1 s): nothing comes back.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(agent.cliJson(['status']).connections).toEqual([]);
    expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
    expect(links(nse).map((l) => l.ifname)).toEqual(['lo']);

    // And by the id that every view shows.
    const c = agent.cliJson(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc, '--id', 'nsc-3']);
    expect(c.id).toBe('nsc-3');
    const shown = agent.cliJson(['status']).connections[0];
    expect(shown.id).toBe('nsc-3');
    expect(shown.agentId).toBe(shown.path[1].id);
    expect(agent.cli(['status']).stdout).toMatch(/\nnsc-3\s+icmp-responder/);
    const id = shown.id;
    expect(agent.cli(['disconnect', id]).code).toBe(0);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(agent.cliJson(['status']).connections).toEqual([]);
    expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
    expect(links(nse).map((l) => l.ifname)).toEqual(['lo']);
  }, 90_000);

  it('refuses a second agent on the running agent`s socket, which keeps it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-second-'));
    try {
      const file = writeAgentConfig(dir, { name: 'host-a2', listen: { unix: agent.socket } });
      const r = spawnSync(process.execPath, [BIN, 'run', '--config', file], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`${agent.socket} is in use by a running agent`);
      expect(r.stderr).toContain('SOCKET_IN_USE');
      expect(existsSync(agent.socket)).toBe(true);
      expect(agent.cli(['status']).code).toBe(0);
      expect(agent.cli(['reload']).code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('reports every served service SERVING on grpc.health.v1', async () => {
    const { api } = await import('../../src/api');
    const Health = api().health.grpc.health.v1.Health as any;
    const h = new Health(`unix://${agent.socket}`, grpc.credentials.createInsecure());
    const check = (service: string) =>
      new Promise<any>((resolve) => h.Check({ service }, (err: any, res: any) => resolve(err ? { code: err.code } : res)));
    try {
      for (const s of ['networkservice.NetworkService', 'connection.MonitorConnection', 'registry.NetworkServiceRegistry', 'registry.NetworkServiceEndpointRegistry']) {
        expect(await check(s), s).toEqual({ status: 'SERVING' });
      }
      expect(await check('no.such.Service')).toEqual({ code: grpc.status.NOT_FOUND });
    } finally {
      h.close();
    }
  });

  it('lists services and endpoints from the registry, with nodeName on the endpoint', () => {
    expect(agent.cliJson(['services']).map((s: any) => s.name)).toContain('icmp-responder');
    const eps = agent.cliJson(['endpoints']);
    expect(eps[0]).toMatchObject({ name: 'icmp-responder', network_service_names: ['icmp-responder'] });
    expect(eps[0].network_service_labels['icmp-responder'].labels).toEqual({ app: 'icmp', nodeName: 'host-a' });
  });

  it('answers bad requests with the right gRPC code and keeps serving', async () => {
    const client = new NsmClient(agent.socket);
    try {
      const bad = async (req: any) => grpcCode(client.request(req));
      expect(await bad(kernelRequest('', 'icmp-responder', nsc, 'nsm-2'))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
      expect(await bad(kernelRequest('b1', 'no-such-service', nsc, 'nsm-2'))).toMatchObject({
        code: grpc.status.NOT_FOUND,
        details: expect.stringMatching(/no-such-service/),
        stable: 'SERVICE_NOT_FOUND',
      });
      const memif = kernelRequest('b2', 'icmp-responder', nsc, 'nsm-2');
      memif.mechanism_preferences = [{ cls: 'LOCAL', type: 'MEMIF', parameters: {} }];
      expect(await bad(memif)).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/MEMIF/) });
      expect(await bad(kernelRequest('b3', 'icmp-responder', nsc, 'a-very-long-interface'))).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringMatching(/15 characters/),
        stable: 'INVALID_INTERFACE_NAME',
      });
      expect(await bad(kernelRequest('b4', 'icmp-responder', 'no-such-netns', 'nsm-2'))).toMatchObject({
        code: grpc.status.NOT_FOUND,
        details: expect.stringMatching(/^network namespace \/run\/netns\/no-such-netns does not exist$/),
        stable: 'NETNS_NOT_FOUND',
      });
      // exhaust the /31 pool with one connection, then ask again
      const first = await client.request(kernelRequest('b5', 'icmp-responder', nsc, 'nsm-5'));
      expect(await bad(kernelRequest('b6', 'icmp-responder', nsc, 'nsm-6'))).toMatchObject({
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: expect.stringMatching(/exhausted/),
        stable: 'POOL_EXHAUSTED',
      });
      // nothing half-made: only the first connection's interface exists
      expect(links(nsc).map((l) => l.ifname).sort()).toEqual(['lo', 'nsm-5']);
      await client.close(first);
      expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
      // still serving
      const ok = await client.request(kernelRequest('b7', 'icmp-responder', nsc, 'nsm-7'));
      expect(ok.context?.ip_context?.src_ip_addrs).toEqual(['172.16.1.101/32']);
      expect(ping(nsc, '172.16.1.100', 1)).toBe(true);
      await client.close(ok);
    } finally {
      client.dispose();
    }
  });

  it('prints the stable code and the component, innermost cause first, for what connect is refused', () => {
    const fails = (args: string[]) => {
      const r = agent.cli(['connect', ...args]);
      expect(r.code, r.stdout).toBe(1);
      expect(r.stderr).not.toMatch(/cannot support any of the requested mechanisms|INTERNAL|DATAPLANE/);
      return r.stderr.trim();
    };
    expect(fails(['kernel://no-such-service/nsm-9'])).toBe('nsm-agent: network service no-such-service is not found (SERVICE_NOT_FOUND from this agent)');
    expect(fails(['kernel://icmp-responder/nsm-9', '--netns', 'no-such-netns'])).toBe(
      'nsm-agent: network namespace /run/netns/no-such-netns does not exist (NETNS_NOT_FOUND from this agent)',
    );
    expect(fails(['kernel://icmp-responder/a-very-long-interface'])).toMatch(/15 bytes \(INVALID_INTERFACE_NAME from this agent\)$/);
    expect(fails(['kernel://icmp-responder/nsm-9', '--netns-path', '/etc/hostname'])).toMatch(/\/etc\/hostname is not a network namespace \(INVALID_ARGUMENT from this agent\)$/);
    expect(fails(['kernel://icmp-responder/nsm-9', '--id', 'a b/c'])).toMatch(/\(INVALID_ARGUMENT from this agent\)$/);
    const held = agent.cliJson(['connect', 'kernel://icmp-responder/nsm-9', '--netns', nsc, '--id', 'full-1']);
    expect(fails(['kernel://icmp-responder/nsm-8', '--netns', nsc])).toMatch(/^nsm-agent: address pool 172\.16\.1\.100\/31 is exhausted \(endpoint icmp-responder\) \(POOL_EXHAUSTED from this agent\)$/);
    expect(agent.cli(['disconnect', held.id]).code).toBe(0);
  });

  it('rejects malformed manifests with the file and key named', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-apply-'));
    try {
      const f = path.join(dir, 'ns.yaml');
      writeFileSync(f, 'apiVersion: networkservicemesh.io/v1\nkind: NetworkService\nmetadata: {name: x}\nspec: {payload: TCP}\n');
      const r = agent.cli(['apply', '-f', f]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${f} (document 1): spec.payload: must be IP or ETHERNET`);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

run('agent.yaml validation', () => {
  it('exits 2 naming the file and key, without creating its socket', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-cfg-'));
    try {
      const f = path.join(dir, 'agent.yaml');
      const socket = path.join(dir, 'agent.sock');
      writeFileSync(f, `listen: {unix: ${socket}}\nendpoints:\n  - name: a\n    services: [s]\n    cidr: 10.0.0.0/33\n`);
      const r = cli(undefined, ['run', '--config', f]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${f}: endpoints[0].cidr: 10.0.0.0/33 is not a CIDR prefix`);
      expect(existsSync(socket)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

run('refresh and timeout with a 3 s token lifetime', () => {
  const nse = uniq('nse');
  const nsc = uniq('nsc');
  let agent: RunningAgent;

  beforeAll(async () => {
    addNetns(nse);
    addNetns(nsc);
    agent = await startAgent({
      name: 'host-t',
      maxTokenLifetime: '3s',
      endpoints: [{ name: 'icmp-responder', services: ['icmp-responder'], cidr: '172.16.2.0/24', netns: nse }],
    });
  });

  afterAll(async () => {
    await stopAll();
    delNetns(nse);
    delNetns(nsc);
  });

  it('keeps a held connection up for 15 s through refreshes, with UPDATE events', async () => {
    const client = new NsmClient(agent.socket);
    const events: string[] = [];
    const stop = client.watch({}, (e) => events.push(String(e.type)));
    try {
      agent.cliJson(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc, '--id', 'long-1']);
      await new Promise((r) => setTimeout(r, 15_000));
      expect(ping(nsc, '172.16.2.0', 1)).toBe(true);
      const status = agent.cliJson(['status']);
      expect(status.connections.map((c: any) => c.clientId)).toEqual(['long-1']);
      expect(events[0]).toBe('INITIAL_STATE_TRANSFER');
      // a refresh every 0.6-1.2 s: well over ten updates in 15 s
      expect(events.filter((e) => e === 'UPDATE').length).toBeGreaterThan(10);
      expect(agent.cli(['disconnect', 'long-1']).code).toBe(0);
    } finally {
      stop();
      client.dispose();
    }
  }, 30_000);

  it('closes the connection of a client that stops refreshing, removing its interfaces', async () => {
    const client = new NsmClient(agent.socket);
    try {
      await client.request(kernelRequest('quiet-1', 'icmp-responder', nsc, 'nsm-q'));
      expect(links(nsc).map((l) => l.ifname)).toContain('nsm-q');
      const t0 = Date.now();
      expect(await until(() => !links(nsc).some((l) => l.ifname === 'nsm-q'), 8_000)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(6_000);
      expect(links(nse).map((l) => l.ifname)).toEqual(['lo']);
      expect(agent.cliJson(['status']).connections).toEqual([]);
    } finally {
      client.dispose();
    }
  }, 20_000);
});

run('endpoint selection with matches', () => {
  const nsA = uniq('nsa');
  const nsB = uniq('nsb');
  const nsc = uniq('nsc');
  let agent: RunningAgent;
  let dir: string;

  beforeAll(async () => {
    for (const n of [nsA, nsB, nsc]) addNetns(n);
    agent = await startAgent({
      name: 'host-s',
      endpoints: [
        { name: 'same-node', services: ['db'], cidr: '172.16.10.0/24', netns: nsA, labels: { app: 'db' } },
        { name: 'fallback', services: ['db'], cidr: '172.16.20.0/24', netns: nsB, labels: { app: 'db-fallback' } },
      ],
    });
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-ns-'));
    const manifest = path.join(dir, 'db.yaml');
    writeFileSync(
      manifest,
      `apiVersion: networkservicemesh.io/v1
kind: NetworkService
metadata:
  name: db
spec:
  payload: IP
  matches:
    - source_selector:
      fallthrough: true
      routes:
        - destination_selector:
            app: db
            nodeName: "{{.nodeName}}"
    - source_selector:
      routes:
        - destination_selector:
            app: db-fallback
`,
    );
    const r = agent.cli(['apply', '-f', manifest]);
    expect(r.code, r.stderr).toBe(0);
  });

  afterAll(async () => {
    await stopAll();
    for (const n of [nsA, nsB, nsc]) delNetns(n);
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the applied matches (the endpoint did not overwrite them)', () => {
    const db = agent.cliJson(['services']).find((s: any) => s.name === 'db');
    expect(db.matches).toHaveLength(2);
    expect(db.matches[0].fallthrough).toBe(true);
  });

  it('picks the endpoint on the same node when {{.nodeName}} matches', () => {
    const c = agent.cliJson(['connect', 'kernel://db/nsm-1', '--netns', nsc, '--id', 'sel-1']);
    expect(c.endpoint).toBe('same-node');
    expect(c.dstIps).toEqual(['172.16.10.0/32']);
    expect(ping(nsc, '172.16.10.0', 1)).toBe(true);
    expect(agent.cli(['disconnect', 'sel-1']).code).toBe(0);
  });

  it('falls through to the fallback when the client names another node', () => {
    const c = agent.cliJson(['connect', 'kernel://db/nsm-2?nodeName=elsewhere', '--netns', nsc, '--id', 'sel-2']);
    expect(c.endpoint).toBe('fallback');
    expect(c.dstIps).toEqual(['172.16.20.0/32']);
    expect(ping(nsc, '172.16.20.0', 1)).toBe(true);
    expect(agent.cli(['disconnect', 'sel-2']).code).toBe(0);
  });
});

run('local socket access', () => {
  const asNobody = (socket: string) =>
    spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, 'bin/nsm-agent', 'status', '--socket', socket], {
      encoding: 'utf8',
      cwd: path.resolve(__dirname, '../..'),
    });

  afterAll(async () => {
    await stopAll();
  });

  it('is mode 0660 and refuses other users by their peer credentials, unless allowed', async () => {
    const a = await startAgent({ name: 'host-p' });
    expect(statSync(a.socket).mode & 0o777).toBe(0o660);
    chmodSync(a.dir, 0o755);
    chmodSync(a.socket, 0o666); // take file permissions out of the way: only SO_PEERCRED is left
    const r = asNobody(a.socket);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the agent/);
    expect(await until(() => /local connection refused.*uid=65534/.test(a.logs.join('')), 3_000)).toBe(true);
    expect(a.cli(['status']).code).toBe(0); // root still served
    await a.stop();

    const b = await startAgent({ name: 'host-q', listen: { allowUids: [65534] } });
    chmodSync(b.dir, 0o755);
    chmodSync(b.socket, 0o666);
    const ok = asNobody(b.socket);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/agent host-q/);
    await b.stop();
  });
});
