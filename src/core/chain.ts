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

/** One position of a chain: runs `el` with `rest` (the positions after it, then the outer next) as next. */
interface Link {
  readonly el: Record<string, AnyMethod>;
  readonly rest: object;
}
type LinkClass = new (el: object, rest: object) => Link;

const linkClasses = new WeakMap<object, LinkClass>();

/**
 * The class of a kind's positions: the API's methods live on its prototype, so a position is
 * one small object (no closures), and positions are built once per chain and outer next, not
 * per call (they are kept in the Ctx of every call, and in the Ctxs that elements keep).
 */
function linkClass<E extends object>(kind: ChainKind<E>): LinkClass {
  let C = linkClasses.get(kind);
  if (C) return C;
  const key = kind.key as Key<unknown>;
  C = class {
    constructor(
      readonly el: Record<string, AnyMethod>,
      readonly rest: object,
    ) {}
  } as unknown as LinkClass;
  for (const m of kind.methods) {
    (C.prototype as Record<string, AnyMethod>)[m] = function (this: Link, ctx: Ctx, ...args: unknown[]) {
      return this.el[m]!(ctx.with(key, this.rest), ...args);
    };
  }
  linkClasses.set(kind, C);
  return C;
}

/** An element that runs `elements` in order, then continues with the caller's next. */
export function chainOf<E extends object>(kind: ChainKind<E>, elements: readonly E[]): E {
  const list = elements.filter(Boolean);
  const Link = linkClass(kind);
  // The first position for each outer next (the tail, or a position of an enclosing chain: both
  // live as long as the chains). Weak, so a next that is dropped takes its positions along.
  const firsts = new WeakMap<E, E>();
  const first = (parent: E): E => {
    let f = firsts.get(parent);
    if (!f) {
      let next: object = parent;
      for (let i = list.length - 1; i >= 0; i--) next = new Link(list[i]!, next);
      f = next as E;
      firsts.set(parent, f);
    }
    return f;
  };
  const chain = {} as Record<string, AnyMethod>;
  for (const m of kind.methods) {
    chain[m] = (ctx: Ctx, ...args: unknown[]) => (first(nextOf(kind, ctx))[m] as unknown as AnyMethod)(ctx, ...args);
  }
  return chain as unknown as E;
}
