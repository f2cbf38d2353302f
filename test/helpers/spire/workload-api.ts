/**
 * A Workload API server for tests that behaves like a SPIRE agent where it matters:
 * - gRPC without TLS on a unix socket in a fresh temp dir (stale socket removed, mode 0777);
 * - every call must carry exactly one `workload.spiffe.io: true` header, else INVALID_ARGUMENT
 *   "security header missing from request", checked before anything else;
 * - attestation is modelled as configuration: the entries set with `setEntries` are what any
 *   caller gets; none → PERMISSION_DENIED "no identity issued";
 * - a local EC P-256 CA per trust domain (optionally with an intermediate), SVIDs in SPIRE's
 *   profile (src/spire/ca.ts), encoded like SPIRE (concatenated DER, PKCS#8 DER, federated
 *   bundles keyed `spiffe://td` and only for trust domains the entry federates with);
 * - FetchX509SVID sends the full state at once and again on every change (no de-duplication);
 *   FetchX509Bundles de-duplicates; SVIDs are rotated at half their lifetime ±10 %;
 * - the JWT profile too (the agent does not use it, but it is mandatory for a Workload API):
 *   FetchJWTSVID (audience required; ES256 with `kid`, `aud` as a list, 5 min), FetchJWTBundles
 *   (standard JWKS per trust domain, de-duplicated), ValidateJWTSVID (claims as a Struct).
 *
 * Fault hooks: revoke(), breakStreams(), failNext(), stop()/restart(), pushMalformed(),
 * root rotation in three steps. `close()` removes everything it created.
 *
 * Over 400 lines: one fake server, whose handlers share its entries, CAs and streams.
 */
import * as grpc from '@grpc/grpc-js';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { KeyObject, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { generateKey, KeyType, LocalCa } from '../../../src/spire/ca';
import type { X509Svid } from '../../../src/spire/svid';
import { SECURITY_HEADER, workloadServiceDefinition } from '../../../src/spire/workload';
import { isSpiffeId } from '../../../src/spire/id';
import { audienceOf, checkExpiry, decodeJwt, signEs256, verifyEs256 } from '../../../src/spire/token';
import { toDer } from '../../../src/spire/x509';

export interface Entry {
  id: string;
  /** X.509-SVID lifetime, ms (default 10 s). */
  ttlMs?: number;
  hint?: string;
  keyType?: KeyType;
  /** Trust domains whose bundles this entry receives as federated bundles. */
  federatesWith?: string[];
}

interface TrustDomain {
  /** Issues SVIDs (the root, or an intermediate under it). */
  issuer: LocalCa;
  /** Signs JWT-SVIDs. */
  jwt: { kid: string; key: KeyObject };
  /** Roots published in the bundle (two during a root rotation). */
  roots: X509Certificate[];
}

type Stream = { kind: 'svid' | 'bundles' | 'jwt-bundles'; call: grpc.ServerWritableStream<unknown, unknown>; last?: string };

export interface WorkloadApiOptions {
  trustDomains?: string[];
  entries?: Entry[];
  /** Issue SVIDs from an intermediate CA (chain = leaf + intermediate). */
  intermediate?: boolean;
  /** Disable automatic rotation at half-life. */
  noRotation?: boolean;
  /**
   * Share the CAs of another double: two SPIRE agents (one per host) under the same SPIRE
   * server. Root rotation steps are announced only by the double they are called on.
   */
  sameCasAs?: FakeWorkloadApi;
}

const HEADER_MESSAGE = 'security header missing from request';

export class FakeWorkloadApi {
  readonly dir: string;
  readonly socketPath: string;
  /** `unix://` + socketPath: the SPIFFE_ENDPOINT_SOCKET value. */
  readonly address: string;
  /** Every call's method and the header values it carried. */
  readonly calls: { method: string; header: string[] }[] = [];
  /** How many FetchX509SVID messages were sent. */
  sent = 0;
  private server: grpc.Server | undefined;
  private readonly tds = new Map<string, TrustDomain>();
  private entries: Entry[];
  private svids = new Map<string, X509Svid>();
  private readonly streams = new Set<Stream>();
  private rotation: NodeJS.Timeout | undefined;
  private failures: { count: number; code: grpc.status; details: string } | undefined;

  private constructor(private readonly opts: WorkloadApiOptions) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'nsm-wlapi-'));
    this.socketPath = path.join(this.dir, 'api.sock');
    this.address = `unix://${this.socketPath}`;
    if (opts.sameCasAs) for (const [td, t] of opts.sameCasAs.tds) this.tds.set(td, t);
    else for (const td of opts.trustDomains ?? ['example.org']) this.addTrustDomain(td);
    this.entries = opts.entries ?? [];
  }

  static async start(opts: WorkloadApiOptions = {}): Promise<FakeWorkloadApi> {
    const api = new FakeWorkloadApi(opts);
    api.issueAll();
    await api.listen();
    return api;
  }

  addTrustDomain(td: string): void {
    if (this.tds.has(td)) return;
    const root = LocalCa.create({ trustDomain: td });
    const issuer = this.opts.intermediate ? root.intermediate() : root;
    const jwt = { kid: randomBytes(16).toString('hex'), key: generateKey().privateKey };
    this.tds.set(td, { issuer, roots: root.bundle(), jwt });
  }

  /** The published roots of a trust domain. */
  bundle(td: string): X509Certificate[] {
    return [...(this.tds.get(td)?.roots ?? [])];
  }

  /** The CA that issues SVIDs in `td` (for tests that mint extra certificates). */
  issuer(td: string): LocalCa {
    const t = this.tds.get(td);
    if (!t) throw new Error(`no trust domain ${td}`);
    return t.issuer;
  }

  /** The SVIDs currently served, by SPIFFE ID. */
  current(id: string): X509Svid | undefined {
    return this.svids.get(id);
  }

  /** Replaces the registration entries: new SVIDs are issued and pushed. */
  setEntries(entries: Entry[]): void {
    this.entries = entries;
    this.issueAll();
    this.pushAll();
  }

  /** Removes every entry: open X.509 streams end with PERMISSION_DENIED, as SPIRE does. */
  revoke(): void {
    this.entries = [];
    this.svids.clear();
    this.clearRotation();
    for (const s of [...this.streams]) {
      if (s.kind !== 'svid') continue;
      this.streams.delete(s);
      s.call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: 'no identity issued' });
    }
  }

  /** Re-issues every SVID now and pushes the new state. */
  rotate(): void {
    this.issueAll();
    this.pushAll();
  }

  /** Ends every open stream: cleanly (status OK) or with `code`. */
  breakStreams(code: grpc.status = grpc.status.OK, details = 'stream broken by test'): void {
    for (const s of [...this.streams]) {
      this.streams.delete(s);
      if (code === grpc.status.OK) s.call.end();
      else s.call.emit('error', { code, details });
    }
  }

  /** The next `count` calls (after the header check) fail with `code`. */
  failNext(count: number, code: grpc.status = grpc.status.UNAVAILABLE, details = 'workload attestation failed'): void {
    this.failures = { count, code, details };
  }

  /** Sends a message with a mandatory field empty on every SVID stream (clients must discard it). */
  pushMalformed(kind: 'no-svids' | 'no-key' | 'bad-chain' = 'no-svids'): void {
    for (const s of this.streams) {
      if (s.kind !== 'svid') continue;
      const msg = this.svidResponse();
      if (kind === 'no-svids') msg.svids = [];
      else if (kind === 'no-key' && msg.svids[0]) msg.svids[0].x509_svid_key = Buffer.alloc(0);
      else if (msg.svids[0]) msg.svids[0].x509_svid = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]);
      s.call.write(msg);
    }
  }

  /** Root rotation step 1: a new root is published next to the old one; SVIDs still come from the old. */
  prepareRootRotation(td: string): void {
    const t = this.must(td);
    const next = LocalCa.create({ trustDomain: td });
    this.pending.set(td, next);
    t.roots = [...t.roots, ...next.bundle()];
    this.pushAll();
  }

  /** Step 2: SVIDs are issued by the new root. */
  activateNewRoot(td: string): void {
    const t = this.must(td);
    const next = this.pending.get(td);
    if (!next) throw new Error('prepareRootRotation first');
    t.issuer = this.opts.intermediate ? next.intermediate() : next;
    this.issueAll();
    this.pushAll();
  }

  /** Step 3: the old root is dropped from the bundle. */
  dropOldRoot(td: string): void {
    const t = this.must(td);
    const next = this.pending.get(td);
    if (!next) throw new Error('prepareRootRotation first');
    t.roots = next.bundle();
    this.pending.delete(td);
    this.pushAll();
  }

  private readonly pending = new Map<string, LocalCa>();

  /** Stops serving: streams are cut and the socket disappears (a crashed agent). */
  async stop(): Promise<void> {
    this.clearRotation();
    for (const s of this.streams) s.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'agent stopped' });
    this.streams.clear();
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 200).unref();
      });
    }
    rmSync(this.socketPath, { force: true });
  }

  /** Serves again on the same socket with the same CAs and entries (fresh SVIDs). */
  async restart(): Promise<void> {
    await this.stop();
    this.issueAll();
    await this.listen();
  }

  /** Stops and removes the temp dir. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  // -------------------------------------------------------------------------------------

  private must(td: string): TrustDomain {
    const t = this.tds.get(td);
    if (!t) throw new Error(`no trust domain ${td}`);
    return t;
  }

  private async listen(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    const server = new grpc.Server();
    const stream = (kind: Stream['kind']) => (call: grpc.ServerWritableStream<unknown, unknown>) => this.onStream(kind, call);
    server.addService(workloadServiceDefinition(), {
      FetchX509SVID: stream('svid'),
      FetchX509Bundles: stream('bundles'),
      FetchJWTBundles: stream('jwt-bundles'),
      FetchJWTSVID: (call: grpc.ServerUnaryCall<{ audience: string[]; spiffe_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
        this.unary('FetchJWTSVID', call, cb, () => this.fetchJwt(call.request)),
      ValidateJWTSVID: (call: grpc.ServerUnaryCall<{ audience: string; svid: string }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
        this.unary('ValidateJWTSVID', call, cb, () => this.validateJwt(call.request)),
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${this.socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    chmodSync(this.socketPath, 0o777);
    this.server = server;
  }

  /** The checks every call goes through, in SPIRE's order; returns the refusal, if any. */
  private admit(method: string, md: grpc.Metadata): grpc.StatusObject | undefined {
    const header = md.get(SECURITY_HEADER).map(String);
    this.calls.push({ method, header });
    const refuse = (code: grpc.status, details: string) => ({ code, details, metadata: new grpc.Metadata() });
    if (header.length !== 1 || header[0] !== 'true') return refuse(grpc.status.INVALID_ARGUMENT, HEADER_MESSAGE);
    if (this.failures && this.failures.count > 0) {
      this.failures.count--;
      return refuse(this.failures.code, this.failures.details);
    }
    if (this.entries.length === 0) return refuse(grpc.status.PERMISSION_DENIED, 'no identity issued');
    return undefined;
  }

  private unary(method: string, call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>, fn: () => unknown): void {
    const refused = this.admit(method, call.metadata);
    if (refused) return cb(refused);
    try {
      cb(null, fn());
    } catch (err) {
      cb({ code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
    }
  }

  private fetchJwt(req: { audience: string[]; spiffe_id: string }) {
    if (!req.audience?.length) throw new Error('audience must be specified');
    if (req.spiffe_id && !isSpiffeId(req.spiffe_id)) throw new Error(`invalid requested SPIFFE ID: ${req.spiffe_id}`);
    const now = Math.floor(Date.now() / 1000);
    const svids = this.entries
      .filter((e) => !req.spiffe_id || e.id === req.spiffe_id)
      .map((e) => {
        const t = this.must(new URL(e.id).host).jwt;
        const svid = signEs256({ aud: req.audience, exp: now + 300, iat: now, sub: e.id }, t.key, { kid: t.kid });
        return { spiffe_id: e.id, svid, hint: e.hint ?? '' };
      });
    return { svids };
  }

  private validateJwt(req: { audience: string; svid: string }) {
    if (!req.audience) throw new Error('audience must be specified');
    if (!req.svid) throw new Error('svid must be specified');
    const jwt = decodeJwt(req.svid);
    const sub = String(jwt.claims.sub ?? '');
    if (!isSpiffeId(sub)) throw new Error('token has an invalid subject claim');
    const t = this.tds.get(new URL(sub).host);
    if (!t || jwt.header.kid !== t.jwt.kid) throw new Error('no bundle key for the token');
    verifyEs256(req.svid, t.jwt.key);
    checkExpiry(jwt.claims, Date.now());
    if (!audienceOf(jwt.claims).includes(req.audience)) throw new Error(`expected audience in ${JSON.stringify(audienceOf(jwt.claims))} (audience=${JSON.stringify(req.audience)})`);
    const value = (v: unknown): object =>
      Array.isArray(v) ? { listValue: { values: v.map(value) } } : typeof v === 'number' ? { numberValue: v } : { stringValue: String(v) };
    // SPIRE always renders aud as a list
    const claims = { ...jwt.claims, aud: audienceOf(jwt.claims) };
    return { spiffe_id: sub, claims: { fields: Object.fromEntries(Object.entries(claims).map(([k, v]) => [k, value(v)])) } };
  }

  private onStream(kind: Stream['kind'], call: grpc.ServerWritableStream<unknown, unknown>): void {
    const method = { svid: 'FetchX509SVID', bundles: 'FetchX509Bundles', 'jwt-bundles': 'FetchJWTBundles' }[kind];
    const refused = this.admit(method, call.metadata);
    if (refused) {
      call.emit('error', refused);
      return;
    }
    const s: Stream = { kind, call };
    this.streams.add(s);
    call.on('cancelled', () => this.streams.delete(s));
    call.on('close', () => this.streams.delete(s));
    this.send(s);
  }

  private send(s: Stream): void {
    if (s.kind === 'svid') {
      this.sent++;
      s.call.write(this.svidResponse());
      return;
    }
    const msg = s.kind === 'bundles' ? this.bundlesResponse() : this.jwtBundlesResponse();
    const key = JSON.stringify(Object.entries(msg.bundles).map(([k, v]) => [k, v.toString('base64')]));
    if (key === s.last) return; // SPIRE de-duplicates bundle streams
    s.last = key;
    s.call.write(msg);
  }

  private pushAll(): void {
    for (const s of this.streams) this.send(s);
  }

  private svidResponse() {
    const federated: Record<string, Buffer> = {};
    const svids = this.entries.map((e) => {
      const svid = this.svids.get(e.id);
      if (!svid) throw new Error(`no SVID for ${e.id}`);
      for (const td of e.federatesWith ?? []) {
        const t = this.tds.get(td);
        if (t) federated[`spiffe://${td}`] = toDer(t.roots);
      }
      return {
        spiffe_id: e.id,
        x509_svid: toDer(svid.chain),
        x509_svid_key: svid.key.export({ type: 'pkcs8', format: 'der' }),
        bundle: toDer(this.must(svid.trustDomain).roots),
        hint: e.hint ?? '',
      };
    });
    return { svids, crl: [] as Buffer[], federated_bundles: federated };
  }

  private bundlesResponse() {
    const bundles: Record<string, Buffer> = {};
    for (const [td, t] of this.tds) bundles[`spiffe://${td}`] = toDer(t.roots);
    return { crl: [] as Buffer[], bundles };
  }

  private jwtBundlesResponse() {
    const bundles: Record<string, Buffer> = {};
    for (const [td, t] of this.tds) {
      const jwk = t.jwt.key.export({ format: 'jwk' });
      // a standard JWKS: public parameters and kid, no `use`
      bundles[`spiffe://${td}`] = Buffer.from(JSON.stringify({ keys: [{ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid: t.jwt.kid }] }));
    }
    return { bundles };
  }

  private issueAll(): void {
    this.clearRotation();
    this.svids.clear();
    for (const e of this.entries) {
      const td = new URL(e.id).host;
      this.svids.set(e.id, this.must(td).issuer.issue(e.id, { ttlMs: e.ttlMs ?? 10_000, keyType: e.keyType, hint: e.hint }));
    }
    if (this.opts.noRotation || this.entries.length === 0) return;
    const shortest = Math.min(...this.entries.map((e) => e.ttlMs ?? 10_000));
    // SPIRE's default strategy: rotate at half the lifetime, with ±10 % jitter.
    const at = (shortest / 2) * (0.9 + Math.random() * 0.2);
    this.rotation = setTimeout(() => this.rotate(), at);
    this.rotation.unref();
  }

  private clearRotation(): void {
    if (this.rotation) clearTimeout(this.rotation);
    this.rotation = undefined;
  }
}
