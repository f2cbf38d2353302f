/**
 * End to end, as root: `nsm-agent run` with `vl3ipam` in agent.yaml serves vl3-ipam on mutual
 * TLS (the agent's development identity) or on a unix socket; an upstream-proto client leases
 * from it, and a PrefixLease gets its prefix back after the agent restarts. A bad `vl3ipam`
 * stops the agent at load with the key named.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/core/log';
import { LocalCa } from '../../src/spire/ca';
import { channelCredentials } from '../../src/spire/channel';
import { PrefixLease } from '../../src/vl3/ipam/lease';
import { startAgent, stopAll } from '../harness/agent.mjs';
import { isRoot } from '../harness/exec.mjs';
import { StaticSource, contextOf } from '../helpers/spire/static-source';
import { waitFor } from '../helpers/spire/wait';
import { upstreamIpamClient, UpstreamStream } from '../helpers/upstream-ipam';

const run = isRoot ? describe : describe.skip;

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

run('vl3ipam in agent.yaml', () => {
  afterAll(() => stopAll());

  it('serves ManagePrefixes over mTLS; a lease gets its prefix back after an agent restart', async () => {
    const port = await freePort();
    const cfg = { name: 'ipam-host', vl3ipam: { listen: `127.0.0.1:${port}`, prefix: '172.16.0.0/16', clientPrefixLength: 24 } };
    let agent = await startAgent(cfg, { cleanupOnExit: false });
    const dir = agent.dir;
    try {
      expect(agent.cliJson(['status']).listen).toContain(`tcp://127.0.0.1:${port}`);
      // a workload of the agent's (development) trust domain
      const ca = LocalCa.load(path.join(dir, 'dev-ca'));
      const nse = new StaticSource(contextOf(ca.issue(`spiffe://${ca.trustDomain}/vl3-nse`), ca));
      const url = `tcp://127.0.0.1:${port}`;

      const client = upstreamIpamClient(url, channelCredentials(nse).credentials);
      const s = new UpstreamStream(client);
      expect(await s.allocate()).toEqual({ prefix: '172.16.0.0/24', excludePrefixes: [] });

      const lease = new PrefixLease({ url, channel: () => channelCredentials(nse), log: silentLogger, backoff: { initialMs: 50, maxMs: 200 } });
      lease.start();
      expect(await lease.ready()).toBe('172.16.1.0/24');
      s.cancel();
      client.close();

      await agent.stop('SIGTERM', true);
      await waitFor(() => lease.view().state !== 'leased', 5000, 'the lease lost');
      agent = await startAgent(cfg, { dir, cleanupOnExit: false });
      // memory only: 172.16.0.0/24 is free again, and the lease asks for its own back
      await waitFor(() => lease.view().state === 'leased', 10_000, 'the lease back');
      expect(lease.prefix).toBe('172.16.1.0/24');
      lease.close();
    } finally {
      await agent.stop('SIGTERM');
    }
  });

  it('serves plain gRPC on vl3ipam.listen unix:///path', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-agent-'));
    const sock = path.join(dir, 'vl3-ipam.sock');
    const a = await startAgent({ name: 'ipam-unix', vl3ipam: { listen: `unix://${sock}`, prefix: '2001:db8::/64', clientPrefixLength: 112 } }, { dir });
    try {
      const client = upstreamIpamClient(`unix://${sock}`);
      const s = new UpstreamStream(client);
      expect((await s.allocate()).prefix).toBe('2001:db8::/112');
      expect((await s.allocate()).prefix).toBe('2001:db8::1:0/112');
      s.cancel();
      client.close();
    } finally {
      await a.stop('SIGTERM');
    }
  });

  it('refuses a client length that does not fit, naming the key, before serving', async () => {
    const err = await startAgent({ name: 'ipam-bad', vl3ipam: { listen: '127.0.0.1:0', prefix: '172.16.0.0/16', clientPrefixLength: 16 } }, { readyTimeoutMs: 5000 }).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toMatch(/agent exited with 2: .*vl3ipam\.clientPrefixLength: 16 does not fit 172\.16\.0\.0\/16/s);
  });
});

