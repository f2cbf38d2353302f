/**
 * systemd's manager over D-Bus (org.freedesktop.systemd1): start and stop a unit, and read the
 * state of one, as the on-demand supplier needs them. Every call goes through SystemBus.call.
 */
import type { DbusCall } from './dbus';

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
  constructor(private readonly bus: Bus) {}

  /** StartUnit(unit, "replace"): queues the start job; resolves with the job's object path. */
  async start(unit: string): Promise<string> {
    const [job] = await this.bus.call({ destination: SYSTEMD, path: MANAGER_PATH, interface: MANAGER, member: 'StartUnit', signature: 'ss', body: [unit, 'replace'] });
    return String(job ?? '');
  }

  /** StopUnit(unit, "replace"): queues the stop job. */
  async stop(unit: string): Promise<string> {
    const [job] = await this.bus.call({ destination: SYSTEMD, path: MANAGER_PATH, interface: MANAGER, member: 'StopUnit', signature: 'ss', body: [unit, 'replace'] });
    return String(job ?? '');
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
