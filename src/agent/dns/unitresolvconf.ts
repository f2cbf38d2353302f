/**
 * The resolv.conf of a systemd unit's private namespace (nsm-<unit>): one file per namespace in
 * the agent's runtime directory, `UNIT_RESOLV_DIR/<netns>.resolv.conf`, which the generator's
 * drop-in binds over the unit's /etc/resolv.conf (BindReadOnlyPaths=-..., so a unit without the
 * file keeps the host's). The host's /etc/resolv.conf is only read, never written.
 *
 * A bind mount holds the inode it was made from, so the file is always rewritten in place
 * (never replaced by a rename): a running unit sees every change. When the namespace's
 * resolver closes, the file gets the host's resolv.conf (so a unit still running keeps working
 * DNS) and is removed, unless the agent is stopping or repairing after a crash: then it stays,
 * so that the unit, whose connections the next agent takes back, gets the resolver again in the
 * same file. Kept free of heavy imports: the generator imports UNIT_RESOLV_DIR.
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { HOST_RESOLV_CONF, optionLines, parseResolvConf, type ResolvConfFiles } from './resolvconf';

/** Where the packaged agent (runtime directory /run/nsm-agent) keeps the units' files. */
export const UNIT_RESOLV_DIR = '/run/nsm-agent/dns';
export const UNIT_MARKER = '# nsm-agent resolver for the namespace of a systemd unit;';
const RELEASED_MARKER = '# nsm-agent: no resolver in this namespace now; the host resolv.conf follows';
const SUFFIX = '.resolv.conf';

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
}

export interface UnitResolvConfFiles extends ResolvConfFiles {
  /** The file of namespace `name`. */
  fileOf(name: string): string;
  /** Gives the file the host's content; removes it unless `keep`. */
  release(name: string, keep: boolean): void;
}

export function unitResolvConfFiles(dir = UNIT_RESOLV_DIR, hostFile = HOST_RESOLV_CONF): UnitResolvConfFiles {
  const fileOf = (name: string) => path.join(dir, name + SUFFIX);
  // in place: the same inode, which a running unit has bound over its /etc/resolv.conf
  const put = (name: string, text: string) => {
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    const file = fileOf(name);
    writeFileSync(file, text);
    // readable by the unit's user whatever the agent's umask
    chmodSync(file, 0o644);
  };
  const host = () => readIfExists(hostFile) ?? '';
  const render = (name: string, search: string[], options: string[]) =>
    `${UNIT_MARKER} pid=${process.pid}\n# managed while connections with DNS reach netns ${name}\nnameserver 127.0.0.1\n${search.length ? `search ${search.join(' ')}\n` : ''}${options.map((o) => `${o}\n`).join('')}`;
  const release = (name: string, keep: boolean) => {
    const file = fileOf(name);
    if (readIfExists(file) === undefined) return;
    put(name, `${RELEASED_MARKER}\n${host()}`);
    if (!keep) rmSync(file, { force: true });
  };
  return {
    fileOf,
    wire(name, search) {
      const before = host();
      put(name, render(name, search, optionLines(before)));
      return parseResolvConf(before);
    },
    update(name, search) {
      if (!readIfExists(fileOf(name))?.startsWith(UNIT_MARKER)) return;
      put(name, render(name, search, optionLines(host())));
    },
    restore(name) {
      release(name, false);
    },
    release,
    ours() {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return [];
      }
      return names
        .filter((n) => n.endsWith(SUFFIX))
        .sort()
        .flatMap((n) => {
          const text = readIfExists(path.join(dir, n));
          if (!text?.startsWith(UNIT_MARKER)) return [];
          const pid = /^[^\n]* pid=(\d+)/.exec(text)?.[1];
          return [{ name: n.slice(0, -SUFFIX.length), pid: pid === undefined ? undefined : Number(pid) }];
        });
    },
  };
}
