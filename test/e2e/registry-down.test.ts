/**
 * End to end, as root: an agent whose remote registry does not answer blames the registry,
 * not itself, and shows the registry's reachability in `status`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import net from 'node:net';
import { startAgent, stopAll, type RunningAgent } from '../harness/agent.mjs';
import { uniq, isRoot } from '../harness/exec.mjs';
import { addNetns, delNetns } from '../harness/netns.mjs';

const run = isRoot ? describe : describe.skip;

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

run('registry unreachable (one agent)', () => {
  const nsc = uniq('nsc');
  let agent: RunningAgent;
  let registryUrl = '';

  beforeAll(async () => {
    addNetns(nsc);
    registryUrl = `tcp://127.0.0.1:${await closedPort()}`;
    agent = await startAgent({ name: 'host-a', registry: { url: registryUrl } });
  });

  afterAll(async () => {
    await stopAll();
    delNetns(nsc);
  });

  it('connect names the registry at its URL with UNAVAILABLE, not the local agent', () => {
    const r = agent.cli(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot reach the registry at ${registryUrl}`);
    expect(r.stderr).toContain('UNAVAILABLE');
    expect(r.stderr).not.toContain('cannot reach the agent');
  });

  it('status shows the registry unreachable, since when, in the table and in --json', () => {
    const s = agent.cliJson(['status']);
    expect(s.registryHealth.url).toBe(registryUrl);
    expect(s.registryHealth.state).toBe('unreachable');
    expect(s.registryHealth.since).toBeGreaterThan(Date.now() - 120_000);
    expect(s.registryHealth.since).toBeLessThanOrEqual(Date.now());
    const table = agent.cli(['status']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`registry: +${registryUrl}, UNREACHABLE for \\d+s: `));
  });
});
