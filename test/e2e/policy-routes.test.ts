/**
 * End to end, as root with real namespaces: an endpoint's `policies` and `routes` (upstream's
 * policy-based-routing example) become, in the client's namespace, one routing table and one
 * `ip rule` per policy and plain routes; `ip route get ... ipproto tcp dport 6666` picks the
 * policy's table. A reload that changes only the policies refreshes the connection, and the
 * client's rules are diffed: the kept policy keeps its rule and table, the removed one goes,
 * the new one comes. Disconnect removes them all.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import YAML from 'yaml';
import { startAgent, stopAll, type RunningAgent } from '../harness/agent.mjs';
import { uniq, isRoot, until } from '../harness/exec.mjs';
import { addNetns, delNetns, ping } from '../harness/netns.mjs';

const run = isRoot ? describe : describe.skip;

function ipIn(netns: string, args: string[]): string {
  const r = spawnSync('ip', ['-n', netns, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip -n ${netns} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The client namespace's rules other than the three defaults, as `ip rule` prints them. */
function policyRules(netns: string): string[] {
  return ipIn(netns, ['rule', 'show'])
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^(0|32766|32767):/.test(l));
}

run('policy routes and plain routes (one agent)', () => {
  const nse = uniq('pre');
  const nsc = uniq('prc');
  let agent: RunningAgent;
  const ep: Record<string, unknown> = {
    name: 'pbr-ep',
    services: ['pbr'],
    cidr: '172.16.2.200/30',
    netns: '',
    routes: [{ prefix: '172.16.5.0/24' }],
    policies: [
      { from: '172.16.2.201/32', proto: 6, dstPort: 6666, routes: [{ prefix: '172.16.3.0/24', nextHop: '172.16.2.200' }] },
      { from: '172.16.2.201/32', proto: 17, dstPort: '6667-6670' },
    ],
  };
  const write = () => writeFileSync(agent.file, YAML.stringify({ name: 'host-p', logLevel: 'debug', stateDir: agent.dir, endpoints: [ep], listen: { unix: agent.socket } }));

  beforeAll(async () => {
    addNetns(nse);
    addNetns(nsc);
    ep['netns'] = nse;
    agent = await startAgent({ name: 'host-p', endpoints: [ep] });
  });

  afterAll(async () => {
    await stopAll();
    delNetns(nse);
    delNetns(nsc);
  });

  it('makes a table and a rule per policy; ip route get picks the policy table; plain routes are there', () => {
    const c = agent.cliJson(['connect', 'kernel://pbr/nsm-1', '--netns', nsc, '--id', 'pbr-1']);
    expect(c.srcIps).toEqual(['172.16.2.201/32']);
    expect(ping(nsc, '172.16.2.200', 1)).toBe(true);

    const rules = policyRules(nsc);
    expect(rules).toHaveLength(2);
    expect(rules.some((r) => /from 172\.16\.2\.201 ipproto tcp dport 6666 lookup 1\b/.test(r))).toBe(true);
    expect(rules.some((r) => /from 172\.16\.2\.201 ipproto udp dport 6667-6670 lookup 2\b/.test(r))).toBe(true);
    expect(ipIn(nsc, ['route', 'show', 'table', '1'])).toMatch(/172\.16\.3\.0\/24 via 172\.16\.2\.200 dev nsm-1 .*onlink/);
    expect(ipIn(nsc, ['route', 'show', 'table', '2'])).toMatch(/default dev nsm-1/);

    // upstream's check: the policy's table for its traffic, the main table for other traffic
    expect(ipIn(nsc, ['route', 'get', '172.16.3.1', 'from', '172.16.2.201', 'ipproto', 'tcp', 'dport', '6666'])).toMatch(/table 1\b/);
    expect(ipIn(nsc, ['route', 'get', '172.16.3.1', 'from', '172.16.2.201', 'ipproto', 'udp', 'dport', '6668'])).toMatch(/dev nsm-1 table 2\b/);
    expect(ipIn(nsc, ['route', 'get', '172.16.5.1', 'from', '172.16.2.201', 'ipproto', 'tcp', 'dport', '22'])).not.toMatch(/table/);
    // the plain route, via the endpoint's address
    expect(ipIn(nsc, ['route', 'show'])).toMatch(/172\.16\.5\.0\/24 via 172\.16\.2\.200 dev nsm-1/);
  });

  it('a reload that changes only the policies refreshes the connection and diffs its rules', async () => {
    const before = policyRules(nsc);
    const tcp = before.find((r) => /dport 6666/.test(r))!;
    ep['policies'] = [
      // kept: same key, same routes
      { from: '172.16.2.201/32', proto: 6, dstPort: 6666, routes: [{ prefix: '172.16.3.0/24', nextHop: '172.16.2.200' }] },
      // new
      { from: '172.16.2.201/32', srcPort: 5555, routes: [{ prefix: '172.16.4.0/24' }] },
    ];
    write();
    const r = agent.cli(['reload', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.changed).toEqual(['endpoint pbr-ep']);
    expect(res.connections).toEqual(['pbr-1: refresh requested (policies)']);

    const after = await until(() => {
      const now = policyRules(nsc);
      return now.some((x) => /sport 5555/.test(x)) && !now.some((x) => /6667-6670/.test(x)) ? now : undefined;
    }, 10_000);
    expect(after, `rules now: ${policyRules(nsc).join(' | ')}`).toBeDefined();
    expect(after).toHaveLength(2);
    // the kept policy's rule is the very same (its preference did not change: not re-added)
    expect(after).toContain(tcp);
    // the removed policy's table 2 is empty and free again, the new one took it
    expect(after!.some((x) => /from 172\.16\.2\.201 sport 5555 lookup 2\b/.test(x))).toBe(true);
    expect(ipIn(nsc, ['route', 'show', 'table', '2'])).toMatch(/172\.16\.4\.0\/24 dev nsm-1/);
    expect(ipIn(nsc, ['route', 'show', 'table', '2'])).not.toMatch(/default/);
    expect(ipIn(nsc, ['route', 'get', '172.16.3.1', 'from', '172.16.2.201', 'ipproto', 'tcp', 'dport', '6666'])).toMatch(/table 1\b/);
    expect(ping(nsc, '172.16.2.200', 1)).toBe(true);
    expect(agent.cliJson(['status']).connections.find((x: { clientId: string }) => x.clientId === 'pbr-1')?.state).toBe('UP');
  }, 30_000);

  it('disconnect removes the rules and the tables', () => {
    expect(agent.cli(['disconnect', 'pbr-1']).code).toBe(0);
    expect(policyRules(nsc)).toEqual([]);
    expect(ipIn(nsc, ['route', 'show', 'table', 'all'])).not.toMatch(/table [12]\b/);
  });
});
