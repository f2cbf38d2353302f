// SPDX-License-Identifier: Apache-2.0
// Root only: namespace handles, withNetns, Rtnl caching.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Rtnl,
  SysError,
  createNetns,
  deleteNetns,
  hostNetns,
  listLinks,
  listNetns,
  netnsPath,
  openNetns,
  sameNetns,
  setLoopbackUp,
  withNetns,
} from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;

/** What `fn` throws (undefined if it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}
const threadNs = (): number => statSync('/proc/thread-self/ns/net').ino;

describe('netnsPath', () => {
  it('maps names, keeps paths, decodes file URLs', () => {
    expect(netnsPath('nsc')).toBe('/run/netns/nsc');
    expect(netnsPath('/proc/1/ns/net')).toBe('/proc/1/ns/net');
    expect(netnsPath('file:///run/netns/x')).toBe('/run/netns/x');
    for (const bad of ['', '.', '..', 'a/b']) {
      expect(() => netnsPath(bad)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    }
  });
});

describe.skipIf(!root)('network namespaces', () => {
  const tmp = tempNetns('ns');
  afterAll(async () => {
    await tmp.cleanup();
    Rtnl.closeAll();
  });

  it('creates, opens, lists and deletes a named namespace', async () => {
    const ns = await tmp.create();
    expect(existsSync(`/run/netns/${ns.name}`)).toBe(true);
    expect(listNetns()).toContain(ns.name);
    expect(ns.inode).not.toBe(hostNetns().inode);
    expect(ns.dev).toBe(hostNetns().dev);

    const again = openNetns(`file:///run/netns/${ns.name}`);
    expect(sameNetns(again, ns)).toBe(true);
    again.close();
    expect(again.closed).toBe(true);

    // A fresh namespace only has lo, and its socket is not the host's.
    const links = await listLinks(Rtnl.for(ns));
    expect(links.map((l) => l.name)).toEqual(['lo']);
    expect(Rtnl.for(ns)).not.toBe(Rtnl.for(hostNetns()));

    await deleteNetns(ns.name);
    expect(listNetns()).not.toContain(ns.name);
    // The handle keeps the namespace alive after its name is gone.
    expect(withNetns(ns, threadNs)).toBe(ns.inode);
  });

  it('setLoopbackUp sets lo up (again: a no-op), and names the namespace it cannot enter', async () => {
    const ns = await tmp.create();
    expect((await listLinks(Rtnl.for(ns))).find((l) => l.name === 'lo')?.up).toBe(false);
    setLoopbackUp(ns);
    setLoopbackUp(ns);
    expect((await listLinks(Rtnl.for(ns))).find((l) => l.name === 'lo')?.up).toBe(true);
    const closed = openNetns(ns.path);
    closed.close();
    expect(thrown(() => setLoopbackUp(closed))).toBeInstanceOf(SysError);
  });

  it('opens /proc paths and the host namespace', () => {
    const self = openNetns('/proc/self/ns/net');
    expect(sameNetns(self, hostNetns())).toBe(true);
    self.close();
    hostNetns().close(); // no-op on the shared host handle
    expect(hostNetns().closed).toBe(false);
  });

  it('fails with ENOENT for a missing namespace', async () => {
    const err = thrown(() => openNetns('nsmt-does-not-exist'));
    expect(err).toBeInstanceOf(SysError);
    expect(err).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'open', path: '/run/netns/nsmt-does-not-exist' });
    expect((err as Error).message).toBe(
      "ENOENT: no such file or directory, open '/run/netns/nsmt-does-not-exist': no such network namespace",
    );
    await expect(deleteNetns('nsmt-does-not-exist')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'umount2' });
  });

  it('fails with EEXIST when the name is taken', async () => {
    const ns = await tmp.create();
    await expect(createNetns(ns.name)).rejects.toMatchObject({ code: 'EEXIST', errno: -17, syscall: 'open' });
    expect(listNetns()).toContain(ns.name); // the existing one is untouched
  });

  it('rejects a plain file that is not a namespace (EINVAL)', async () => {
    const path = `/run/netns/nsmt-plain-${process.pid}`;
    writeFileSync(path, '');
    try {
      expect(() => openNetns(path)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    } finally {
      await deleteNetns(path); // works on unmounted leftovers too
    }
    expect(existsSync(path)).toBe(false);
  });

  it('withNetns runs fn inside and restores the thread, also when fn throws', async () => {
    const a = await tmp.create();
    const b = await tmp.create();
    const home = threadNs();
    expect(withNetns(a, threadNs)).toBe(a.inode);
    expect(threadNs()).toBe(home);

    expect(() =>
      withNetns(a, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(threadNs()).toBe(home);

    // Nested: the inner call returns to the outer namespace, not home.
    const seen = withNetns(a, () => {
      const inner = withNetns(b, threadNs);
      return [inner, threadNs()];
    });
    expect(seen).toEqual([b.inode, a.inode]);
    expect(threadNs()).toBe(home);

    // A throwing inner call still restores the outer namespace.
    withNetns(a, () => {
      expect(() => withNetns(b, () => JSON.parse('{'))).toThrow(SyntaxError);
      expect(threadNs()).toBe(a.inode);
    });
    expect(threadNs()).toBe(home);
  });

  it('withNetns: /proc/sys/net writes land in the target namespace', async () => {
    const ns = await tmp.create();
    const file = '/proc/sys/net/ipv4/ip_forward';
    const hostValue = readFileSync(file, 'utf8');
    const want = hostValue.trim() === '1' ? '0' : '1';
    withNetns(ns, () => writeFileSync(file, want));
    expect(readFileSync(file, 'utf8')).toBe(hostValue);
    expect(withNetns(ns, () => readFileSync(file, 'utf8').trim())).toBe(want);
  });

  it('withNetns rejects async fns, closed handles and bad fds', async () => {
    const ns = await tmp.create();
    expect(() => withNetns(ns, async () => 1)).toThrow(/synchronous/);
    expect(threadNs()).toBe(hostNetns().inode);

    const other = openNetns(ns.name);
    other.close();
    expect(() => withNetns(other, () => 1)).toThrow(expect.objectContaining({ code: 'EBADF' }));

    // An fd that is not a netns: setns fails, nothing switched.
    const fd = openSync('/dev/null', 'r');
    try {
      const fake = { ...ns, fd, closed: false, path: '/dev/null' };
      expect(() => withNetns(fake, () => 1)).toThrow(
        expect.objectContaining({ code: 'EINVAL', syscall: 'setns', message: "EINVAL: invalid argument, setns '/dev/null'" }),
      );
    } finally {
      closeSync(fd);
    }
    expect(threadNs()).toBe(hostNetns().inode);
  });

  it("opens a namespace's netlink socket inside it, also from inside withNetns; a non-netns fd fails", async () => {
    const a = await tmp.create();
    const b = await tmp.create();
    execFileSync('ip', ['-n', b.name, 'link', 'add', 'only-in-b', 'type', 'bridge']);
    const names = async (ns: typeof a) => (await listLinks(Rtnl.for(ns))).map((l) => l.name).sort();
    expect(await names(b)).toEqual(['lo', 'only-in-b']);
    expect(threadNs()).toBe(hostNetns().inode);
    // Opened while the thread is in `a`: the socket is still b's, and the thread is back in a.
    const c = openNetns(b.name);
    try {
      const rtnl = withNetns(a, () => {
        const r = Rtnl.for(c);
        expect(threadNs()).toBe(a.inode);
        return r;
      });
      expect(rtnl).toBe(Rtnl.for(b));
      expect(await names(a)).toEqual(['lo']);
    } finally {
      c.close();
    }
    expect(threadNs()).toBe(hostNetns().inode);

    const fd = openSync('/dev/null', 'r');
    try {
      const fake = { ...a, fd, inode: 1, closed: false, path: '/dev/null', onClose: () => {} };
      expect(() => Rtnl.for(fake)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'setns', path: '/dev/null' }));
    } finally {
      closeSync(fd);
    }
    expect(threadNs()).toBe(hostNetns().inode);
  });

  it('caches one netlink socket per namespace and closes it with the last handle (no linger)', async () => {
    const linger = Rtnl.lingerMs;
    Rtnl.lingerMs = 0;
    try {
      const ns = await tmp.create();
      const second = openNetns(ns.name);
      const rtnl = Rtnl.for(ns);
      expect(Rtnl.for(second)).toBe(rtnl);
      ns.close();
      expect(rtnl.closed).toBe(false); // `second` still uses it
      second.close();
      expect(rtnl.closed).toBe(true);
      await expect(listLinks(rtnl)).rejects.toMatchObject({ code: 'EBADF' });
      expect(() => Rtnl.for(second)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    } finally {
      Rtnl.lingerMs = linger;
    }
  });

  it('keeps the socket for the linger after the last handle: a new handle takes it over, else it closes', async () => {
    const linger = Rtnl.lingerMs;
    Rtnl.lingerMs = 150;
    try {
      const ns = await tmp.create();
      const rtnl = Rtnl.for(ns);
      ns.close();
      expect(rtnl.closed).toBe(false);
      await new Promise((r) => setTimeout(r, 50));
      const again = openNetns(ns.name);
      expect(Rtnl.for(again)).toBe(rtnl); // taken over: the linger is cancelled
      await new Promise((r) => setTimeout(r, 250));
      expect(rtnl.closed).toBe(false);
      expect((await listLinks(rtnl)).map((l) => l.name)).toContain('lo');
      again.close();
      expect(rtnl.closed).toBe(false);
      await new Promise((r) => setTimeout(r, 250));
      expect(rtnl.closed).toBe(true);
      await expect(listLinks(rtnl)).rejects.toMatchObject({ code: 'EBADF' });
    } finally {
      Rtnl.lingerMs = linger;
    }
  });

  it('gives a namespace made again under the same name its own socket, not the lingering one', async () => {
    const name = `nsmt-ns-remade-${process.pid}`;
    const ns = await createNetns(name);
    const old = Rtnl.for(ns);
    ns.close();
    await deleteNetns(name);
    const remade = await createNetns(name);
    try {
      expect(remade.inode).not.toBe(ns.inode); // the old one is alive: the lingering socket holds it
      const rtnl = Rtnl.for(remade);
      expect(rtnl).not.toBe(old);
      expect(old.closed).toBe(false);
    } finally {
      remade.close();
      await deleteNetns(name);
      Rtnl.closeAll();
    }
    expect(old.closed).toBe(true);
  });
});
