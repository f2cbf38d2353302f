/**
 * The CLI as an operator uses it, against a real agent (root, namespaces): every subcommand's
 * --help, global flags before or after the command, status on the systemd socket and over gRPC, apply's created / configured / unchanged,
 * delete, reload --json on failure, and endpoint namespaces checked at start and on reload.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { startAgent, stopAll, type RunningAgent, cli } from '../harness/agent.mjs';
import { uniq, isRoot } from '../harness/exec.mjs';
import { addNetns, delNetns } from '../harness/netns.mjs';

const run = isRoot ? describe : describe.skip;

describe('nsm-agent --help', () => {
  const commands = ['run', 'status', 'connect', 'disconnect', 'services', 'endpoints', 'apply', 'delete', 'reload', 'unit', 'demo', 'version'];
  it.each(commands)('%s --help and -h print its own usage and exit 0', (command) => {
    for (const flag of ['--help', '-h']) {
      const r = cli('/nonexistent/agent.sock', [command, flag]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^usage: nsm-agent ${command}\\b`));
    }
  });

  it('identity --help and -h too', () => {
    for (const flag of ['--help', '-h']) {
      const r = cli(undefined, ['identity', flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/create-ca/);
    }
  });

  it('a usage error shows the command`s own usage and exits 2', () => {
    const r = cli(undefined, ['connect']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/connect needs exactly one URL\n\nusage: nsm-agent connect URL/);
  });
});

run('the CLI against an agent', () => {
  const nse = uniq('clie');
  let agent: RunningAgent;
  let dir: string;
  const manifest = (matches: unknown[]) =>
    YAML.stringify({ apiVersion: 'networkservicemesh.io/v1', kind: 'NetworkService', metadata: { name: 'clisvc' }, spec: { payload: 'IP', matches } });
  const route = (app: string) => [{ source_selector: {}, routes: [{ destination_selector: { app } }] }];

  beforeAll(async () => {
    addNetns(nse);
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-cli-'));
    agent = await startAgent({ name: 'host-cli', endpoints: [{ name: 'cli-ep', services: ['clisvc'], cidr: '172.16.81.0/30', netns: nse, labels: { app: 'a' } }] });
  });

  afterAll(async () => {
    await stopAll();
    delNetns(nse);
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes --socket before or after the command', () => {
    for (const args of [['--socket', agent.socket, 'status', '--json'], ['status', '--json', '--socket', agent.socket], [`--socket=${agent.socket}`, 'status', '--json']]) {
      const r = cli(undefined, args);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).name).toBe('host-cli');
    }
  });

  it('status answers the same on the systemd socket as over gRPC, which it falls back to', () => {
    const nsc = uniq('clic');
    addNetns(nsc);
    try {
      const c = cli(agent.socket, ['connect', 'kernel://clisvc/nsm-1', '--netns', nsc, '--id', `${nsc}-c`]);
      expect(c.code, c.stderr).toBe(0);
      // Counters move between two calls; everything else is the same.
      const status = () => {
        const r = cli(agent.socket, ['status', '--json']);
        expect(r.code, r.stderr).toBe(0);
        const s = JSON.parse(r.stdout);
        for (const conn of s.connections) conn.traffic = conn.traffic && { side: conn.traffic.side };
        return s;
      };
      const onSystemdSocket = status();
      expect(onSystemdSocket.connections.map((x: { id: string; state: string }) => [x.id, x.state])).toEqual([[`${nsc}-c`, 'UP']]);
      const systemdSocket = path.join(path.dirname(agent.socket), 'systemd.sock');
      renameSync(systemdSocket, `${systemdSocket}.away`);
      try {
        expect(status()).toEqual(onSystemdSocket);
      } finally {
        renameSync(`${systemdSocket}.away`, systemdSocket);
      }
      expect(cli(agent.socket, ['disconnect', `${nsc}-c`]).code).toBe(0);
    } finally {
      delNetns(nsc);
    }
  });

  it('apply configures the service the endpoint registered, then says unchanged; delete removes it', () => {
    const f = path.join(dir, 'svc.yaml');
    writeFileSync(f, manifest(route('a')));
    let r = agent.cli(['apply', '-f', f]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('networkservice/clisvc configured');
    r = agent.cli(['apply', '-f', f]);
    expect(r.stdout.trim()).toBe('networkservice/clisvc unchanged');
    writeFileSync(f, manifest(route('b')));
    expect(agent.cli(['apply', '-f', f]).stdout.trim()).toBe('networkservice/clisvc configured');
    expect(agent.cliJson(['services']).find((s: any) => s.name === 'clisvc').matches[0].routes[0].destination_selector).toEqual({ app: 'b' });

    r = agent.cli(['delete', '-f', f]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('networkservice/clisvc deleted');
    expect(agent.cliJson(['services']).map((s: any) => s.name)).not.toContain('clisvc');
    writeFileSync(f, manifest([]).replace('clisvc', 'other-svc'));
    expect(agent.cli(['apply', '-f', f]).stdout.trim()).toBe('networkservice/other-svc created');
    r = agent.cli(['delete', 'service', 'other-svc', 'never-was']);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n')).toEqual(['networkservice/other-svc deleted', 'networkservice/never-was not found']);
  });

  it('refuses a manifest file of megabytes before parsing it', () => {
    const f = path.join(dir, 'big.yaml');
    writeFileSync(f, manifest([]) + `# ${'x'.repeat(3 * 1024 * 1024)}\n`);
    const r = agent.cli(['apply', '-f', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${f}: the file is larger than 1048576 bytes (1 MiB), the most a manifest file may have (INVALID_ARGUMENT from this agent)`);
  });

  it('reload --json prints JSON on failure too; a missing endpoint netns changes nothing', () => {
    const cfg = YAML.parse(YAML.stringify({ name: 'host-cli', logLevel: 'debug', stateDir: agent.dir, listen: { unix: agent.socket } }));
    writeFileSync(agent.file, YAML.stringify({ ...cfg, endpoints: [{ name: 'cli-ep', services: ['clisvc'], cidr: '172.16.81.0/30', netns: 'nsmt-never-made' }] }));
    const r = agent.cli(['reload', '--json']);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.error.code).toBe('INVALID_ARGUMENT');
    expect(out.error.message).toContain('endpoints[0].netns: network namespace /run/netns/nsmt-never-made of endpoint cli-ep does not exist');
    expect(agent.cliJson(['status']).endpoints.map((e: any) => e.netns)).toEqual([nse]);
    writeFileSync(agent.file, 'name: [broken\n');
    const y = JSON.parse(agent.cli(['reload', '--json']).stdout);
    expect(y.error.message).toMatch(/line \d+, column \d+: invalid YAML: /);
    expect(y.error.message).not.toMatch(/column \d+:\s*$/);
  });
});

run('an endpoint whose namespace went away', () => {
  const nse = uniq('clig');
  const nsc = uniq('clic');
  let agent: RunningAgent;

  beforeAll(async () => {
    addNetns(nse);
    addNetns(nsc);
    agent = await startAgent({ name: 'host-gone', endpoints: [{ name: 'gone-ep', services: ['gonesvc'], cidr: '172.16.82.0/30', netns: nse }] });
  });

  afterAll(async () => {
    await stopAll();
    delNetns(nse);
    delNetns(nsc);
  });

  it('is FAILED_PRECONDITION naming the endpoint, not the client`s NETNS_NOT_FOUND', () => {
    delNetns(nse);
    const r = agent.cli(['connect', 'kernel://gonesvc/nsm-1', '--netns', nsc]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('NETNS_NOT_FOUND');
    expect(r.stderr).toContain(`endpoint gone-ep's network namespace /run/netns/${nse} does not exist`);
    expect(r.stderr).toContain('(FAILED_PRECONDITION from this agent)');
  });
});

run('agent.yaml checked on the host at start', () => {
  it('exits 2 naming the key when an endpoint`s netns does not exist', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-cfgns-'));
    try {
      const f = path.join(dir, 'agent.yaml');
      const socket = path.join(dir, 'agent.sock');
      writeFileSync(f, YAML.stringify({ stateDir: dir, listen: { unix: socket }, endpoints: [{ name: 'a', services: ['s'], cidr: '10.9.0.0/30', netns: 'nsmt-never-made' }] }));
      const r = cli(undefined, ['run', '--config', f]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${f}: endpoints[0].netns: network namespace /run/netns/nsmt-never-made of endpoint a does not exist`);
      expect(existsSync(socket)).toBe(false);
      writeFileSync(f, YAML.stringify({ stateDir: dir, listen: { unix: socket }, endpoints: [{ name: 'a', services: ['s'], cidr: '10.9.0.1/32' }] }));
      const p = cli(undefined, ['run', '--config', f]);
      expect(p.code).toBe(2);
      expect(p.stderr).toContain('endpoints[0].cidr: 10.9.0.1/32 can never hold a connection');
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
