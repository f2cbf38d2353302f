/**
 * DNS for `netns: host` connections: the host's /etc/resolv.conf is never rewritten; instead
 * the connection's interface gets, in systemd-resolved, the servers of its DNS configs (from
 * its endpoint) and their search domains as routing domains (`~domain`), and is never the
 * default route (./resolved.ts). Names under those domains go to the mesh's servers; every
 * other name resolves as before.
 *
 * Applied when the connection is made, again when its configs or its interface change,
 * reverted (RevertLink) when it closes and when the agent stops. Without resolved (not
 * running, no system bus, call refused) nothing is wired: the reason is logged and shown in
 * status, and the link is tried again every RETRY_MS. The links this run set are recorded in
 * a file; a start reverts those a dead run left (the held connections then wire theirs again),
 * so no link keeps stale DNS.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DNSConfig } from '../../api';
import type { Logger } from '../../core/log';
import { Rtnl, getLink, hostNetns } from '../../sys';
import { SystemBus } from '../systemd/dbus';
import { usableConfigs } from './index';
import { classify, ResolvedClient, ResolvedError, type LinkDns } from './resolved';
import { anotherLiveAgent } from './owner';

/** How often links that could not be wired are tried again. */
export const RETRY_MS = 30_000;

export interface HostDnsOptions {
  log: Logger;
  resolved?: Pick<ResolvedClient, 'setLink' | 'revertLink'> & { close?(): void };
  /** The ifindex of a host interface by name (undefined: no such interface). */
  ifindexOf?: (ifname: string) => Promise<number | undefined>;
  /** The name of the host interface with this ifindex (undefined: none). */
  ifnameOf?: (ifindex: number) => Promise<string | undefined>;
  /** Where the links this run set are recorded; none: not recorded. */
  recordFile?: string;
  retryMs?: number;
}

/** One `netns: host` connection with DNS, as status shows it. */
export interface HostDnsView {
  connection_id: string;
  interface: string;
  servers: string[];
  domains: string[];
  /** True once resolved has the link's servers and domains as they are now. */
  wired: boolean;
  /** Why it is not wired; '' when wired or not tried yet. */
  reason: string;
}

interface HostLink {
  ifname: string;
  /** What the link should have; undefined: revert and forget it. */
  want: LinkDns | undefined;
  /** The ifindex resolved may hold settings on (a call was made on it). */
  touched?: number;
  /** What resolved has, when the last setLink succeeded. */
  applied?: LinkDns;
  failure?: Error;
}

interface LinkRecord {
  ifindex: number;
  ifname: string;
}

const unique = (xs: string[]) => [...new Set(xs)];
const same = (a: LinkDns | undefined, b: LinkDns | undefined) =>
  !!a && !!b && a.servers.join(' ') === b.servers.join(' ') && a.domains.join(' ') === b.domains.join(' ');

/** The link DNS of a connection's configs: every server, every search domain. */
export function linkDnsOf(configs: readonly DNSConfig[]): LinkDns | undefined {
  const usable = usableConfigs(configs);
  if (!usable.length) return undefined;
  return {
    servers: unique(usable.flatMap((c) => c.dns_server_ips ?? [])),
    domains: unique(usable.flatMap((c) => c.search_domains ?? [])),
  };
}

export class HostDns {
  private readonly links = new Map<string, HostLink>();
  private readonly resolved: Pick<ResolvedClient, 'setLink' | 'revertLink'> & { close?(): void };
  private readonly ifindexOf: (ifname: string) => Promise<number | undefined>;
  private readonly ifnameOf: (ifindex: number) => Promise<string | undefined>;
  private queue: Promise<void> = Promise.resolve();
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(private readonly opts: HostDnsOptions) {
    this.resolved = opts.resolved ?? new ResolvedClient(new SystemBus());
    this.ifindexOf = opts.ifindexOf ?? (async (name) => (await getLink(Rtnl.for(hostNetns()), name))?.index);
    this.ifnameOf = opts.ifnameOf ?? (async (index) => (await getLink(Rtnl.for(hostNetns()), index))?.name);
  }

  /** Reverts the links a dead agent left with DNS (call before any connection is made). */
  async repair(): Promise<void> {
    const file = this.opts.recordFile;
    if (!file) return;
    let recorded: { pid?: number; links?: LinkRecord[] };
    try {
      recorded = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      return;
    }
    if (anotherLiveAgent(recorded.pid)) return;
    for (const r of recorded.links ?? []) {
      try {
        // the same interface still (an ifindex of a removed link may be taken by another)
        if ((await this.ifnameOf(r.ifindex)) !== r.ifname) continue;
        await this.resolved.revertLink(r.ifindex);
        this.opts.log.info('host DNS of a previous run reverted', { interface: r.ifname, ifindex: r.ifindex });
      } catch (err) {
        this.opts.log.warn('cannot revert host DNS of a previous run', { interface: r.ifname, ifindex: r.ifindex, error: err });
      }
    }
    this.record();
  }

  /** A held connection as it is now (undefined: closed). */
  connectionChanged(id: string, conn: { netns: string; ifname: string; configs: DNSConfig[] } | undefined): void {
    if (this.stopped) return;
    const want = conn && conn.netns === 'host' && conn.ifname ? linkDnsOf(conn.configs) : undefined;
    const link = this.links.get(id);
    if (!want) {
      if (!link) return;
      link.want = undefined;
    } else if (!link) {
      this.links.set(id, { ifname: conn!.ifname, want });
    } else {
      if (link.ifname !== conn!.ifname) link.ifname = conn!.ifname;
      link.want = want;
    }
    this.schedule(id);
  }

  /** The `netns: host` connections with DNS and whether each is wired (status). */
  view(): HostDnsView[] {
    return [...this.links].flatMap(([id, l]) => {
      if (!l.want) return [];
      const wired = same(l.applied, l.want);
      return [{ connection_id: id, interface: l.ifname, servers: [...l.want.servers], domains: [...l.want.domains], wired, reason: wired ? '' : (l.failure?.message ?? '') }];
    });
  }

  /** Waits for the changes scheduled so far. */
  settled(): Promise<void> {
    return this.queue;
  }

  /** Reverts every link. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const [id, l] of this.links) {
      l.want = undefined;
      this.schedule(id);
    }
    await this.settled();
    this.resolved.close?.();
  }

  private schedule(id: string): void {
    this.queue = this.queue.then(() => this.sync(id)).catch((err) => this.opts.log.warn('host DNS not applied', { id, error: err }));
  }

  private async sync(id: string): Promise<void> {
    const l = this.links.get(id);
    if (!l) return;
    if (!l.want) {
      this.links.delete(id);
      if (l.touched !== undefined) await this.revert(id, l, l.touched);
      this.record();
      return;
    }
    const want = l.want;
    const ifindex = await this.ifindexOf(l.ifname);
    if (ifindex === undefined) {
      this.failed(id, l, new Error(`interface ${l.ifname} not found in the host namespace`));
      return;
    }
    if (l.touched === ifindex && same(l.applied, want)) return;
    if (l.touched !== undefined && l.touched !== ifindex) {
      // the connection's interface was made anew (heal): the old one's settings go
      await this.revert(id, l, l.touched);
      l.touched = undefined;
      l.applied = undefined;
    }
    l.touched = ifindex;
    this.record();
    try {
      await this.resolved.setLink(ifindex, want);
    } catch (err) {
      l.applied = undefined;
      this.failed(id, l, classify(err, 'SetLinkDNS'));
      return;
    }
    l.applied = want;
    const wasFailing = l.failure !== undefined;
    l.failure = undefined;
    this.opts.log.info(wasFailing ? 'host DNS wired through systemd-resolved after all' : 'host DNS wired through systemd-resolved', {
      id,
      interface: l.ifname,
      ifindex,
      servers: want.servers.join(','),
      domains: want.domains.map((d) => `~${d}`).join(','),
    });
  }

  private async revert(id: string, l: HostLink, ifindex: number): Promise<void> {
    try {
      await this.resolved.revertLink(ifindex);
      this.opts.log.info('host DNS reverted', { id, interface: l.ifname, ifindex });
    } catch (err) {
      // nothing to revert where resolved does not run; its settings go with a removed link
      const e = classify(err, 'RevertLink');
      if (e.why !== 'resolved not running' && e.why !== 'system bus absent') this.opts.log.warn('host DNS not reverted', { id, interface: l.ifname, ifindex, error: e });
    }
  }

  /** Notes why a link is not wired: logged when the reason changes, tried again later. */
  private failed(id: string, l: HostLink, err: Error): void {
    if (l.failure?.message !== err.message) {
      this.opts.log.warn('host DNS not wired', {
        id,
        interface: l.ifname,
        reason: err instanceof ResolvedError ? err.why : 'interface not found',
        error: err,
      });
    }
    l.failure = err;
    this.armRetry();
  }

  private armRetry(): void {
    if (this.retryTimer || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      for (const [id, l] of this.links) if (l.want && !same(l.applied, l.want)) this.schedule(id);
    }, this.opts.retryMs ?? RETRY_MS);
    this.retryTimer.unref?.();
  }

  /** Writes which links this run set (so that a start after a crash reverts them). */
  private record(): void {
    const file = this.opts.recordFile;
    if (!file) return;
    const links: LinkRecord[] = [...this.links.values()].flatMap((l) => (l.touched !== undefined ? [{ ifindex: l.touched, ifname: l.ifname }] : []));
    try {
      if (!links.length) {
        rmSync(file, { force: true });
        return;
      }
      mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ pid: process.pid, links }) + '\n');
      renameSync(tmp, file);
    } catch (err) {
      this.opts.log.warn('cannot record host DNS links', { file, error: err });
    }
  }
}
