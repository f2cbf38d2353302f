/**
 * The agent's one door to the system D-Bus (systemd's manager, systemd-resolved): method calls
 * with promises, over @homebridge/dbus-native. One connection, opened on first use; a
 * connection that fails or closes is dropped, and the next call opens a new one. The D-Bus
 * client library is loaded by that first call: an agent with no on-demand unit and no host DNS
 * never loads it.
 */
import type * as dbus from '@homebridge/dbus-native';

import { AgentError } from '../../core/errors';

/** The system bus socket when DBUS_SYSTEM_BUS_ADDRESS does not name another. */
export const DEFAULT_SYSTEM_BUS = 'unix:path=/run/dbus/system_bus_socket';

export interface DbusCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  /** The D-Bus signature of body, e.g. 'ss' or 'ia(iay)'; omitted when there is no body. */
  signature?: string;
  body?: unknown[];
  /**
   * Do not let the bus start the destination by activation (the NO_AUTO_START flag): a call to
   * a service that is not running fails (org.freedesktop.DBus.Error.ServiceUnknown) instead.
   */
  noAutoStart?: boolean;
}

/** The header flag of a method call that must not start its destination. */
const NO_AUTO_START = 0x2;

/** A D-Bus error reply: name is the error's D-Bus name (org.freedesktop.systemd1.NoSuchUnit...). */
export class DbusError extends Error {
  constructor(
    readonly name: string,
    message: string,
    readonly call: string,
  ) {
    super(message);
  }
}

type Bus = ReturnType<typeof dbus.systemBus>;
/** createClient is in the library but not in its type declarations. */
const createClient = (opts: { busAddress: string }): Bus => (require('@homebridge/dbus-native') as { createClient(opts: { busAddress: string }): Bus }).createClient(opts);

export class SystemBus {
  private bus: Bus | undefined;

  constructor(
    private readonly address = process.env.DBUS_SYSTEM_BUS_ADDRESS || DEFAULT_SYSTEM_BUS,
    private readonly timeoutMs = 25_000,
  ) {}

  /** Whether the bus socket exists (a unix:path address); tcp addresses are assumed present. */
  socketPath(): string | undefined {
    const m = /(?:^|;)unix:(?:[^;]*,)?path=([^,;]+)/.exec(this.address);
    return m?.[1];
  }

  /** Calls a method; resolves with the reply's body (an array, one item per out argument). */
  call(c: DbusCall): Promise<unknown[]> {
    const what = `${c.interface}.${c.member} on ${c.destination} ${c.path}`;
    let bus: Bus;
    try {
      bus = this.connection();
    } catch (err) {
      return Promise.reject(unavailable(this.address, err));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new AgentError('UNAVAILABLE', `dbus: no reply to ${what} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      timer.unref?.();
      const msg: Record<string, unknown> = {
        destination: c.destination,
        path: c.path,
        interface: c.interface,
        member: c.member,
      };
      if (c.noAutoStart) msg.flags = NO_AUTO_START;
      if (c.signature) {
        msg.signature = c.signature;
        msg.body = c.body ?? [];
      }
      bus.invoke(msg, (err: unknown, ...values: unknown[]) => {
        clearTimeout(timer);
        if (err) {
          reject(toError(err, what));
          return;
        }
        resolve(values);
      });
    });
  }

  /** Closes the connection (later calls open a new one). */
  close(): void {
    const bus = this.bus;
    this.bus = undefined;
    if (bus) (bus.connection as unknown as { end(): void }).end();
  }

  private connection(): Bus {
    if (this.bus) return this.bus;
    const bus = createClient({ busAddress: this.address });
    const drop = (): void => {
      if (this.bus === bus) this.bus = undefined;
      failPending(bus, `dbus: connection to ${this.address} closed`);
    };
    bus.connection.on('error', drop);
    bus.connection.on('end', drop);
    this.bus = bus;
    return bus;
  }
}

/** Fails the calls still waiting on a dropped connection (the library would leave them hanging). */
function failPending(bus: Bus, message: string): void {
  const cookies = (bus as unknown as { cookies: Record<string, ((err: unknown) => void) | undefined> }).cookies;
  for (const [serial, cb] of Object.entries(cookies)) {
    delete cookies[serial];
    cb?.({ name: 'org.freedesktop.DBus.Error.Disconnected', message: [message] });
  }
}

function unavailable(address: string, err: unknown): AgentError {
  return new AgentError('UNAVAILABLE', `dbus: cannot connect to ${address}: ${(err as Error)?.message ?? String(err)}`);
}

/** The library hands errors as {name, message: [text]} for error replies, or an Error. */
function toError(err: unknown, what: string): Error {
  if (err instanceof Error) return new DbusError('org.freedesktop.DBus.Error.Failed', `${what}: ${err.message}`, what);
  const e = err as { name?: string; message?: unknown };
  const text = Array.isArray(e.message) ? e.message.join(' ') : String(e.message ?? '');
  const name = e.name ?? 'org.freedesktop.DBus.Error.Failed';
  return new DbusError(name, `${what}: ${name}${text ? `: ${text}` : ''}`, what);
}
