/**
 * A per-key promise queue: jobs run one at a time, in the order they were queued. Node is
 * single-threaded, but `await` points interleave, so begin still needs NSM's serialize.Executor.
 */
import type { Ctx } from '../../core/ctx';
import { AgentError } from '../../core/errors';

export class Serial {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;

  /** Runs fn after every job queued before it has settled; resolves or rejects as fn does. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.queued++;
    const job = this.tail.then(fn);
    this.tail = job.then(
      () => void this.queued--,
      () => void this.queued--,
    );
    return job;
  }

  /** Jobs queued or running. */
  get size(): number {
    return this.queued;
  }
}

/** The error a ctx was aborted with, as an AgentError. */
export function abortError(ctx: Ctx): AgentError {
  return AgentError.from(ctx.signal.reason ?? new AgentError('CANCELLED', 'cancelled'), 'CANCELLED');
}

/**
 * Settles like `job`, or rejects with the abort error as soon as ctx is aborted. The job itself
 * goes on (it cannot be stopped from outside); its outcome is then ignored.
 */
export function raceAbort<T>(ctx: Ctx, job: Promise<T>): Promise<T> {
  if (ctx.signal.aborted) {
    job.catch(() => {});
    return Promise.reject(abortError(ctx));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      job.catch(() => {});
      reject(abortError(ctx));
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    job.then(
      (v) => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        ctx.signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
