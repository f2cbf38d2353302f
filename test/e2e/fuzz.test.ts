/**
 * A bounded fuzz test (root, namespaces): random and mutated NSM Requests and Closes, registry
 * messages and systemd-socket messages sent to a running agent, raw bytes on its gRPC socket,
 * and malformed agent.yaml and manifests parsed in-process. The agent must never crash, must
 * answer each call with a status code (never INTERNAL or UNKNOWN: nothing a caller sends is a
 * bug), keep serving (a normal connect works afterwards) and leave no interfaces behind.
 *
 * The PRNG is seeded; the seed is printed, and FUZZ_SEED=<seed> repeats a run.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import YAML from 'yaml';
import { startAgent, stopAll, type RunningAgent } from '../harness/agent.mjs';
import { uniq, isRoot } from '../harness/exec.mjs';
import { addNetns, delNetns, links } from '../harness/netns.mjs';
import { NsmClient, kernelRequest, agentClient, api } from '../harness/clients.mjs';
import { ConfigError, loadConfig } from '../../src/agent/config';
import { parseManifests } from '../../src/agent/manifest';
import { AgentError, ERROR_CODES } from '../../src/core/errors';

const run = isRoot ? describe : describe.skip;

const SEED = Number(process.env['FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: small, fast, good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Fuzz {
  constructor(readonly rand: () => number) {}
  int(n: number): number {
    return Math.floor(this.rand() * n);
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
  /** Strings a parser or a kernel might choke on. */
  string(): string {
    const special = ['', ' ', '..', '/', '../../etc/passwd', 'a'.repeat(16), 'a'.repeat(300), 'x'.repeat(5000), '\u0000', '\n', 'ünï', '%zz', 'file:///dev/null', 'file://rel', 'inode://4/4026531992', 'tcp://', 'unix://', 'kernel://', '{{.nodeName}}', '-1', '1e309', 'IP', 'KERNEL', 'WIREGUARD', 'VXLAN', 'LOCAL', 'REMOTE'];
    if (this.rand() < 0.5) return this.pick(special);
    const alphabet = 'abcXYZ019-_./:@%?=& \t\u00e9\u4e2d\u0001';
    let s = '';
    for (let i = this.int(24); i > 0; i--) s += alphabet[this.int(alphabet.length)];
    return s;
  }
  /** Any JSON value. */
  value(depth = 0): unknown {
    const r = this.int(depth > 2 ? 4 : 7);
    if (r === 0) return this.string();
    if (r === 1) return this.pick([0, -1, 1, 2 ** 53, 0.5, 65536]);
    if (r === 2) return this.rand() < 0.5;
    if (r === 3) return null;
    if (r === 4) return Array.from({ length: this.int(4) }, () => this.value(depth + 1));
    return Object.fromEntries(Array.from({ length: this.int(4) }, () => [this.string().slice(0, 12) || 'k', this.value(depth + 1)]));
  }
  /**
   * A copy of `obj` with 1-3 type-preserving changes (strings to other strings, numbers to other
   * numbers, maps gain or lose keys, lists gain, lose or repeat items), so it still encodes.
   */
  mutate<T>(obj: T): T {
    const copy = JSON.parse(JSON.stringify(obj));
    for (let n = 1 + this.int(3); n > 0; n--) this.mutateOne(copy);
    return copy;
  }
  private mutateOne(root: any): void {
    let node = root;
    for (let depth = 0; depth < 6; depth++) {
      const keys: (string | number)[] = Array.isArray(node) ? node.map((_: unknown, i: number) => i) : Object.keys(node);
      if (!keys.length || this.rand() < 0.25) break;
      const k = this.pick<string | number>(keys);
      const v = node[k];
      if (v !== null && typeof v === 'object' && this.rand() < 0.7) {
        node = v;
        continue;
      }
      if (typeof v === 'string') node[k] = this.string();
      else if (typeof v === 'number') node[k] = this.pick([0, 1, 2, 7, 255, 65535]);
      else if (typeof v === 'boolean') node[k] = !v;
      return;
    }
    if (Array.isArray(node)) {
      if (node.length && this.rand() < 0.5) node.splice(this.int(node.length), 1);
      else if (node.length) node.push(JSON.parse(JSON.stringify(this.pick(node))));
    } else if (node && typeof node === 'object') {
      const keys = Object.keys(node);
      const strs = keys.filter((k) => typeof node[k] === 'string');
      if (strs.length && this.rand() < 0.5) node[this.pick(strs)] = this.string();
      else if (keys.length && this.rand() < 0.3) delete node[this.pick(keys)];
      else if (!keys.length || keys.every((k) => typeof node[k] === 'string')) node[this.string().slice(0, 20) || 'k'] = this.string();
    }
  }
  /** Byte-level damage to a text: insert, delete, repeat or swap pieces. */
  damage(text: string): string {
    let t = text;
    for (let n = 1 + this.int(4); n > 0; n--) {
      const at = this.int(t.length + 1);
      const r = this.int(5);
      if (r === 0) t = t.slice(0, at) + this.pick([':', '-', '[', '{', '"', "'", '\t', '\n', '  ', '*a', '&a', '!!binary ', '? ', '%YAML 9\n', '---\n']) + t.slice(at);
      else if (r === 1) t = t.slice(0, at) + t.slice(at + this.int(20));
      else if (r === 2) t = t.slice(0, at) + t.slice(at, at + this.int(40)).repeat(2) + t.slice(at);
      else if (r === 3) t = t.slice(0, at) + this.string() + t.slice(at);
      else t = t.split('\n').reverse().join('\n');
    }
    return t;
  }
}

/** The gRPC code of a settled call: undefined when it succeeded. */
async function codeOf(p: Promise<unknown>): Promise<{ code?: number; value?: any; details?: string; unsent?: boolean }> {
  try {
    return { value: await p };
  } catch (err) {
    const e = err as grpc.ServiceError;
    // grpc-js could not encode the mutated message: nothing reached the agent
    if (/^Request message serialization failure/.test(e.details ?? '')) return { unsent: true };
    return { code: typeof e.code === 'number' ? e.code : -1, details: e.details ?? String(err) };
  }
}

const BAD = new Set([grpc.status.INTERNAL, grpc.status.UNKNOWN, -1]);

run('fuzz', () => {
  const f = new Fuzz(prng(SEED));
  const tag = uniq('fz');
  const nse = `${tag}-e`;
  const nsc = `${tag}-c`;
  let agent: RunningAgent;
  let dir: string;
  const seen = new Map<string, number>();
  const count = (what: string, code: number | undefined) => {
    const k = `${what} ${code === undefined ? 'OK' : grpc.status[code]}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  };

  beforeAll(async () => {
    process.stdout.write(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} repeats this run)\n`);
    addNetns(nse);
    addNetns(nsc);
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-fuzz-'));
    agent = await startAgent({ name: 'host-fz', endpoints: [{ name: 'fz-ep', services: ['fzsvc'], cidr: '172.16.91.0/28', netns: nse, labels: { app: 'fz' } }] });
  });

  afterAll(async () => {
    process.stdout.write(`fuzz seed ${SEED}: ${[...seen].map(([k, v]) => `${k}=${v}`).join(', ')}\n`);
    await stopAll();
    delNetns(nse);
    delNetns(nsc);
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses malformed agent.yaml and manifests into our errors only', () => {
    const cfgText = YAML.stringify({
      name: 'host-x',
      listen: { unix: '/run/x/agent.sock', tcp: '0.0.0.0:5001' },
      wireguard: { ports: '51820-51830' },
      heal: { livenessInterval: '200ms' },
      registry: { url: 'tcp://10.0.0.1:5002', expiration: '1m' },
      policy: [{ service: 's', allow: ['spiffe://td/*'] }],
      endpoints: [{ name: 'a', services: ['s'], cidr: '10.0.0.0/30', netns: 'x', labels: { k: 'v' }, interface: 'nsm-a', excludedPrefixes: ['10.0.0.0/32'] }],
      connections: [{ url: 'kernel://s/nsm-1', netns: 'c', id: 'c1' }],
    });
    const manifest = YAML.stringify({
      apiVersion: 'networkservicemesh.io/v1',
      kind: 'NetworkService',
      metadata: { name: 'svc' },
      spec: { payload: 'IP', matches: [{ source_selector: { a: 'b' }, fallthrough: true, routes: [{ destination_selector: { app: 'x' }, weight: 1 }] }] },
    });
    const file = path.join(dir, 'agent.yaml');
    for (let i = 0; i < 300; i++) {
      const text = i % 2 ? f.damage(cfgText) : YAML.stringify(f.mutate(YAML.parse(cfgText)));
      writeFileSync(file, text);
      try {
        loadConfig(file);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw new Error(`agent.yaml (seed ${SEED}, case ${i}): ${String(err)}\n${text}`);
        expect(err.message).not.toMatch(/must NOT|must have|line \d+, column \d+:\s*$/);
      }
      const m = i % 2 ? f.damage(manifest) : YAML.stringify(f.mutate(YAML.parse(manifest)));
      try {
        parseManifests(m, 'm.yaml');
      } catch (err) {
        if (!(err instanceof AgentError) || err.code !== 'INVALID_ARGUMENT') throw new Error(`manifest (seed ${SEED}, case ${i}): ${String(err)}\n${m}`);
      }
    }
  });

  it('answers random and mutated NSM Requests and Closes with a code, never INTERNAL', async () => {
    const client = new NsmClient(agent.socket, { timeoutMs: 5_000 });
    const made: any[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const base = kernelRequest(`fz-${i}`, 'fzsvc', nsc, `nsm-${i}`, { app: 'fz' }) as any;
        base.connection.path = { index: 0, path_segments: [] };
        base.mechanism_preferences.push({ cls: 'REMOTE', type: 'WIREGUARD', parameters: { src_ip: '10.0.0.1', src_port: '51820' } });
        const req = f.mutate(base);
        // never into the host's own namespace: a fuzz case must not touch the host's links
        const pref = req.mechanism_preferences?.[0];
        if (pref?.parameters?.inodeURL && !String(pref.parameters.inodeURL).includes(tag)) pref.parameters.inodeURL = `file:///run/netns/${f.pick([nsc, 'nope', '..', ''])}`;
        const r = await codeOf(client.request(req));
        if (r.unsent) continue;
        count('Request', r.code);
        if (r.code !== undefined && BAD.has(r.code)) throw new Error(`Request (seed ${SEED}, case ${i}) -> ${grpc.status[r.code]}: ${r.details}\n${JSON.stringify(req)}`);
        if (r.value) made.push(r.value);
        if (i % 10 === 0) {
          const c = await codeOf(client.close(f.mutate({ id: `fz-${i}`, network_service: 'fzsvc', mechanism: base.mechanism_preferences[0], path: base.connection.path })));
          if (!c.unsent) count('Close', c.code);
          if (c.code !== undefined && BAD.has(c.code)) throw new Error(`Close (seed ${SEED}, case ${i}) -> ${grpc.status[c.code]}: ${c.details}`);
        }
      }
    } finally {
      for (const c of made) await client.close(c).catch(() => {});
      client.dispose();
    }
  }, 60_000);

  it('answers random and mutated registry messages with a code, never INTERNAL', async () => {
    const a = api();
    const target = `unix://${agent.socket}`;
    const nseReg: any = new a.reg.registry.NetworkServiceEndpointRegistry(target, grpc.credentials.createInsecure());
    const nsReg: any = new a.reg.registry.NetworkServiceRegistry(target, grpc.credentials.createInsecure(), { channelOverride: nseReg.getChannel() });
    const unary = (c: any, m: string, req: unknown) => new Promise((res, rej) => c[m](req, { deadline: Date.now() + 5_000 }, (e: Error | null, v: unknown) => (e ? rej(e) : res(v))));
    const find = (c: any, req: unknown) =>
      new Promise((res, rej) => {
        const call = c.Find(req, { deadline: Date.now() + 5_000 });
        call.on('data', () => {});
        call.on('end', res);
        call.on('error', rej);
      });
    const registered: [any, string, any][] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const nse = { name: `fz-other-${i}`, url: 'tcp://127.0.0.1:5999', network_service_names: ['fz-other-svc'], network_service_labels: { 'fz-other-svc': { labels: { app: 'x' } } } };
        const ns = { name: `fz-ns-${i}`, payload: 'IP', matches: [{ source_selector: { a: 'b' }, routes: [{ destination_selector: { app: 'x' }, weight: 1 }], fallthrough: false }] };
        const which = f.int(6);
        const [client, method, req]: [any, string, any] =
          which === 0 ? [nseReg, 'Register', f.mutate(nse)]
          : which === 1 ? [nsReg, 'Register', f.mutate(ns)]
          : which === 2 ? [nseReg, 'Find', f.mutate({ network_service_endpoint: nse, watch: false })]
          : which === 3 ? [nsReg, 'Find', f.mutate({ network_service: ns, watch: false })]
          : which === 4 ? [nseReg, 'Unregister', f.mutate(nse)]
          : [nsReg, 'Unregister', f.mutate(ns)];
        if (req.name === 'fz-ep' || req.name === 'fzsvc' || req.network_service_endpoint?.name === 'fz-ep') continue; // the agent's own
        if (method === 'Find') req.watch = false;
        const r = await codeOf(method === 'Find' ? find(client, req) : unary(client, method, req));
        if (r.unsent) continue;
        count(`registry ${method}`, r.code);
        if (r.code !== undefined && BAD.has(r.code)) throw new Error(`registry ${method} (seed ${SEED}, case ${i}) -> ${grpc.status[r.code]}: ${r.details}\n${JSON.stringify(req)}`);
        if (r.code === undefined && method === 'Register') registered.push([client, 'Unregister', r.value]);
      }
    } finally {
      for (const [c, m, v] of registered) await unary(c, m, v).catch(() => {});
      grpc.Client.prototype.close.call(nseReg);
    }
  }, 60_000);

  it('answers random systemd-socket messages with an error code, and raw bytes on the gRPC socket do no harm', async () => {
    const control = path.join(path.dirname(agent.socket), 'systemd.sock');
    const ask = (line: string) =>
      new Promise<string>((resolve) => {
        let buf = '';
        const s = net.connect(control);
        s.setEncoding('utf8');
        s.on('connect', () => s.write(line + '\n'));
        s.on('data', (d: string) => (buf += d));
        s.on('close', () => resolve(buf));
        s.on('error', () => resolve(buf));
        setTimeout(() => s.destroy(), 5_000);
      });
    // Names as long as systemd allows are kept in the state directory; longer ones are refused.
    const longest = `${tag}-${'l'.repeat(255 - tag.length - 9)}.service`;
    expect(longest).toHaveLength(255);
    expect(JSON.parse(await ask(JSON.stringify({ op: 'unit-start', spec: { unit: longest, netns: 'host', connect: [] } })))).toMatchObject({ ok: true });
    expect(readdirSync(path.join(path.dirname(agent.socket), 'units')).filter((n) => n.startsWith(tag))).toHaveLength(1);
    expect(JSON.parse(await ask(JSON.stringify({ op: 'unit-stop', unit: longest })))).toMatchObject({ ok: true, result: { stopped: true } });
    expect(readdirSync(path.join(path.dirname(agent.socket), 'units')).filter((n) => n.startsWith(tag))).toHaveLength(0);
    expect(JSON.parse(await ask(JSON.stringify({ op: 'unit-stop', unit: 'x'.repeat(5000) })))).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
    const spec = { unit: `${tag}.service`, netns: 'host', connect: [{ url: 'kernel://fz-nope/nsm-u', id: `${tag}.service/nsm-u`, ifname: 'nsm-u' }] };
    for (let i = 0; i < 100; i++) {
      const which = f.int(4);
      const msg =
        which === 0 ? f.string().replace(/\n/g, ' ')
        : which === 1 ? JSON.stringify(f.value())
        : which === 2 ? JSON.stringify(f.mutate({ op: 'unit-start', spec }))
        : JSON.stringify(f.mutate({ op: f.pick(['unit-stop', 'units', 'status', 'nope']), unit: `${tag}.service` }));
      const started = Date.now();
      const answer = await ask(msg);
      if (process.env['FUZZ_DEBUG'] && Date.now() - started > 1000) process.stdout.write(`slow ${Date.now() - started} ms: ${msg.slice(0, 300)} -> ${answer}\n`);
      let parsed: { ok: boolean; code?: string };
      try {
        parsed = JSON.parse(answer.split('\n')[0]!);
      } catch {
        throw new Error(`systemd socket (seed ${SEED}, case ${i}): no JSON answer to ${msg.slice(0, 200)}: ${answer}`);
      }
      count('systemd socket', parsed.ok ? undefined : grpc.status[ERROR_CODES[parsed.code as keyof typeof ERROR_CODES]] === undefined ? -1 : ERROR_CODES[parsed.code as keyof typeof ERROR_CODES]);
      if (!parsed.ok && (['INTERNAL', 'UNKNOWN', 'DATAPLANE'].includes(parsed.code!) || !(parsed.code! in ERROR_CODES)))
        throw new Error(`systemd socket (seed ${SEED}, case ${i}): ${msg.slice(0, 500)} -> ${answer.slice(0, 500)}`);
    }
    await ask(JSON.stringify({ op: 'unit-stop', unit: `${tag}.service` }));
    // Raw bytes, half of them after the HTTP/2 preface; all at once, each cut after a second.
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    const junk = Array.from({ length: 20 }, (_, i) => {
      const bytes = Buffer.from(Array.from({ length: 1 + f.int(4096) }, () => f.int(256)));
      return i % 2 ? Buffer.concat([preface, bytes]) : bytes;
    });
    await Promise.all(
      junk.map(
        (bytes) =>
          new Promise<void>((resolve) => {
            const s = net.connect(agent.socket);
            s.on('connect', () => s.end(bytes));
            s.on('error', () => resolve());
            s.on('close', () => resolve());
            setTimeout(() => (s.destroy(), resolve()), 1_000);
          }),
      ),
    );
  }, 60_000);

  it('is still running and serving, and left no interfaces behind', async () => {
    expect(agent.proc.exitCode).toBeNull();
    const c = agentClient(agent.socket, 20_000);
    try {
      const held = await c.connect({ url: 'kernel://fzsvc/nsm-ok', netns: nsc, id: 'fz-ok' });
      expect(held.interface).toBe('nsm-ok');
      expect(links(nsc).map((l: { ifname: string }) => l.ifname).sort()).toEqual(['lo', 'nsm-ok']);
      await c.disconnect({ id: 'fz-ok' });
    } finally {
      c.dispose();
    }
    expect(links(nsc).map((l: { ifname: string }) => l.ifname)).toEqual(['lo']);
    expect(links(nse).map((l: { ifname: string }) => l.ifname)).toEqual(['lo']);
    const status = await agentClient(agent.socket).status();
    expect(status.connections).toEqual([]);
  }, 60_000);
});
