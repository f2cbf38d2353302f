/**
 * `nsm-agent run`: the daemon in the foreground, as nsm-agent.service (Type=notify) runs it.
 *
 *   1. validates agent.yaml before touching anything (exit 2 on errors, from the CLI);
 *   2. STATUS=starting, then starts the agent (listeners, identity, endpoints, connections);
 *   3. restores the units that declared services (<runtime dir>/units), registers the
 *      suppliers of OnDemand=yes units (src/agent/systemd/ondemand.ts), opens the systemd
 *      socket (reload, unit start/stop), then READY=1 with a STATUS= line, and WATCHDOG=1 pings
 *      when WatchdogSec= is set;
 *   4. keeps STATUS= current (endpoints, connections, registry reachability);
 *   5. SIGHUP or `nsm-agent reload`: RELOADING=1, re-reads the OnDemand=yes units and
 *      agent.yaml, applies endpoint and connection changes (src/agent/reload.ts), READY=1;
 *   6. SIGTERM/SIGINT: STOPPING=1, closes connections and unregisters endpoints, exits 0.
 *      The units' specs stay, so that the next start restores them.
 */
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createLogger, type LevelRef } from '../core/log';
import { journaldSink, stderrIsJournal } from './journald';
import { findAll } from '../core/registry';
import { checkOnHost, loadConfig, parseConfigText, resolveConfigFile, AgentConfig, ConfigError } from './config';
import { AgentError } from '../core/errors';
import { Agent } from './agent';
import { ConfigReloader, ReloadResult, withConnectionIds } from './reload';
import { Notifier } from './systemd/notify';
import { controlSocketPath, ControlServer, listenControl } from './systemd/control';
import { UnitManager } from './systemd/units';
import { OnDemandUnits, readOnDemandUnits } from './systemd/ondemand';
import { SystemdManager } from './systemd/manager';
import { SystemBus } from './systemd/dbus';
import { socketAnswers } from './socket-claim';
import { statusLine } from './status';
import { releaseMemory } from '../sys/memory';

export interface RunOptions {
  configFile?: string;
  socket?: string;
  cleanupOnExit: boolean;
  /** Called once, when the start is over (SETTLE_MS after the first READY=1). */
  onStarted?: () => void;
  /** What became of the daemon's code cache (src/agent/daemon-load.ts), logged at debug. */
  codeCache?: string;
}

/**
 * How long after READY=1, and after a reload, the agent hands back the memory that the work
 * just done used and no longer needs (src/sys/memory.ts): by then that work and its garbage
 * are over, and an idle agent would otherwise keep them resident until the heap next grows.
 * That includes the code compiled for it (parsing and checking agent.yaml, setting the modules
 * up), which runs once: what runs again is compiled again, from the source V8 keeps.
 */
const SETTLE_MS = 1_000;

/** How often STATUS= is refreshed. */
const STATUS_EVERY_MS = 10_000;

/** The one-line summary used in STATUS= and the log. */
function summary(agent: Agent, extra: { registryDown?: boolean; note?: string } = {}): string {
  const s = { socket: agent.cfg.listen.unix, endpoints: agent.endpoints.size, connections: agent.hub.connections().length, registry: agent.cfg.registry.url };
  return statusLine(s, extra);
}

async function registryReachable(agent: Agent): Promise<boolean> {
  const [ctx, done] = agent.ctx().withTimeout(3_000);
  try {
    await findAll(agent.reg.ns.find(ctx, { network_service: { name: '' }, watch: false }));
    return true;
  } catch {
    return false;
  } finally {
    done();
  }
}

/** Threads of the libuv pool unless UV_THREADPOOL_SIZE is set (see runDaemon). */
const UV_THREADPOOL_SIZE = 16;

/** An agent.yaml as hosts have them, for warmUp(). */
const WARM_UP_CONFIG = `
name: warm-up
logLevel: info
endpoints:
  - name: db
    services: [db]
    labels: { app: db }
    cidr: 172.16.10.0/24
    netns: db
connections:
  - url: kernel://web/nsm-1?app=web
    netns: host
`;

/**
 * Runs, with no effect, what every start runs first (agent.yaml parsed and checked): the build
 * writes the bundle's code cache after it (src/agent/daemon-load.ts), so that the cache holds
 * that code compiled too.
 */
export function warmUp(): void {
  parseConfigText(WARM_UP_CONFIG, '<warm-up>');
}

export async function runDaemon(opts: RunOptions): Promise<number> {
  // The libuv pool (read by libuv when it first starts the pool, which nothing has done yet)
  // runs the liveness echoes, the state files and the link deletions and namespace moves,
  // each of which holds a thread through an RCU barrier (one lane per namespace:
  // src/sys/rtnl.ts). Node's default of 4 threads would let four namespaces tearing down at
  // once stall the rest; a user's own setting is kept.
  process.env['UV_THREADPOOL_SIZE'] ??= String(UV_THREADPOOL_SIZE);
  const adjust = (cfg: AgentConfig) => {
    if (opts.socket) cfg.listen.unix = opts.socket;
    else if (process.env['NSM_AGENT_SOCKET'] && !opts.configFile) cfg.listen.unix = process.env['NSM_AGENT_SOCKET'];
  };
  const cfg = checkOnHost(loadConfig(resolveConfigFile(opts.configFile)));
  adjust(cfg);
  withConnectionIds(cfg);
  // Before anything is touched: an agent already running on these sockets keeps them (and the
  // vWires and state it holds), and this one exits with SOCKET_IN_USE naming the socket.
  for (const [what, p] of [['the agent socket', cfg.listen.unix], ['the systemd socket', controlSocketPath(cfg.listen.unix)]] as const) {
    if (await socketAnswers(p)) throw new AgentError('SOCKET_IN_USE', `${what} ${p} is in use by a running agent; give this agent its own listen.unix`);
  }
  // SIGUSR1 raises the level to debug, SIGUSR2 restores the configured one, as NSM's
  // components do (their SIGUSR1 is TRACE; debug is the agent's most detailed level).
  const level: LevelRef = { current: cfg.logLevel };
  const log = createLogger({ level, fields: { agent: cfg.name }, ...(stderrIsJournal() ? { sink: journaldSink() } : {}) });
  if (opts.codeCache) log.debug('code cache', { cache: opts.codeCache });
  const onUsr1 = () => {
    level.current = 'debug';
    log.info('log level raised (SIGUSR1)', { level: 'debug' });
  };
  const onUsr2 = () => {
    level.current = cfg.logLevel;
    log.info('log level restored (SIGUSR2)', { level: cfg.logLevel });
  };
  process.on('SIGUSR1', onUsr1);
  process.on('SIGUSR2', onUsr2);
  // SIGHUP's default action ends the process: until the reload handler is in place, a reload
  // requested during start-up is remembered and done once ready.
  let earlyHup = false;
  const onEarlyHup = () => {
    earlyHup = true;
  };
  process.on('SIGHUP', onEarlyHup);
  // A stop asked for while starting is kept and honoured once started (with cleanup), instead
  // of the default action killing the process half-way and leaving interfaces behind.
  let earlyStop: string | undefined;
  const onEarlyTerm = () => (earlyStop ??= 'SIGTERM');
  const onEarlyInt = () => (earlyStop ??= 'SIGINT');
  process.on('SIGTERM', onEarlyTerm);
  process.on('SIGINT', onEarlyInt);
  const notifier = new Notifier(log);
  notifier.status(`starting: loading identity (${cfg.identity.source}), registry ${cfg.registry.url}`);
  const agent = new Agent(cfg, { log });
  try {
    await agent.start();
  } catch (err) {
    process.off('SIGHUP', onEarlyHup);
    log.error('start failed', { error: err });
    notifier.status(`start failed: ${(err as Error).message}`);
    await agent.stop({ cleanup: true }).catch(() => {});
    return 1;
  }

  const runtimeDir = path.dirname(cfg.listen.unix);
  // `touch <runtime dir>/cleanup-on-exit` before a stop asks for --cleanup-on-exit once (the
  // packages do it when the agent is removed); a flag older than this start is stale.
  const cleanupFlag = path.join(runtimeDir, 'cleanup-on-exit');
  rmSync(cleanupFlag, { force: true });
  const parts = { endpoints: agent.endpoints, held: agent.held, served: agent.hub, dns: agent.dns };
  let onDemand: OnDemandUnits | undefined;
  const units = new UnitManager(parts, { dir: path.join(runtimeDir, 'units'), log, nodeName: cfg.name, outOfTurn: (unit) => onDemand?.has(unit) ?? false });
  const reloader = new ConfigReloader(parts, cfg, {
    log,
    adjust,
    unitConnection: (id) => units.connectionOf(id),
    serial: (fn) => units.serial(fn),
  });
  notifier.status('starting: restoring units');
  await units.restore().catch((err) => log.warn('restoring units failed', { error: err }));
  // After the restore: an on-demand unit that runs has its endpoint back, and no supplier.
  const systemBus = new SystemBus();
  onDemand = new OnDemandUnits({ systemd: new SystemdManager(systemBus), endpoints: agent.endpoints, endpointName: (unit) => units.endpointName(unit), log });
  units.onChange((unit) => void onDemand?.sync(unit));
  await onDemand.set(readOnDemandUnits(log)).catch((err) => log.warn('on-demand units not set up', { error: err }));
  onDemand.start();
  await agent.held.resume().catch((err) => log.warn('re-establishing connections failed', { error: err }));

  let registryDown = false;
  let note: string | undefined;
  const refresh = () => notifier.status(summary(agent, { registryDown, note }));

  const doReload = async (why: string): Promise<ReloadResult> => {
    log.info('reloading', { file: reloader.config.file, trigger: why });
    notifier.reloading();
    try {
      await onDemand?.set(readOnDemandUnits(log)).catch((err) => log.warn('on-demand units not updated', { error: err }));
      const r = await reloader.reload();
      note = r.errors.length ? `last reload: ${r.errors.length} error(s)` : r.restartNeeded.length ? `restart needed for ${r.restartNeeded.join(',')}` : undefined;
      return r;
    } catch (err) {
      note = `reload failed: ${(err as Error).message}`;
      log.error('reload failed', { error: err });
      throw err instanceof ConfigError ? new AgentError('INVALID_ARGUMENT', `configuration error: ${err.message}`) : err;
    } finally {
      notifier.ready(summary(agent, { registryDown, note }));
      settleLater();
    }
  };

  let settleTimer: NodeJS.Timeout | undefined;
  let started = false;
  const settleLater = () => {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(() => {
      if (!started) opts.onStarted?.();
      started = true;
      try {
        releaseMemory({ compiledCode: true });
      } catch (err) {
        log.debug('memory not released', { error: err });
      }
    }, SETTLE_MS);
    settleTimer.unref();
  };

  let control: ControlServer | undefined;
  try {
    control = await listenControl(
      controlSocketPath(cfg.listen.unix),
      {
        reload: () => doReload('socket'),
        unitStart: (spec) => units.start(spec).finally(refresh),
        unitStop: (unit) => units.stop(unit).finally(refresh),
        units: () => units.states(),
        status: async () => (await import('./status-wire')).statusAsOnTheWire(agent.status(await agent.traffic())),
      },
      { log },
    );
  } catch (err) {
    process.off('SIGHUP', onEarlyHup);
    log.error('systemd socket failed', { error: err });
    await agent.stop({ cleanup: true }).catch(() => {});
    return 1;
  }

  notifier.ready(summary(agent));
  settleLater();
  const watchdogMs = notifier.startWatchdog();
  if (watchdogMs) log.debug('watchdog enabled', { everyMs: watchdogMs });
  const ticker = setInterval(() => {
    registryReachable(agent).then((ok) => {
      if (ok === registryDown) log[ok ? 'info' : 'warn'](ok ? 'registry reachable again' : 'registry unreachable', { registry: cfg.registry.url });
      registryDown = !ok;
      refresh();
    });
  }, STATUS_EVERY_MS);
  ticker.unref();

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal });
      notifier.stopping();
      clearInterval(ticker);
      clearTimeout(settleTimer);
      // onHup stays (it does nothing now): without a listener a SIGHUP would end the process
      // half-way through the stop.
      (async () => {
        await control?.close();
        await onDemand?.close().catch((err) => log.warn('closing on-demand units failed', { error: err }));
        // an open bus connection would keep the process from exiting
        systemBus.close();
        const cleanup = opts.cleanupOnExit || existsSync(cleanupFlag);
        rmSync(cleanupFlag, { force: true });
        if (cleanup) log.info('removing every vWire before exiting');
        await agent.stop({ cleanup });
      })()
        .catch((err) => log.error('stop failed', { error: err }))
        .finally(() => {
          notifier.stopWatchdog();
          resolve(0);
        });
    };
    const onHup = () => {
      if (!stopping) doReload('SIGHUP').catch(() => {});
    };
    // Each running handler is added before its start-up handler is removed: a signal with no
    // listener at all, even for a moment, meets Node's default action, which ends the process.
    process.on('SIGHUP', onHup);
    process.off('SIGHUP', onEarlyHup);
    if (earlyHup) onHup();
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.off('SIGTERM', onEarlyTerm);
    process.off('SIGINT', onEarlyInt);
    if (earlyStop) stop(earlyStop);
  });
}

