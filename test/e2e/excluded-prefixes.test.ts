/**
 * End to end, as root with real namespaces: a client namespace's connections never get
 * addresses that overlap its other connections or the namespace's own connected prefixes
 * (upstream's exclude-prefixes-client example, on one host). Two endpoints with the same
 * pool give one namespace disjoint addresses; a pool with nothing left outside them is
 * refused with ADDRESS_OVERLAP naming the prefix, the endpoint and the other connection, and
 * nothing of the refused connection stays.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { startAgent, stopAll, type RunningAgent } from '../harness/agent.mjs';
import { uniq, isRoot } from '../harness/exec.mjs';
import { addNetns, delNetns, links, ping } from '../harness/netns.mjs';

const run = isRoot ? describe : describe.skip;

function ipIn(netns: string, args: string[]): void {
  const r = spawnSync('ip', ['-n', netns, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip -n ${netns} ${args.join(' ')}: ${r.stderr}`);
}

run('excluded prefixes (one agent)', () => {
  const nseA = uniq('xpa');
  const nseB = uniq('xpb');
  const nsc = uniq('xpc');
  let agent: RunningAgent;

  beforeAll(async () => {
    for (const ns of [nseA, nseB, nsc]) addNetns(ns);
    // the client namespace's own network: 172.16.31.0/24 on an interface (a veth: no dummy module needed)
    ipIn(nsc, ['link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan0p']);
    ipIn(nsc, ['addr', 'add', '172.16.31.1/24', 'dev', 'lan0']);
    ipIn(nsc, ['link', 'set', 'lan0', 'up']);
    agent = await startAgent({
      name: 'host-x',
      endpoints: [
        { name: 'ep-a', services: ['svc-a'], cidr: '172.16.30.0/29', netns: nseA },
        // the same pool: a second connection of one namespace must get other addresses
        { name: 'ep-b', services: ['svc-b'], cidr: '172.16.30.0/29', netns: nseB },
        // nothing left outside the first connection's addresses
        { name: 'ep-c', services: ['svc-c'], cidr: '172.16.30.0/31', netns: nseB },
        // inside the namespace's own 172.16.31.0/24
        { name: 'ep-d', services: ['svc-d'], cidr: '172.16.31.8/30', netns: nseB },
      ],
    });
  });

  afterAll(async () => {
    await stopAll();
    for (const ns of [nseA, nseB, nsc]) delNetns(ns);
  });

  it('a second connection into the namespace gets addresses outside the first one`s', () => {
    const a = agent.cliJson(['connect', 'kernel://svc-a/nsm-a', '--netns', nsc, '--id', 'conn-a']);
    expect(a.srcIps).toEqual(['172.16.30.1/32']);
    expect(a.dstIps).toEqual(['172.16.30.0/32']);
    const b = agent.cliJson(['connect', 'kernel://svc-b/nsm-b', '--netns', nsc, '--id', 'conn-b']);
    expect(b.srcIps).toEqual(['172.16.30.3/32']);
    expect(b.dstIps).toEqual(['172.16.30.2/32']);
    expect(ping(nsc, '172.16.30.0', 1)).toBe(true);
    expect(ping(nsc, '172.16.30.2', 1)).toBe(true);
  });

  it('a pool with nothing outside another connection`s addresses is refused, naming the prefix, the endpoint and the connection', () => {
    const r = agent.cli(['connect', 'kernel://svc-c/nsm-c', '--netns', nsc, '--id', 'conn-c']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('ADDRESS_OVERLAP');
    expect(r.stderr).toContain('endpoint ep-c');
    expect(r.stderr).toMatch(/172\.16\.30\.[01]\/32 is connection conn-a's/);
    expect(links(nsc).map((l) => l.ifname).sort()).toEqual(['lan0', 'lan0p', 'lo', 'nsm-a', 'nsm-b']);
    expect(links(nseB).map((l) => l.ifname)).toHaveLength(2); // lo and conn-b's end
    expect(agent.cliJson(['status']).connections.map((c: { clientId: string }) => c.clientId).sort()).toEqual(['conn-a', 'conn-b']);
  });

  it('a pool inside the namespace`s own connected prefix is refused, naming the interface', () => {
    const r = agent.cli(['connect', 'kernel://svc-d/nsm-d', '--netns', nsc, '--id', 'conn-d']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('ADDRESS_OVERLAP');
    expect(r.stderr).toContain('endpoint ep-d');
    expect(r.stderr).toContain("172.16.31.0/24 is interface lan0's");
    expect(links(nsc).map((l) => l.ifname)).not.toContain('nsm-d');
  });

  it('once the first connection is gone, its addresses are free for the namespace again', () => {
    expect(agent.cli(['disconnect', 'conn-a']).code).toBe(0);
    const c = agent.cliJson(['connect', 'kernel://svc-c/nsm-c', '--netns', nsc, '--id', 'conn-c']);
    expect(c.srcIps).toEqual(['172.16.30.1/32']);
    expect(ping(nsc, '172.16.30.0', 1)).toBe(true);
    for (const id of ['conn-b', 'conn-c']) expect(agent.cli(['disconnect', id]).code).toBe(0);
  });
});
