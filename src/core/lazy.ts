/**
 * Modules loaded on first use. The CLI shares modules with the daemon; what only some commands
 * or only the daemon need (a YAML parser, a schema compiler, etcd3) is loaded when used, so that
 * a command such as `version` or `status` starts without loading them.
 */

/** A module object whose `load` (a `require`) runs on the first access to one of its members. */
export function lazyModule<T extends object>(load: () => T): T {
  let loaded: T | undefined;
  const target = (): T => (loaded ??= load());
  return new Proxy({} as T, {
    get: (_t, key) => Reflect.get(target(), key),
    has: (_t, key) => Reflect.has(target(), key),
  });
}
