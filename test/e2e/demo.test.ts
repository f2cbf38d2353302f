/** `nsm-agent demo`: three hosts, a WireGuard vWire, pings both ways, and nothing left after. */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { BIN } from '../harness/agent.mjs';
import { isRoot, sh } from '../harness/exec.mjs';

const run = isRoot ? describe : describe.skip;

run('nsm-agent demo', () => {
  it('builds three hosts, connects across them, pings, prints status and removes everything', () => {
    // Orphans (parent gone) are what the demo could leave; other runs' devices have parents.
    const orphans = () => sh('pgrep', ['-x', 'wireguard-go', '-P', '1']).stdout.trim();
    const before = orphans();
    const r = spawnSync(process.execPath, [BIN, 'demo'], { encoding: 'utf8', timeout: 90_000 });
    expect(r.stdout).toMatch(/host-c: registry on tcp:\/\/10\.222\.0\.3:5002/);
    expect(r.stdout).toMatch(/nsm-demo-nsc -> 172\.16\.1\.100: 3 packets transmitted, 3 received/);
    expect(r.stdout).toMatch(/nsm-demo-nse -> 172\.16\.1\.101: 3 packets transmitted, 3 received/);
    expect(r.stdout).toMatch(/demo-1\s+icmp-responder\s+UP\s+WIREGUARD to host-b/);
    expect(r.stdout).toMatch(/demo passed/);
    expect(r.status).toBe(0);
    const left = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith('nsm-demo')) : [];
    expect(left).toEqual([]);
    expect(orphans()).toBe(before);
  }, 120_000);
});
