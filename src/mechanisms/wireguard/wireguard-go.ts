// SPDX-License-Identifier: Apache-2.0
// Over 500 lines: one class whose process and link halves share the restart's state.
/**
 * The wireguard-go supervisor: one `wireguard-go` process per device, spawned, watched,
 * restarted when it dies, taken back after an agent restart (adopt), and stopped by PID.
 *
 * wireguard-go specifics (verified on wireguard-go 0.0.20220316):
 *  - The UAPI socket is /var/run/wireguard/<tempName>.sock on the shared
 *    filesystem and KEEPS the temporary name after the link is renamed and
 *    moved. `wg show` lists devices by socket name, so it shows every device
 *    as `interface: nsmwg…` (from any namespace); info().hostName is that
 *    name, info().name / info().netns where the link really is.
 *  - The process is started with WG_PROCESS_FOREGROUND=1 and argv [name]
 *    only: it takes ANY argument (even '--help') as an interface name, so no
 *    flags are ever passed and the name is validated first.
 *  - SIGTERM makes it remove the TUN and the socket; it is killed by PID only.
 *  - If the process dies while not being deleted, the supervisor starts a new
 *    one under the same temporary name, re-applies the same configuration
 *    (same keys, port, peer), moves/renames it into the same namespace with
 *    the same MTU and state, then runs the `afterRestart` hook (the caller
 *    re-adds addresses and routes: they died with the old link) and emits
 *    'restarted'.
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { AgentError } from '../../core/errors';
import {
  Rtnl,
  SysError,
  getLink,
  hostNetns,
  moveLink,
  openNetns,
  renameLink,
  renameLinkWith,
  sameNetns,
  setLinkUp,
  setMtu,
  type Netns,
} from '../../sys';
import {
  WG_ALLOWED_IPS,
  WG_PERSISTENT_KEEPALIVE,
  dupNetns,
  liveNames,
  sleep,
  toAgentError,
  type MoveOptions,
  type WireguardConfig,
  type WireguardDevice,
  type WireguardDeviceInfo,
  type WireguardSnapshot,
  type WireguardState,
} from './device';
import { isWireguardGo, reapProcess, refusal, wireguardGoAdoption, type LeftoverState } from './leftovers';
import { tempWireguardName, validateConfig, validateWireguardName } from './names';
import { uapiAlive, uapiGet, uapiSet, uapiSocketPath, wireguardGoLogPath } from './uapi';

export interface WireguardGoOptions {
  /** Executable; default 'wireguard-go' from PATH. */
  binary?: string;
  /**
   * How long to wait for the UAPI socket after spawning (default 10 s). A process that exits
   * fails the start at once; only one that hangs waits this long, and a loaded or emulated
   * host can take seconds to start a Go runtime.
   */
  startTimeoutMs?: number;
  /** Restart the process when it dies unexpectedly (default true). */
  restart?: boolean;
  /** Consecutive failed restart attempts before giving up (default 5). */
  maxRestartAttempts?: number;
  /**
   * Awaited after a restart once the link is back in place (moved, renamed,
   * MTU, up), before 'restarted' is emitted: re-add addresses and routes.
   * Gets the new info() (ifindex in the target ns).
   */
  afterRestart?: (info: WireguardDeviceInfo) => Promise<void> | void;
  /** wireguard-go LOG_LEVEL (default 'error'). */
  logLevel?: 'silent' | 'error' | 'verbose';
  /**
   * The MTU the link gets in the host namespace as soon as the process is up: the tunnel MTU
   * its connections will use (underlay MTU − WireGuard overhead). wireguard-go learns a link's
   * MTU only from netlink events of its own namespace and reads it there by name, so an MTU set
   * after the link left the host namespace never reaches it; it keeps padding packets by the
   * MTU it knows (its default 1420), and a link MTU above that makes the tunnel's UDP packets
   * larger than the underlay's: every full-size packet leaves as two IP fragments.
   */
  mtu?: number;
}

/** The MTU wireguard-go gives the TUN it makes (its DefaultMTU). */
export const WIREGUARD_GO_DEFAULT_MTU = 1420;

/** How often an adopted wireguard-go (not our child: no exit event) is checked for life. */
const ADOPTED_POLL_MS = 50;

export class WireguardGo extends EventEmitter implements WireguardDevice {
  /**
   * Takes back a device a previous run of the agent left (kill -9, upgrade): the process is
   * not our child, so it is watched by PID. If it died meanwhile (its TUN went with it), the
   * device is made again under the same name with the same keys, port, peer and placement,
   * exactly as after a crash of a child. Throws (NETNS_NOT_FOUND, DATAPLANE, ...) if it cannot
   * be taken back; the caller then reaps the snapshot.
   */
  static async adopt(snap: WireguardSnapshot, options: WireguardGoOptions = {}): Promise<WireguardGo> {
    validateWireguardName(snap.hostName);
    if (liveNames.has(snap.hostName)) throw new AgentError('ALREADY_EXISTS', `WireGuard device ${snap.hostName} already exists in this agent`);
    const d = new WireguardGo(options);
    d.hostName = snap.hostName;
    d.linkName = snap.netns ? snap.name : snap.hostName;
    if (snap.cfg) d.cfg = { ...snap.cfg, ...(snap.cfg.peer ? { peer: { ...snap.cfg.peer } } : {}) };
    if (snap.netns) {
      try {
        d.target = openNetns(snap.netns);
        d.targetPath = snap.netns;
      } catch (err) {
        throw refusal(snap, 'netns', err);
      }
      d.moveOpts = snap.move ?? { mtu: 0, up: true };
    }
    liveNames.set(snap.hostName, d);
    try {
      const found: LeftoverState = { process: isWireguardGo(snap.pid, snap.hostName), uapi: false, link: false };
      if (found.process) found.uapi = await uapiAlive(d.socketPath, 500);
      const link = found.process && found.uapi ? await getLink(Rtnl.for(d.target ?? hostNetns()), d.linkName) : undefined;
      found.link = link !== undefined;
      const plan = wireguardGoAdoption(found);
      if (plan.take === 'no') throw refusal(snap, 'link');
      if (plan.take === 'as-is' && link) {
        d.ifindex = link.index;
        d.adoptedPid = snap.pid;
        d.state = 'running';
        d.watchAdopted();
        return d;
      }
      // The process is gone, and its TUN with it: make it again, as a restart would.
      if (plan.take === 'respawn' && plan.kill && isWireguardGo(snap.pid, snap.hostName)) process.kill(snap.pid!, 'SIGKILL');
      d.state = 'restarting';
      await d.restart();
      if ((d.state as WireguardState) !== 'running') throw new AgentError('DATAPLANE', `adopt ${snap.hostName}: wireguard-go could not be started again`);
      return d;
    } catch (err) {
      d.stopWatching();
      liveNames.delete(snap.hostName);
      d.target?.close();
      throw toAgentError(err, `adopt WireGuard device ${snap.hostName}`);
    }
  }

  private state: WireguardState = 'new';
  private hostName = '';
  private child: ChildProcess | undefined;
  private cfg: WireguardConfig | undefined;
  private target: Netns | undefined;
  private linkName = '';
  private ifindex: number | undefined;
  private moveOpts: Required<MoveOptions> | undefined;
  private restarts = 0;
  private deleting = false;
  private restartLoop: Promise<void> | undefined;
  /** A wireguard-go left by a previous run of the agent: not a child, watched by PID. */
  private adoptedPid: number | undefined;
  /** The path the target namespace was named by (this.target is a private duplicate). */
  private targetPath: string | undefined;
  private poll: NodeJS.Timeout | undefined;

  constructor(private readonly options: WireguardGoOptions = {}) {
    super();
  }

  snapshot(): WireguardSnapshot {
    const s: WireguardSnapshot = { impl: 'wireguard-go', hostName: this.hostName, name: this.linkName };
    const pid = this.info().pid;
    if (pid !== undefined) s.pid = pid;
    if (this.cfg) s.cfg = { ...this.cfg };
    if (this.targetPath) s.netns = this.targetPath;
    if (this.moveOpts) s.move = { ...this.moveOpts };
    return s;
  }

  private watchAdopted(): void {
    this.stopWatching();
    this.poll = setInterval(() => {
      const pid = this.adoptedPid;
      if (pid === undefined || isWireguardGo(pid, this.hostName)) return;
      this.stopWatching();
      this.adoptedPid = undefined;
      this.emit('exited', { pid, code: null, signal: null, expected: this.deleting });
      if (this.deleting || this.state !== 'running' || this.options.restart === false) return;
      this.state = 'restarting';
      this.ifindex = undefined;
      this.restartLoop = this.restart().finally(() => {
        this.restartLoop = undefined;
      });
    }, ADOPTED_POLL_MS);
    this.poll.unref();
  }

  private stopWatching(): void {
    if (this.poll) clearInterval(this.poll);
    this.poll = undefined;
  }

  info(): WireguardDeviceInfo {
    const i: WireguardDeviceInfo = {
      impl: 'wireguard-go',
      state: this.state,
      hostName: this.hostName,
      name: this.linkName,
      restarts: this.restarts,
    };
    if (this.hostName !== '') i.uapiSocket = uapiSocketPath(this.hostName);
    if (this.target !== undefined) i.netns = this.target.path;
    if (this.ifindex !== undefined) i.ifindex = this.ifindex;
    if (this.child?.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) i.pid = this.child.pid;
    else if (this.adoptedPid !== undefined) i.pid = this.adoptedPid;
    if (this.cfg !== undefined) {
      i.listenPort = this.cfg.listenPort;
      if (this.cfg.peer) i.peerPublicKey = this.cfg.peer.publicKey;
    }
    if (this.moveOpts !== undefined && this.moveOpts.mtu > 0) i.mtu = this.moveOpts.mtu;
    return i;
  }

  private get socketPath(): string {
    return uapiSocketPath(this.hostName);
  }

  async create(name: string = tempWireguardName()): Promise<void> {
    if (this.state !== 'new') throw new AgentError('FAILED_PRECONDITION', `wireguard device already created (${this.hostName})`);
    validateWireguardName(name);
    if (liveNames.has(name)) throw new AgentError('ALREADY_EXISTS', `WireGuard device ${name} already exists in this agent`);
    liveNames.set(name, this); // claim before the awaits below
    try {
      if (await uapiAlive(uapiSocketPath(name))) {
        throw new AgentError('ALREADY_EXISTS', `WireGuard device ${name} already exists (UAPI socket in use)`);
      }
      if ((await getLink(Rtnl.for(hostNetns()), name)) !== undefined) {
        throw new AgentError('ALREADY_EXISTS', `a link named ${name} already exists in the host namespace`);
      }
      this.hostName = name;
      this.linkName = name;
      this.removeStaleSocket();
      await this.spawn();
      await this.teachMtu(this.options.mtu);
      this.state = 'running';
    } catch (err) {
      liveNames.delete(name);
      if (this.child !== undefined) await this.kill();
      this.hostName = '';
      throw toAgentError(err, `create WireGuard device ${name}`);
    }
  }

  async configure(cfg: WireguardConfig): Promise<void> {
    if (this.state !== 'running' && this.state !== 'restarting') {
      throw new AgentError('FAILED_PRECONDITION', `configure: WireGuard device is ${this.state}`);
    }
    validateConfig(cfg);
    await this.apply(cfg, this.state === 'running' ? this.cfg : undefined);
    this.cfg = { ...cfg, ...(cfg.peer ? { peer: { ...cfg.peer } } : {}) };
  }

  /**
   * Sets `cfg` over UAPI. Given what the process already has (`current`), an unchanged private
   * key and listen port are not sent again: wireguard-go re-binds its UDP sockets on every
   * listen_port it is given while up, which costs milliseconds on the connect path (the peer is
   * added to a device that is already up) and drops what arrives in between.
   */
  private async apply(cfg: WireguardConfig, current?: WireguardConfig): Promise<void> {
    try {
      await uapiSet(this.socketPath, {
        privateKey: current?.privateKey === cfg.privateKey ? undefined : cfg.privateKey,
        listenPort: current?.listenPort === cfg.listenPort ? undefined : cfg.listenPort,
        replacePeers: true,
        peers: cfg.peer
          ? [
              {
                publicKey: cfg.peer.publicKey,
                endpoint: cfg.peer.endpoint,
                persistentKeepalive: cfg.persistentKeepalive ?? WG_PERSISTENT_KEEPALIVE,
                replaceAllowedIps: true,
                allowedIps: cfg.allowedIps ?? [...WG_ALLOWED_IPS],
              },
            ]
          : [],
      });
    } catch (err) {
      throw toAgentError(err, `configure WireGuard device ${this.hostName}`);
    }
  }

  /**
   * Sets `mtu` on the process's new link while it is still in the host namespace, where the
   * process sees the change (see WireguardGoOptions.mtu), well before the link moves.
   */
  private async teachMtu(mtu: number | undefined): Promise<void> {
    if (mtu === undefined || mtu <= 0 || mtu === WIREGUARD_GO_DEFAULT_MTU) return;
    const here = Rtnl.for(hostNetns());
    const link = await getLink(here, this.hostName);
    if (link === undefined) throw new AgentError('DATAPLANE', `link ${this.hostName} not found in the host namespace`);
    await setMtu(here, link.index, mtu);
  }

  async move(target: Netns, newName: string, options: MoveOptions = {}): Promise<void> {
    if (this.state !== 'running') throw new AgentError('FAILED_PRECONDITION', `move: WireGuard device is ${this.state}`);
    validateWireguardName(newName);
    const opts = { mtu: options.mtu ?? 0, up: options.up ?? true };
    const from = this.target !== undefined ? { ns: this.target, name: this.linkName } : undefined;
    const own = from && sameNetns(from.ns, target) ? from.ns : dupNetns(target);
    try {
      await this.placeLink(own, newName, opts, 0, from);
    } catch (err) {
      if (own !== from?.ns) own.close();
      throw toAgentError(err, `move WireGuard device ${this.hostName} to ${target.path} as ${newName}`);
    }
    if (from && own !== from.ns) from.ns.close();
    this.target = own;
    this.targetPath = target.path;
    this.linkName = newName;
    this.moveOpts = opts;
  }

  /**
   * Puts the link in `target` as `newName` with the MTU and state of `opts`: from the host ns
   * (a new device, or a restarted process's new TUN), from another namespace, or, when `from`
   * is `target` itself, a rename in place (no namespace change: a device made ahead where it was
   * going to be needed skips the move's RCU barrier). Retries EEXIST for `retryMs` (an
   * old link still going away).
   */
  private async placeLink(
    target: Netns,
    newName: string,
    opts: Required<MoveOptions>,
    retryMs: number,
    from: { ns: Netns; name: string } = { ns: hostNetns(), name: this.hostName },
  ): Promise<void> {
    const here = Rtnl.for(from.ns);
    const there = Rtnl.for(target);
    const inPlace = sameNetns(from.ns, target);
    // A link waiting down where it is wanted (a spare): MTU, name and state in one message
    // instead of five round trips. Sent from the pool (`slow`): raising a TUN link makes the
    // kernel set up IPv6 and multicast and run its notifiers, which on the event loop would
    // delay what the connect does meanwhile.
    if (inPlace && newName !== from.name && this.ifindex !== undefined && this.moveOpts?.up === false) {
      try {
        await renameLinkWith(there, this.ifindex, newName, { mtu: opts.mtu, up: opts.up, subject: from.name, slow: true });
        return;
      } catch (err) {
        if (err instanceof SysError && err.code === 'EEXIST') {
          throw new AgentError('ALREADY_EXISTS', `a link named ${newName} already exists in ${target.path}`, { cause: err });
        }
        // anything else (e.g. a stale ifindex): the long way below finds out
      }
    }
    const link = await getLink(here, from.name);
    if (link === undefined) throw new AgentError('DATAPLANE', `link ${from.name} not found in ${inPlace ? target.path : 'its namespace'}`);
    if (opts.mtu > 0) await setMtu(here, link.index, opts.mtu);
    if (inPlace && newName === from.name) {
      this.ifindex = link.index;
    } else {
      if (inPlace && link.up) await setLinkUp(here, link.index, false); // the kernel renames only links that are down
      const deadline = Date.now() + retryMs;
      for (;;) {
        if ((await getLink(there, newName)) === undefined) {
          try {
            await (inPlace ? renameLink(here, link.index, newName) : moveLink(here, link.index, target, newName));
            break;
          } catch (err) {
            if (!(err instanceof SysError && err.code === 'EEXIST') || Date.now() >= deadline) throw err;
          }
        } else if (Date.now() >= deadline) {
          throw new AgentError('ALREADY_EXISTS', `a link named ${newName} already exists in ${target.path}`);
        }
        await sleep(5);
      }
      const moved = inPlace ? link : await getLink(there, newName);
      if (moved === undefined) throw new AgentError('DATAPLANE', `link ${newName} vanished after the move`);
      this.ifindex = moved.index;
    }
    if (opts.up) await setLinkUp(there, this.ifindex, true);
  }

  async delete(): Promise<void> {
    if (this.state === 'deleted') return;
    this.deleting = true;
    this.stopWatching();
    await this.kill();
    await this.restartLoop?.catch(() => {});
    await this.kill(); // a restart may have spawned one more
    this.removeStaleSocket();
    this.target?.close();
    this.target = undefined;
    if (liveNames.get(this.hostName) === this) liveNames.delete(this.hostName);
    this.state = 'deleted';
    this.ifindex = undefined;
    this.emit('deleted');
  }

  /** Current state over UAPI (handshake time, counters). */
  async status(): Promise<ReturnType<typeof uapiGet>> {
    return uapiGet(this.socketPath);
  }

  // --- process management -------------------------------------------------

  private removeStaleSocket(): void {
    // Only called while no process of ours serves this name.
    try {
      if (this.hostName !== '' && existsSync(this.socketPath)) unlinkSync(this.socketPath);
      if (this.hostName !== '' && existsSync(wireguardGoLogPath(this.hostName))) unlinkSync(wireguardGoLogPath(this.hostName));
    } catch {
      /* best effort */
    }
  }

  /** Spawns wireguard-go and waits until its UAPI socket answers. */
  private async spawn(): Promise<void> {
    const name = this.hostName;
    validateWireguardName(name); // never let anything flag-like reach argv
    // Detached (own session: a terminal's Ctrl-C or a signal to the agent's process group does
    // not reach it) and writing to a file, never to a pipe: the vWire must outlive an agent
    // that is killed or restarted, and Go exits on EPIPE when fd 1 or 2 is a closed pipe.
    const log = wireguardGoLogPath(name);
    // wireguard-go makes its socket directory itself, but the log is opened here first; /run is
    // empty after every boot of a host that runs the agent from source (no RuntimeDirectory=).
    mkdirSync(dirname(log), { recursive: true, mode: 0o755 });
    const out = openSync(log, 'w', 0o600);
    let child: ChildProcess;
    try {
      // node:child_process is loaded by the first wireguard-go started, not at the agent's start.
      const { spawn } = require('node:child_process') as typeof import('node:child_process');
      child = spawn(this.options.binary ?? 'wireguard-go', [name], {
        env: { ...process.env, WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: this.options.logLevel ?? 'error' },
        stdio: ['ignore', out, out],
        detached: true,
      });
    } finally {
      closeSync(out);
    }
    child.unref(); // an agent stopping without cleanup exits while its devices live on
    this.child = child;
    this.adoptedPid = undefined;
    this.stopWatching();
    const output = (): string => {
      try {
        return readFileSync(log, 'utf8').slice(-4096).trim();
      } catch {
        return '';
      }
    };
    let exited = false;
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
      exited = true;
    });
    child.on('exit', (code, signal) => {
      exited = true;
      this.onExit(child, code, signal);
    });
    const timeout = this.options.startTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeout;
    for (;;) {
      if (exited) {
        const why = spawnError ? spawnError.message : `exited (${child.exitCode ?? child.signalCode})`;
        throw new AgentError('DATAPLANE', `wireguard-go ${name} ${why}: ${output()}`);
      }
      if (existsSync(this.socketPath) && (await uapiAlive(this.socketPath, 200))) break;
      if (Date.now() >= deadline) {
        await this.kill();
        throw new AgentError('DATAPLANE', `wireguard-go ${name}: UAPI socket did not appear within ${timeout} ms: ${output()}`);
      }
      await sleep(5);
    }
    if (child.pid !== undefined) this.emit('spawned', { pid: child.pid });
  }

  /** SIGTERM (removes TUN and socket), then SIGKILL after 2 s; waits for the exit. By PID only. */
  private async kill(): Promise<void> {
    if (this.adoptedPid !== undefined) {
      await reapProcess(this.adoptedPid, this.hostName);
      this.adoptedPid = undefined;
    }
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await gone;
    clearTimeout(timer);
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const expected = this.deleting || this.state === 'new' || child !== this.child;
    this.emit('exited', { pid: child.pid, code, signal, expected });
    if (expected || this.state !== 'running' || this.options.restart === false) return;
    this.state = 'restarting';
    this.ifindex = undefined;
    this.restartLoop = this.restart().finally(() => {
      this.restartLoop = undefined;
    });
  }

  private async restart(): Promise<void> {
    const t0 = Date.now();
    const max = this.options.maxRestartAttempts ?? 5;
    let lastErr: unknown;
    for (let attempt = 0; attempt < max && !this.deleting; attempt++) {
      if (attempt > 0) await sleep(Math.min(100 * 2 ** attempt, 2000));
      if (this.deleting) return;
      try {
        this.removeStaleSocket();
        await this.spawn();
        if (this.deleting) return;
        await this.teachMtu(this.moveOpts?.mtu || this.options.mtu);
        if (this.cfg !== undefined) await this.apply(this.cfg);
        if (this.target !== undefined && this.moveOpts !== undefined) {
          await this.placeLink(this.target, this.linkName, this.moveOpts, 1000);
        }
        if (this.deleting) return;
        this.restarts++;
        this.state = 'running';
        if (this.options.afterRestart) await this.options.afterRestart(this.info());
        this.emit('restarted', { pid: this.child?.pid, ms: Date.now() - t0, restarts: this.restarts });
        return;
      } catch (err) {
        lastErr = err;
        this.state = 'restarting';
        await this.kill();
      }
    }
    if (this.deleting) return;
    this.state = 'failed';
    this.emit('failed', toAgentError(lastErr, `restart wireguard-go ${this.hostName}`));
  }
}

