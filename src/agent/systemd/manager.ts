/**
 * systemd's manager over D-Bus (org.freedesktop.systemd1): start and stop a unit, and read the
 * state of one, as the on-demand supplier needs them. Every call goes through SystemBus.call.
 *
 * systemd lets only root (or whom polkit allows) start and stop units: the packaged agent runs
 * as its own user, and a host may have no polkit. When StartUnit or StopUnit is refused, the
 * request goes to nsm-ondemand.socket instead, whose root helper (nsm-ondemand@.service)
 * queues the job for units declared OnDemand=yes, and only for those. Reading a unit's state
 * needs no privilege.
 */
import net from 'node:net';
import { existsSync } from 'node:fs';
import { DbusError, type DbusCall } from './dbus';

/** The socket of the packaged nsm-ondemand.socket. */
export const ONDEMAND_SOCKET = '/run/nsm-ondemand.sock';
const HELPER_TIMEOUT_MS = 10_000;
const REFUSED = /AccessDenied|InteractiveAuthorizationRequired/;

const SYSTEMD = 'org.freedesktop.systemd1';
const MANAGER_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const UNIT = 'org.freedesktop.systemd1.Unit';
const SERVICE = 'org.freedesktop.systemd1.Service';
const PROPERTIES = 'org.freedesktop.DBus.Properties';

/** The bus as used here: SystemBus, or a fake in tests. */
export interface Bus {
  call(c: DbusCall): Promise<unknown[]>;
}

export interface UnitStatus {
  /** LoadState: loaded, not-found, masked, error, ... */
  load: string;
  /** ActiveState: active, activating, deactivating, inactive, failed, reloading. */
  active: string;
  sub: string;
  /** Whether a job (start, stop) is queued or running for the unit. */
  job: boolean;
  /** The service's Result= (success, exit-code, timeout, start-limit-hit, ...). */
  result: string;
  /** CLOCK_MONOTONIC µs when the unit last left inactive and entered active (0: never). */
  inactiveExitMonoUs: number;
  activeEnterMonoUs: number;
}

/** A D-Bus variant as @homebridge/dbus-native hands it: [[signature], [value]]. */
function variantValue(v: unknown): unknown {
  if (Array.isArray(v) && v.length === 2 && Array.isArray(v[0]) && Array.isArray(v[1])) return v[1][0];
  return v;
}

function num(v: unknown): number {
  const n = typeof v === 'bigint' ? Number(v) : Number(v ?? 0);
  return Number.isFinite(n) ? n : 0;
}

export class SystemdManager {
  constructor(
    private readonly bus: Bus,
    /** The root helper's socket, used when systemd refuses a start or stop; undefined: none. */
    private readonly helperSocket: string | undefined = ONDEMAND_SOCKET,
  ) {}

  /** StartUnit(unit, "replace"): queues the start job. */
  start(unit: string): Promise<void> {
    return this.job('StartUnit', 'start', unit);
  }

  /** StopUnit(unit, "replace"): queues the stop job. */
  stop(unit: string): Promise<void> {
    return this.job('StopUnit', 'stop', unit);
  }

  private async job(member: string, verb: 'start' | 'stop', unit: string): Promise<void> {
    try {
      await this.bus.call({ destination: SYSTEMD, path: MANAGER_PATH, interface: MANAGER, member, signature: 'ss', body: [unit, 'replace'] });
    } catch (err) {
      if (!(err instanceof DbusError) || !REFUSED.test(err.name) || !this.helperSocket || !existsSync(this.helperSocket)) throw err;
      await helperRequest(this.helperSocket, verb, unit);
    }
  }

  /** The unit's state (LoadUnit: an inactive unit is loaded to be read). */
  async status(unit: string): Promise<UnitStatus> {
    const [path] = await this.bus.call({ destination: SYSTEMD, path: MANAGER_PATH, interface: MANAGER, member: 'LoadUnit', signature: 's', body: [unit] });
    const p = String(path ?? '');
    const [all] = await this.bus.call({ destination: SYSTEMD, path: p, interface: PROPERTIES, member: 'GetAll', signature: 's', body: [UNIT] });
    const props = new Map<string, unknown>();
    for (const entry of (all as unknown[]) ?? []) {
      if (Array.isArray(entry)) props.set(String(entry[0]), variantValue(entry[1]));
    }
    let result = '';
    try {
      const [r] = await this.bus.call({ destination: SYSTEMD, path: p, interface: PROPERTIES, member: 'Get', signature: 'ss', body: [SERVICE, 'Result'] });
      result = String(variantValue(r) ?? '');
    } catch {
      /* not a service, or not loaded */
    }
    const job = props.get('Job');
    return {
      load: String(props.get('LoadState') ?? ''),
      active: String(props.get('ActiveState') ?? ''),
      sub: String(props.get('SubState') ?? ''),
      // Job is (uo): (0, "/") when there is none.
      job: Array.isArray(job) ? num(job[0]) !== 0 : false,
      result,
      inactiveExitMonoUs: num(props.get('InactiveExitTimestampMonotonic')),
      activeEnterMonoUs: num(props.get('ActiveEnterTimestampMonotonic')),
    };
  }
}

/**
 * One request to nsm-ondemand.socket: "<verb> <unit>\n", answered by systemctl's output and
 * the end of the stream; an empty answer means the job was queued.
 */
export function helperRequest(socketPath: string, verb: 'start' | 'stop', unit: string, timeoutMs = HELPER_TIMEOUT_MS): Promise<void> {
  const what = `${socketPath} (${verb} ${unit})`;
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    let answer = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new DbusError('org.freedesktop.DBus.Error.Timeout', `${what}: no answer within ${timeoutMs} ms`, what));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${verb} ${unit}\n`));
    sock.on('data', (d) => (answer += d));
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(new DbusError('org.freedesktop.DBus.Error.Failed', `${what}: ${err.message}`, what));
    });
    sock.on('close', () => {
      clearTimeout(timer);
      const text = answer.trim();
      if (!text) return resolve();
      const name = /not found|does not exist|not loaded/i.test(text) ? 'org.freedesktop.systemd1.NoSuchUnit' : 'org.freedesktop.DBus.Error.Failed';
      reject(new DbusError(name, `${what}: ${text}`, what));
    });
  });
}
