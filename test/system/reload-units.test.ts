/**
 * Reload and units against a real agent process, without systemd (root: namespaces, veths):
 *
 * - SIGHUP and `nsm-agent reload` apply endpoint and connection changes from agent.yaml;
 *   untouched vWires keep their interface (same ifindex), changed endpoints get their held
 *   connections back, a broken file changes nothing, other keys are reported as needing a
 *   restart.
 * - `nsm-agent unit start|stop` (what nsm-connect@.service runs) with unit files found through
 *   SYSTEMD_UNIT_PATH: namespaces, endpoints, connections, the failure path, and a restart of the
 *   agent restoring the units.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, statSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { startAgent, stopAll, type RunningAgent, BIN } from '../harness/agent.mjs';
import { uniq, isRoot, sh } from '../harness/exec.mjs';
import { addNetns, delNetns, links, ping } from '../harness/netns.mjs';

const run = isRoot ? describe : describe.skip;
if (!isRoot) console.warn('test/system/reload-units: skipped, needs root (namespaces, veth pairs)');

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!cond()) throw new Error(`timed out waiting for: ${what}`);
}

const ifindex = (ns: string, dev: string) => links(ns).find((l) => l.ifname === dev) as { ifindex?: number } | undefined;
const hasLink = (ns: string, dev: string) => {
  try {
    return links(ns).some((l) => l.ifname === dev);
  } catch {
    return false;
  }
};

run('reload of agent.yaml', () => {
  const nse1 = uniq('rle');
  const nse2 = uniq('rlf');
  const nsc = uniq('rlc');
  let agent: RunningAgent;
  let cfg: Record<string, any>;
  // stateDir as startAgent wrote it (the agent's own directory)
  const write = () => writeFileSync(path.join(agent.dir, 'agent.yaml'), YAML.stringify({ stateDir: agent.dir, ...cfg, listen: { unix: agent.socket } }));
  const ep1 = { name: 'ep1', services: ['rsvc1'], cidr: '172.16.61.0/30', netns: '' };
  const ep2 = { name: 'ep2', services: ['rsvc2'], cidr: '172.16.62.0/30', netns: '' };

  beforeAll(async () => {
    for (const n of [nse1, nse2, nsc]) addNetns(n);
    ep1.netns = nse1;
    ep2.netns = nse2;
    cfg = { name: 'host-r', logLevel: 'debug', endpoints: [ep1], connections: [{ url: 'kernel://rsvc1/nsm-1', netns: nsc }] };
    agent = await startAgent(cfg);
    await until('nsm-1', () => hasLink(nsc, 'nsm-1'));
  });

  afterAll(async () => {
    await stopAll();
    for (const n of [nse1, nse2, nsc]) delNetns(n);
  });

  it('SIGHUP adds an endpoint and a connection; the untouched vWire keeps its interface', async () => {
    const before = ifindex(nsc, 'nsm-1')?.ifindex;
    cfg.endpoints = [ep1, ep2];
    cfg.connections = [...cfg.connections, { url: 'kernel://rsvc2/nsm-2', netns: nsc }];
    write();
    agent.proc.kill('SIGHUP');
    await until('nsm-2', () => hasLink(nsc, 'nsm-2'));
    expect(ifindex(nsc, 'nsm-1')?.ifindex).toBe(before);
    expect(ping(nsc, '172.16.61.0', 1)).toBe(true);
    expect(ping(nsc, '172.16.62.0', 1)).toBe(true);
    expect(agent.cliJson(['endpoints']).map((e: { name: string }) => e.name).sort()).toEqual(['ep1', 'ep2']);
    expect(agent.proc.exitCode).toBeNull();
  });

  it('nsm-agent reload: a changed endpoint is replaced and its held connection made again; others untouched', async () => {
    const nsm2 = ifindex(nsc, 'nsm-2')?.ifindex;
    cfg.endpoints = [{ ...ep1, labels: { tier: 'gold' } }, ep2];
    write();
    const r = agent.cli(['reload', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.changed).toEqual(['endpoint ep1']);
    expect(res.errors).toEqual([]);
    expect(hasLink(nsc, 'nsm-1')).toBe(true);
    expect(ping(nsc, '172.16.61.0', 1)).toBe(true);
    expect(ifindex(nsc, 'nsm-2')?.ifindex).toBe(nsm2);
    const reg = agent.cliJson(['endpoints']).find((e: { name: string }) => e.name === 'ep1');
    expect(reg.network_service_labels.rsvc1.labels).toMatchObject({ tier: 'gold', nodeName: 'host-r' });
  });

  it('removing an endpoint and a connection closes and unregisters them', async () => {
    cfg.endpoints = [{ ...ep1, labels: { tier: 'gold' } }];
    cfg.connections = [cfg.connections[0]];
    write();
    const r = agent.cli(['reload']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/- connection host-r-cfg-[0-9a-f]+/);
    expect(r.stdout).toMatch(/- endpoint ep2/);
    expect(hasLink(nsc, 'nsm-2')).toBe(false);
    expect(hasLink(nsc, 'nsm-1')).toBe(true);
    expect(agent.cliJson(['endpoints']).map((e: { name: string }) => e.name)).toEqual(['ep1']);
  });

  it('a broken file changes nothing; keys that need a restart are named', () => {
    writeFileSync(path.join(agent.dir, 'agent.yaml'), 'endpoints: [\n');
    const bad = agent.cli(['reload']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/configuration error: .*invalid YAML: .*\(INVALID_ARGUMENT from this agent\)/);
    expect(hasLink(nsc, 'nsm-1')).toBe(true);
    cfg.logLevel = 'info';
    write();
    const r = agent.cli(['reload', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).restartNeeded).toEqual(['logLevel']);
    expect(agent.proc.exitCode).toBeNull();
  });
});

run('units declaring network services (nsm-agent unit start/stop, no systemd)', () => {
  const tag = uniq('u').slice(1, 7);
  const provider = `nsmtu-${tag}-p.service`;
  const consumer = `nsmtu-${tag}-c.service`;
  const bad = `nsmtu-${tag}-b.service`;
  const nsP = `nsm-nsmtu-${tag}-p`;
  const nsC = `nsm-nsmtu-${tag}-c`;
  let units: string;
  let agent: RunningAgent;
  const ucli = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], {
      encoding: 'utf8',
      env: { ...process.env, NSM_AGENT_SOCKET: agent.socket, SYSTEMD_UNIT_PATH: units },
      timeout: 60_000,
    });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const netns = () => sh('ip', ['netns', 'list']).stdout;

  beforeAll(async () => {
    units = mkdtempSync(path.join(os.tmpdir(), 'nsmt-agent-units-'));
    writeFileSync(path.join(units, provider), `[X-NetworkServiceMesh]\nProvide=usvc-${tag}?app=u\nAddressPool=172.16.63.0/29\n[Service]\nExecStart=/bin/true\n`);
    writeFileSync(path.join(units, consumer), `[Unit]\nAfter=${provider}\n[X-NetworkServiceMesh]\nConnect=kernel://usvc-${tag}/nsm-1?app=u\n[Service]\nExecStart=/bin/true\n`);
    writeFileSync(path.join(units, bad), `[X-NetworkServiceMesh]\nConnect=kernel://nothing-${tag}/nsm-1\n[Service]\nExecStart=/bin/true\n`);
    agent = await startAgent({ name: 'host-u' });
  });

  afterAll(async () => {
    for (const u of [consumer, provider, bad]) if (agent) ucli(['unit', 'stop', u]);
    await stopAll();
    for (const n of [nsP, nsC]) delNetns(n);
    rmSync(units, { recursive: true, force: true });
  });

  it('the systemd socket is for root and the agent only', () => {
    expect(statSync(path.join(agent.dir, 'systemd.sock')).mode & 0o777).toBe(0o600);
  });

  it('start: the provider registers, the consumer gets nsm-1 in its own namespace and reaches the provider', () => {
    const p = ucli(['unit', 'start', provider]);
    expect(p.code, p.stderr).toBe(0);
    expect(netns()).toContain(nsP);
    const c = ucli(['unit', 'start', consumer.replace(/\.service$/, ''), '--json']);
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout)).toMatchObject({ unit: consumer, netns: nsC, connections: [{ ifname: 'nsm-1', up: true }] });
    expect(hasLink(nsC, 'nsm-1')).toBe(true);
    expect(ping(nsC, '172.16.63.0', 1)).toBe(true);
    expect(agent.cliJson(['endpoints']).map((e: { name: string }) => e.name)).toContain(`host-u-nsmtu-${tag}-p`);
    // The same start again is a no-op.
    expect(ucli(['unit', 'start', consumer]).code).toBe(0);
    const spec = JSON.parse(readFileSync(path.join(agent.dir, 'units', `${consumer}.json`), 'utf8'));
    expect(spec.connect[0].id).toBe(`${consumer}/nsm-1`);
  });

  it('a unit asking for a missing service fails with the reason and leaves no namespace', () => {
    const r = ucli(['unit', 'start', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`network service nothing-${tag} is not found \\(SERVICE_NOT_FOUND from this agent\\)`));
    expect(netns()).not.toContain(`nsm-nsmtu-${tag}-b`);
    expect(ucli(['unit', 'start', 'no-such-unit-at-all']).stderr).toMatch(/has no \[X-NetworkServiceMesh\] section/);
  });

  it('a restarted agent restores the units (endpoint first, then connections)', async () => {
    await agent.stop('SIGTERM', true);
    expect(hasLink(nsC, 'nsm-1')).toBe(false); // a clean stop closes connections
    agent = await startAgent({ name: 'host-u' }, { dir: agent.dir });
    await until('consumer restored', () => hasLink(nsC, 'nsm-1'));
    const list = JSON.parse(ucli(['unit', 'list', '--json']).stdout);
    expect(list.map((u: { unit: string }) => u.unit).sort()).toEqual([consumer, provider].sort());
    expect(ping(nsC, '172.16.63.0', 1)).toBe(true);
  });

  it('stop: the consumer loses its namespace, the provider is unregistered', () => {
    const c = ucli(['unit', 'stop', consumer]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/stopped, namespace removed/);
    expect(netns()).not.toContain(nsC);
    const p = ucli(['unit', 'stop', provider]);
    expect(p.code, p.stderr).toBe(0);
    expect(agent.cliJson(['endpoints'])).toEqual([]);
    expect(netns()).not.toContain(nsP);
    expect(JSON.parse(ucli(['unit', 'list', '--json']).stdout)).toEqual([]);
  });
});
