/**
 * Chains of elements, NSM style: an element has its API's own methods (request/close, or
 * register/find/unregister) with a Ctx first; it continues by calling the next element found
 * in the Ctx (`next(ctx)`), and does its own work before (way in) and after (way back).
 *
 * A chain is itself an element: nested in another chain, its last element continues into the
 * outer chain's next. With no next in the Ctx, `next` returns the API's tail element, so no
 * element ever holds a nil.
 */
import { Ctx, Key } from './ctx';

/** Describes one API for the generic chain machinery. */
export interface ChainKind<E extends object> {
  /** Where the next element of this API is kept in the Ctx. */
  readonly key: Key<E>;
  /** What `next` returns at the end of the outermost chain. */
  readonly tail: E;
  /** The API's method names; each takes a Ctx as its first argument. */
  readonly methods: readonly (keyof E & string)[];
}

/** The element after the caller's position, or the tail. */
export function nextOf<E extends object>(kind: ChainKind<E>, ctx: Ctx): E {
  return ctx.get(kind.key) ?? kind.tail;
}

type AnyMethod = (ctx: Ctx, ...args: unknown[]) => unknown;

/**
 * Builds the element at position i whose `next` is the rest of the list, ending in `parent`.
 * Built per call, because `parent` (the outer chain's next) is only known at call time.
 */
function link<E extends object>(kind: ChainKind<E>, elements: readonly E[], i: number, parent: E): E {
  const el = elements[i];
  if (!el) return parent;
  const bound = {} as Record<string, AnyMethod>;
  for (const m of kind.methods) {
    bound[m] = (ctx: Ctx, ...args: unknown[]) => {
      const rest = link(kind, elements, i + 1, parent);
      return (el[m] as unknown as AnyMethod).call(el, ctx.with(kind.key, rest), ...args);
    };
  }
  return bound as unknown as E;
}

/** An element that runs `elements` in order, then continues with the caller's next. */
export function chainOf<E extends object>(kind: ChainKind<E>, elements: readonly E[]): E {
  const list = elements.filter(Boolean);
  const chain = {} as Record<string, AnyMethod>;
  for (const m of kind.methods) {
    chain[m] = (ctx: Ctx, ...args: unknown[]) => {
      const first = link(kind, list, 0, nextOf(kind, ctx));
      return (first[m] as unknown as AnyMethod)(ctx, ...args);
    };
  }
  return chain as unknown as E;
}
