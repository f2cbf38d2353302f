/**
 * The registry server: NS and NSE chains over a store, shaped like upstream registry-memory.
 *
 *   NS:  validate → [authorize] → setpayload → store
 *   NSE: validate → [authorize] → [clientinfo(nodeName)] → expire(defaultExpiration)
 *        → setregistrationtime → store
 *
 * Callers (the gRPC glue, or in-process users) pass a Ctx whose clock is `clock`; `close()`
 * disarms expiry timers (it does not end watchers: abort their ctx for that).
 */
import { Clock } from '../core/clock';
import { Ctx } from '../core/ctx';
import { Logger, silentLogger } from '../core/log';
import { NsRegistry, NseRegistry, chainNsRegistry, chainNseRegistry } from '../core/registry';
import { clientInfoNseRegistry } from './common/clientinfo';
import { DEFAULT_EXPIRATION_MS, expireNseRegistry } from './common/expire';
import { setPayloadNsRegistry } from './common/setpayload';
import { setRegistrationTimeNseRegistry } from './common/setregistrationtime';
import { storeNsRegistry, storeNseRegistry } from './store/elements';
import { MemoryStore } from './store/memory';
import { RegistryStore } from './store/store';
import { authorizeNseRegistry, authorizeNsRegistry } from './common/authorize';
import { validateNseRegistry, validateNsRegistry } from './common/validate';

export interface RegistryServerOptions {
  clock: Clock;
  log?: Logger;
  /** When set, NSE registrations get `nodeName` in each network_service_labels entry. */
  nodeName?: string;
  /** Milliseconds an NSE registration lives without refresh; default 60 s. */
  defaultExpiration?: number;
  /** Defaults to a new MemoryStore. */
  store?: RegistryStore;
  /**
   * Authorize callers that present a SPIFFE identity (mTLS): tokens, and only the first
   * registrant of a name may refresh or remove it. `self` names this registry in refusals.
   */
  authorize?: { self: () => string | undefined };
}

export interface RegistryServer {
  readonly ns: NsRegistry;
  readonly nse: NseRegistry;
  readonly store: RegistryStore;
  readonly clock: Clock;
  readonly log: Logger;
  /** A Ctx to call the chains with (clock, log); the gRPC glue derives each call's Ctx from it. */
  ctx(): Ctx;
  close(): void;
}

export function newRegistryServer(opts: RegistryServerOptions): RegistryServer {
  const life = new AbortController();
  const store = opts.store ?? new MemoryStore();
  const log = opts.log ?? silentLogger;
  const auth = opts.authorize ? { self: opts.authorize.self, forgetAfterMs: opts.defaultExpiration ?? DEFAULT_EXPIRATION_MS } : undefined;
  const nse = chainNseRegistry(
    validateNseRegistry(),
    ...(auth ? [authorizeNseRegistry(auth)] : []),
    ...(opts.nodeName ? [clientInfoNseRegistry({ nodeName: opts.nodeName })] : []),
    expireNseRegistry({ defaultExpiration: opts.defaultExpiration ?? DEFAULT_EXPIRATION_MS, signal: life.signal }),
    setRegistrationTimeNseRegistry(),
    storeNseRegistry(store.nse),
  );
  const ns = chainNsRegistry(validateNsRegistry(), ...(auth ? [authorizeNsRegistry({ self: auth.self })] : []), setPayloadNsRegistry(), storeNsRegistry(store.ns));
  return {
    ns,
    nse,
    store,
    clock: opts.clock,
    log,
    ctx: () => Ctx.background({ clock: opts.clock, log }),
    close: () => life.abort(),
  };
}
