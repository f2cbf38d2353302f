/**
 * End to end, as root: connections a client made with `nsm-agent connect` (held until
 * `disconnect`, not in agent.yaml) survive a reload that changes their endpoint's cidr or
 * labels: re-requested, with addresses from the new pool, and named in the reload's output.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { startAgent, stopAll, type RunningAgent } from '../harness/agent.mjs';
import { uniq, isRoot } from '../harness/exec.mjs';
import { addNetns, delNetns, ping } from '../harness/netns.mjs';

const run = isRoot ? describe : describe.skip;

run('reload keeps connections made with nsm-agent connect', () => {
  const nse = uniq('rhe');
  const nsc = uniq('rhc');
  let agent: RunningAgent;
  const ep = { name: 'ep1', services: ['rhsvc'], cidr: '172.16.71.0/30', netns: '', labels: { tier: 'a' } as Record<string, string> };
  const write = () =>
    writeFileSync(agent.file, YAML.stringify({ name: 'host-h', logLevel: 'debug', stateDir: agent.dir, endpoints: [ep], listen: { unix: agent.socket } }));
  const conn = (): { state: string; srcIps: string[] } | undefined =>
    agent.cliJson(['status']).connections.find((c: { clientId: string }) => c.clientId === 'conn-1');

  beforeAll(async () => {
    addNetns(nse);
    addNetns(nsc);
    ep.netns = nse;
    agent = await startAgent({ name: 'host-h', endpoints: [ep] });
  });

  afterAll(async () => {
    await stopAll();
    delNetns(nse);
    delNetns(nsc);
  });

  it('a cidr change re-requests the connection from the new pool; the reload names it', () => {
    const c = agent.cliJson(['connect', 'kernel://rhsvc/nsm-1', '--netns', nsc, '--id', 'conn-1']);
    expect(c.srcIps).toEqual(['172.16.71.1/32']);
    expect(ping(nsc, '172.16.71.0', 1)).toBe(true);

    ep.cidr = '172.16.72.0/30';
    write();
    const r = agent.cli(['reload', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.changed).toEqual(['endpoint ep1']);
    expect(res.errors).toEqual([]);
    expect(conn()?.state).toBe('UP');
    expect(conn()?.srcIps).toEqual(['172.16.72.1/32']);
    expect(ping(nsc, '172.16.72.0', 1)).toBe(true);
    expect(res.connections).toEqual(['conn-1: re-requested, 172.16.71.1/32 -> 172.16.72.1/32']);
  });

  it('a labels change re-requests it too, and the plain output lists it', () => {
    ep.labels = { tier: 'b' };
    write();
    const r = agent.cli(['reload']);
    expect(r.code, r.stderr).toBe(0);
    expect(conn()?.state).toBe('UP');
    expect(ping(nsc, '172.16.72.0', 1)).toBe(true);
    expect(r.stdout).toContain('connection conn-1: re-requested, 172.16.72.1/32');
  });
});
