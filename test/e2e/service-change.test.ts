/**
 * End to end, as root with real namespaces: a network service whose matches change
 * (`nsm-agent apply` of the edited manifest) closes the connections whose endpoint no longer
 * matches, and their clients reselect an endpoint that does (upstream's
 * change-nse-dynamically, blue and green); a connection whose endpoint still matches keeps
 * its interface and addresses.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAgent, stopAll, type RunningAgent } from '../harness/agent.mjs';
import { uniq, isRoot, until } from '../harness/exec.mjs';
import { addNetns, delNetns, links, ping } from '../harness/netns.mjs';

const run = isRoot ? describe : describe.skip;

/** The manifest: clients labelled app=<a> go to color <a's>, app=<b> to color <b's>. */
function manifest(a: string, b: string): string {
  const match = (app: string, color: string) => `    - source_selector: {app: ${app}}\n      routes:\n        - destination_selector: {color: ${color}}\n`;
  return `apiVersion: networkservicemesh.io/v1\nkind: NetworkService\nmetadata: {name: cnd}\nspec:\n  payload: IP\n  matches:\n${match('a', a)}${match('b', b)}`;
}

run('a network service whose matches change (one agent)', () => {
  const blue = uniq('scb');
  const green = uniq('scg');
  const nscA = uniq('sca');
  const nscB = uniq('scc');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-svcchange-'));
  const file = path.join(dir, 'ns.yaml');
  let agent: RunningAgent;

  // A reselected connection shows the state its reselect carried (RESELECT_REQUESTED) until its next refresh.
  type Conn = { clientId: string; state: string; endpoint: string; srcIps: string[] };
  const conn = (id: string): Conn | undefined => agent.cliJson(['status']).connections.find((c: Conn) => c.clientId === id);
  const ifindex = (ns: string) => links(ns).find((l) => l.ifname === 'nsm-1')?.ifindex;

  beforeAll(async () => {
    for (const ns of [blue, green, nscA, nscB]) addNetns(ns);
    agent = await startAgent({
      name: 'host-s',
      endpoints: [
        { name: 'nse-blue', services: ['cnd'], labels: { color: 'blue' }, cidr: '172.16.2.100/30', netns: blue },
        { name: 'nse-green', services: ['cnd'], labels: { color: 'green' }, cidr: '172.16.1.100/30', netns: green },
      ],
    });
    writeFileSync(file, manifest('blue', 'blue'));
    const r = agent.cli(['apply', '-f', file]);
    expect(r.code, r.stderr).toBe(0);
  });

  afterAll(async () => {
    await stopAll();
    for (const ns of [blue, green, nscA, nscB]) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it('both clients reach blue at first', () => {
    for (const [ns, app] of [[nscA, 'a'], [nscB, 'b']] as const) {
      const c = agent.cliJson(['connect', `kernel://cnd/nsm-1?app=${app}`, '--netns', ns, '--id', `sc-${app}`]);
      expect(c.endpoint).toBe('nse-blue');
    }
    expect(ping(nscA, '172.16.2.100', 1)).toBe(true);
    expect(ping(nscB, '172.16.2.102', 1)).toBe(true);
  });

  it('after the apply, only the client whose match now names green moves there; the other is untouched', async () => {
    const untouched = { ifindex: ifindex(nscB), src: conn('sc-b')?.srcIps };
    writeFileSync(file, manifest('green', 'blue'));
    const r = agent.cli(['apply', '-f', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/cnd.*configured/);

    const moved = await until(() => {
      const c = conn('sc-a');
      return c && c.state !== 'DOWN' && c.endpoint === 'nse-green' ? c : undefined;
    }, 15_000, 200);
    expect(moved, JSON.stringify(conn('sc-a'))).toBeDefined();
    expect(moved!.srcIps).toEqual(['172.16.1.101/32']);
    expect(await until(() => ping(nscA, '172.16.1.100', 1), 5_000, 200)).toBe(true);
    // blue's end of the first vWire is gone, nothing of it left
    expect(links(blue).filter((l) => l.ifname !== 'lo')).toHaveLength(1);

    const b = conn('sc-b');
    expect(b).toMatchObject({ state: 'UP', endpoint: 'nse-blue', srcIps: untouched.src });
    expect(ifindex(nscB)).toBe(untouched.ifindex);
    expect(ping(nscB, '172.16.2.102', 1)).toBe(true);
  }, 40_000);

  it('and back: an apply that sends it to blue again moves it back', async () => {
    writeFileSync(file, manifest('blue', 'blue'));
    expect(agent.cli(['apply', '-f', file]).code).toBe(0);
    const back = await until(() => {
      const c = conn('sc-a');
      return c && c.state !== 'DOWN' && c.endpoint === 'nse-blue' ? c : undefined;
    }, 15_000, 200);
    expect(back).toBeDefined();
    expect(back!.srcIps).toEqual(['172.16.2.101/32']);
    expect(await until(() => ping(nscA, '172.16.2.100', 1), 5_000, 200)).toBe(true);
    expect(links(green).filter((l) => l.ifname !== 'lo')).toHaveLength(0);
    for (const id of ['sc-a', 'sc-b']) expect(agent.cli(['disconnect', id]).code).toBe(0);
  }, 40_000);
});
