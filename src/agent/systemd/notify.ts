/**
 * What the daemon tells systemd (sd_notify(3), Type=notify): READY=1 once it serves,
 * STATUS= lines saying what it does, RELOADING=1/READY=1 around a reload, STOPPING=1, and
 * WATCHDOG=1 every half WatchdogSec while the event loop runs (a hung agent stops pinging and
 * systemd restarts it). Without $NOTIFY_SOCKET (not under systemd) every call is a no-op.
 */
import type { Logger } from '../../core/log';
import { sdNotify } from '../../sys';

export type Send = (state: string) => boolean;

export class Notifier {
  private watchdogTimer: NodeJS.Timeout | undefined;
  private lastStatus = '';

  constructor(
    private readonly log: Logger,
    private readonly send: Send = sdNotify,
  ) {}

  private notify(state: string): void {
    try {
      this.send(state);
    } catch (err) {
      this.log.warn('sd_notify failed', { state: state.split('\n')[0], error: err });
    }
  }

  status(text: string): void {
    if (text === this.lastStatus) return;
    this.lastStatus = text;
    this.notify(`STATUS=${text}`);
  }

  ready(status: string): void {
    this.lastStatus = status;
    this.notify(`READY=1\nSTATUS=${status}\nMAINPID=${process.pid}`);
  }

  reloading(): void {
    this.lastStatus = 'reloading configuration';
    this.notify(`RELOADING=1\nSTATUS=${this.lastStatus}`);
  }

  stopping(): void {
    this.lastStatus = 'stopping: closing connections';
    this.notify(`STOPPING=1\nSTATUS=${this.lastStatus}`);
  }

  /**
   * Starts WATCHDOG=1 pings if systemd asked for them (WATCHDOG_USEC for this pid), at half
   * the interval, as sd_watchdog_enabled(3) suggests. Returns the interval in ms, or 0.
   */
  startWatchdog(env: NodeJS.ProcessEnv = process.env): number {
    const usec = Number(env['WATCHDOG_USEC']);
    const pid = env['WATCHDOG_PID'];
    if (!Number.isFinite(usec) || usec <= 0) return 0;
    if (pid !== undefined && pid !== '' && Number(pid) !== process.pid) return 0;
    const every = Math.max(1, Math.floor(usec / 2000));
    this.stopWatchdog();
    this.notify('WATCHDOG=1');
    this.watchdogTimer = setInterval(() => this.notify('WATCHDOG=1'), every);
    this.watchdogTimer.unref();
    return every;
  }

  stopWatchdog(): void {
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }
}
