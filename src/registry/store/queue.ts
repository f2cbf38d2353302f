/**
 * One watcher's queue, shared by the stores: the snapshot, then at most `limit` unread live
 * events. A consumer that falls further behind is failed with UNAVAILABLE instead of making
 * writers wait or memory grow; the consumer sees the error after what was queued.
 */
import { AgentError } from '../../core/errors';
import type { StoreEvent } from './store';

export class WatchQueue<T> {
  private readonly items: StoreEvent<T>[];
  private snapshotLeft: number;
  failed: AgentError | undefined;
  private wake: (() => void) | undefined;

  constructor(snapshot: StoreEvent<T>[], private readonly limit: number) {
    this.items = snapshot;
    this.snapshotLeft = snapshot.length;
  }

  /** False when the queue has failed (now, by overflowing, or before). */
  offer(ev: StoreEvent<T>, what: string): boolean {
    if (this.failed) return false;
    if (this.items.length - this.snapshotLeft >= this.limit) {
      this.fail(new AgentError('UNAVAILABLE', `${what} watch: consumer fell more than ${this.limit} events behind`));
      return false;
    }
    this.items.push(ev);
    this.notify();
    return true;
  }

  fail(err: AgentError): void {
    this.failed ??= err;
    this.notify();
  }

  take(): StoreEvent<T> | undefined {
    const ev = this.items.shift();
    if (ev && this.snapshotLeft > 0) this.snapshotLeft--;
    return ev;
  }

  waitForChange(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }

  notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
