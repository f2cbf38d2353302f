/**
 * systemd-resolved's per-link DNS, over the system D-Bus (org.freedesktop.resolve1.Manager,
 * as NetBird and Tailscale drive it on Linux): a link gets DNS servers and routing-only domains
 * (`~domain`: only names under them are sent to the link's servers) and is never the default
 * route for other names; RevertLink drops everything set on it. The host's /etc/resolv.conf
 * is not touched: programs reach resolved through its stub or nss-resolve as before.
 *
 * Calls go with NO_AUTO_START: a resolved that is stopped is not started by the agent.
 * Failures are told apart (resolved not running, no bus, call refused) so that status can say
 * why host DNS is not wired.
 */
import { existsSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { AgentError } from '../../core/errors';
import { DbusError, type DbusCall } from '../systemd/dbus';

export const RESOLVE1 = {
  destination: 'org.freedesktop.resolve1',
  path: '/org/freedesktop/resolve1',
  interface: 'org.freedesktop.resolve1.Manager',
} as const;

const AF_INET = 2;
const AF_INET6 = 10;

/** What the client needs of the bus (SystemBus, or a fake in tests). */
export interface Bus {
  call(c: DbusCall): Promise<unknown[]>;
  /** The bus socket's path when the address names one (checked before calling). */
  socketPath?(): string | undefined;
  close?(): void;
}

/** Why a call did not take effect, in a few words status shows; detail is the error itself. */
export type ResolvedFailure = 'resolved not running' | 'system bus absent' | 'call refused' | 'call failed';

export class ResolvedError extends AgentError {
  constructor(
    readonly why: ResolvedFailure,
    message: string,
    cause?: unknown,
  ) {
    super('UNAVAILABLE', message, { cause, component: 'systemd-resolved' });
  }
}

/** D-Bus error names that mean resolved is not on the bus. */
const NOT_RUNNING = new Set(['org.freedesktop.DBus.Error.ServiceUnknown', 'org.freedesktop.DBus.Error.NameHasNoOwner']);
/** D-Bus error names that mean resolved (or the bus policy) refused the agent. */
const REFUSED = new Set([
  'org.freedesktop.DBus.Error.AccessDenied',
  'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired',
  'org.freedesktop.DBus.Error.AuthFailed',
]);
/** RevertLink of a link resolved no longer knows: nothing is left to revert. */
const NO_SUCH_LINK = 'org.freedesktop.resolve1.NoSuchLink';

/**
 * A failed call as a ResolvedError saying which kind of failure it was; its message is
 * `systemd-resolved <member>: <kind>: <detail>`.
 */
export function classify(err: unknown, member: string): ResolvedError {
  if (err instanceof ResolvedError) return err;
  const fail = (why: ResolvedFailure, detail: string) => new ResolvedError(why, `systemd-resolved ${member}: ${why}: ${detail}`, err);
  if (err instanceof DbusError) {
    if (NOT_RUNNING.has(err.name)) return fail('resolved not running', err.name);
    // resolved lets root callers through and asks polkit about the others
    if (REFUSED.has(err.name)) return fail('call refused', `${err.message} (callers other than root need polkit: polkitd and the package's rule)`);
    if (err.name === 'org.freedesktop.DBus.Error.Disconnected') return fail('system bus absent', err.message);
    return fail('call failed', err.message);
  }
  const message = (err as Error)?.message ?? String(err);
  if (/cannot connect|ENOENT|ECONNREFUSED/.test(message)) return fail('system bus absent', message);
  return fail('call failed', message);
}

/** An address as resolved's SetLinkDNS takes it: (family, bytes). */
export function addressBytes(ip: string): [number, number[]] {
  if (isIPv4(ip)) return [AF_INET, ip.split('.').map(Number)];
  if (!isIPv6(ip)) throw new AgentError('INVALID_ARGUMENT', `systemd-resolved: ${JSON.stringify(ip)} is not an IP address`);
  const [head = '', tail] = ip.replace(/%.*$/, '').split('::');
  const groups = (s: string | undefined): number[] => {
    if (!s) return [];
    return s.split(':').flatMap((g) => {
      if (g.includes('.')) {
        const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
        return [(a << 8) | b, (c << 8) | d];
      }
      return [parseInt(g, 16)];
    });
  };
  const front = groups(head);
  const back = groups(tail);
  const all = tail === undefined ? front : [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
  return [AF_INET6, all.flatMap((g) => [g >> 8, g & 0xff])];
}

export interface LinkDns {
  servers: string[];
  /** Routing-only domains: names under them go to these servers. */
  domains: string[];
}

export class ResolvedClient {
  constructor(private readonly bus: Bus) {}

  /** Sets the link's DNS servers and routing domains, and takes it out of the default route. */
  async setLink(ifindex: number, dns: LinkDns): Promise<void> {
    this.checkBus();
    await this.call('SetLinkDNS', 'ia(iay)', [ifindex, dns.servers.map(addressBytes)]);
    await this.call('SetLinkDomains', 'ia(sb)', [ifindex, dns.domains.map((d) => [d, true])]);
    try {
      await this.call('SetLinkDefaultRoute', 'ib', [ifindex, false]);
    } catch (err) {
      // resolved before systemd 240 has no default-route setting; routing domains still apply
      if (!(err instanceof ResolvedError && (err.cause as DbusError)?.name === 'org.freedesktop.DBus.Error.UnknownMethod')) throw err;
    }
  }

  /** Drops what was set on the link; a link resolved does not know is no error. */
  async revertLink(ifindex: number): Promise<void> {
    this.checkBus();
    try {
      await this.call('RevertLink', 'i', [ifindex]);
    } catch (err) {
      if (err instanceof ResolvedError && (err.cause as DbusError)?.name === NO_SUCH_LINK) return;
      throw err;
    }
  }

  /** Closes the bus connection (a later call opens a new one). */
  close(): void {
    this.bus.close?.();
  }

  private checkBus(): void {
    const socket = this.bus.socketPath?.();
    if (socket && !existsSync(socket)) throw new ResolvedError('system bus absent', `systemd-resolved: system bus absent: no ${socket}`);
  }

  private async call(member: string, signature: string, body: unknown[]): Promise<void> {
    try {
      await this.bus.call({ ...RESOLVE1, member, signature, body, noAutoStart: true });
    } catch (err) {
      throw classify(err, member);
    }
  }
}
