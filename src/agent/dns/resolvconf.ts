/**
 * The resolv.conf of named network namespaces: `/etc/netns/NAME/resolv.conf`, which
 * `ip netns exec NAME` (and anything else that enters the namespace the iproute2 way)
 * bind-mounts over /etc/resolv.conf. The agent's file names its resolver (127.0.0.1) and the
 * search domains; the file it replaced is kept beside it (a hard link: the same file, so it
 * comes back with its bytes, mode and owner), and put back when the namespace's last
 * connection with DNS goes, when the agent stops, and, after a crash, at the next start. This
 * module is the only one that writes these files.
 *
 * Our file starts with MARKER and says what to put back: `original=kept` (the file in
 * ORIGINAL_SUFFIX), `original=none` (remove ours), and `dir=made` when the agent made the
 * namespace's directory (removed again when empty); `pid=` names the agent that wrote it, so
 * that a start repairs only what a dead agent left.
 */
import { chmodSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const NETNS_ETC_DIR = '/etc/netns';
export const MARKER = '# nsm-agent resolver for this network namespace;';
export const ORIGINAL_SUFFIX = '.nsm-agent-original';
export const HOST_RESOLV_CONF = '/etc/resolv.conf';

/** What a resolv.conf names: nameservers and search domains (options are not used). */
export interface ResolvConf {
  nameservers: string[];
  search: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], search: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0].replace(/%.*$/, ''));
    // the last search (or domain) line wins, as in glibc
    else if ((key === 'search' || key === 'domain') && rest.length) out.search = rest;
  }
  return out;
}

/** The `options` lines of a resolv.conf (ndots, timeout, ...), kept in ours as they were. */
export function optionLines(text: string): string[] {
  return text.split('\n').filter((l) => /^\s*options\s/.test(l)).map((l) => l.trim());
}

/** The files of a namespace, by name (a plain name under /run/netns). */
export function netnsFiles(name: string, etcDir = NETNS_ETC_DIR): { dir: string; file: string; original: string } {
  const dir = path.join(etcDir, name);
  const file = path.join(dir, 'resolv.conf');
  return { dir, file, original: file + ORIGINAL_SUFFIX };
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** True if `text` is a file this module wrote. */
export function isOurs(text: string | undefined): boolean {
  return text !== undefined && text.startsWith(MARKER);
}

export interface ResolvConfFiles {
  /**
   * Points the namespace at the agent's resolver with `search` domains, keeping the file it
   * replaces. Returns what the namespace resolved with before (its own file, else the host's).
   */
  wire(name: string, search: string[]): ResolvConf;
  /** Rewrites our file with new search domains (the original stays kept). */
  update(name: string, search: string[]): void;
  /** Puts the original back (or removes ours); nothing if the file is not ours. */
  restore(name: string): void;
  /** Namespaces whose resolv.conf is ours, with the pid of the agent that wrote it. */
  ours(): { name: string; pid: number | undefined }[];
}

export function resolvConfFiles(etcDir = NETNS_ETC_DIR, hostFile = HOST_RESOLV_CONF): ResolvConfFiles {
  const render = (name: string, header: string, search: string[], options: string[]) =>
    `${header}\n# managed while connections with DNS reach netns ${name}; the original comes back after\nnameserver 127.0.0.1\n${search.length ? `search ${search.join(' ')}\n` : ''}${options.map((o) => `${o}\n`).join('')}`;
  return {
    wire(name, search) {
      const f = netnsFiles(name, etcDir);
      const current = readIfExists(f.file);
      if (isOurs(current)) {
        // ours already (a restart that did not restore): keep the original as recorded
        const header = current!.split('\n')[0]!.replace(/ pid=\d+/, '') + ` pid=${process.pid}`;
        const kept = header.includes('original=kept') ? readIfExists(f.original) : undefined;
        const before = kept ?? readIfExists(hostFile) ?? '';
        writeFileSync(f.file, render(name, header, search, optionLines(before)));
        return parseResolvConf(before);
      }
      let dirMade = false;
      if (!existsSync(f.dir)) {
        mkdirSync(f.dir, { recursive: true, mode: 0o755 });
        // readable by everyone in the namespace whatever the agent's umask (0027 packaged)
        chmodSync(f.dir, 0o755);
        dirMade = true;
      }
      if (current !== undefined) {
        // a second name for the file itself: it comes back as it was (inode, mode, owner)
        rmSync(f.original, { force: true });
        linkSync(f.file, f.original);
      }
      const header = `${MARKER} original=${current !== undefined ? 'kept' : 'none'}${dirMade ? ' dir=made' : ''} pid=${process.pid}`;
      const tmp = `${f.file}.${process.pid}.tmp`;
      const before = current ?? readIfExists(hostFile) ?? '';
      writeFileSync(tmp, render(name, header, search, optionLines(before)), { mode: 0o644 });
      chmodSync(tmp, 0o644);
      renameSync(tmp, f.file);
      return parseResolvConf(before);
    },
    update(name, search) {
      const f = netnsFiles(name, etcDir);
      const current = readIfExists(f.file);
      if (!isOurs(current)) return;
      const tmp = `${f.file}.${process.pid}.tmp`;
      writeFileSync(tmp, render(name, current!.split('\n')[0]!, search, optionLines(current!)), { mode: 0o644 });
      chmodSync(tmp, 0o644);
      renameSync(tmp, f.file);
    },
    restore(name) {
      const f = netnsFiles(name, etcDir);
      const current = readIfExists(f.file);
      if (!isOurs(current)) return;
      const header = current!.split('\n')[0]!;
      if (header.includes('original=kept') && existsSync(f.original)) renameSync(f.original, f.file);
      else rmSync(f.file, { force: true });
      if (header.includes('dir=made')) {
        try {
          rmdirSync(f.dir);
        } catch {
          // not empty: something else lives there now
        }
      }
    },
    ours() {
      let names: string[];
      try {
        names = readdirSync(etcDir);
      } catch {
        return [];
      }
      return names.sort().flatMap((name) => {
        const text = readIfExists(netnsFiles(name, etcDir).file);
        if (!isOurs(text)) return [];
        const pid = /^[^\n]* pid=(\d+)/.exec(text!)?.[1];
        return [{ name, pid: pid === undefined ? undefined : Number(pid) }];
      });
    },
  };
}
