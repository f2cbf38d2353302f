/**
 * Whether what a record names was left by another agent that still runs (and serves it), or
 * by this process or a dead one (then this agent takes it over).
 */

/** True if `pid` is a live process other than this one. */
export function anotherLiveAgent(pid: number | undefined): boolean {
  if (pid === undefined || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}
