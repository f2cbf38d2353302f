/**
 * The systemd-facing commands:
 *
 *   nsm-agent unit start UNIT   (ExecStart= of nsm-connect@UNIT-without-.service)
 *       reads UNIT's [X-NetworkServiceMesh] section, makes its namespace /run/netns/nsm-<name>
 *       (Namespace=private; a leftover of the same name is replaced), asks the agent to host
 *       its endpoint and make its connections, and exits 0 only when they are up. On failure
 *       it removes the namespace again, prints the reason and also logs it to the journal
 *       attached to UNIT (OBJECT_SYSTEMD_UNIT=), so `systemctl status UNIT` shows it.
 *   nsm-agent unit stop UNIT    (ExecStop=): the agent closes the unit's connections and
 *       unregisters its endpoint; the namespace is removed. Succeeds when the agent is down.
 *   nsm-agent unit list
 *   nsm-agent reload            (ExecReload=): re-read agent.yaml and wait for the result.
 *
 * Namespaces are made here and not in the agent: the agent runs in its own mount namespace
 * (ProtectSystem=strict), so a bind mount under /run/netns made there would not be seen by
 * systemd's NetworkNamespacePath=.
 */
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from '../../core/errors';
// The sys modules themselves, not sys/index: this runs before every unit that declares
// services, and the index loads the rtnetlink codec, which none of this needs.
import { setLoopbackUp } from '../../sys/loopback';
import { createNetns, deleteNetns, listNetns } from '../../sys/netns';
import type { ReloadResult } from '../reload';
import { controlCallSync, controlSocketPath } from '../systemd/control-client';
import { readDecl, unitNetnsName } from '../systemd/declaration';
import { checkDecl, UnitSpec, UnitState } from '../systemd/units';
import { isValidUnitName } from '../systemd/unitfile';
import { table } from './format';

const JOURNAL_SOCKET = '/run/systemd/journal/socket';

/** `foo` -> `foo.service` (nsm-connect@'s %i), names with a type kept. */
export function normalizeUnit(name: string): string {
  const unit = name.endsWith('.service') ? name : `${name}.service`;
  if (!isValidUnitName(unit)) throw new AgentError('INVALID_ARGUMENT', `${JSON.stringify(name)} is not a service unit name`);
  return unit;
}

/** Logs `message` to the journal as about `unit` (shown by `systemctl status unit`). Best effort. */
export function journalForUnit(unit: string, message: string, priority = 3): void {
  if (!existsSync(JOURNAL_SOCKET)) return;
  const fields = [
    `MESSAGE=${message.replace(/\n/g, ' ')}`,
    `PRIORITY=${priority}`,
    'SYSLOG_IDENTIFIER=nsm-agent',
    `OBJECT_SYSTEMD_UNIT=${unit}`,
    `NSM_UNIT=${unit}`,
  ];
  // Loaded here, on failure only: node:child_process is costly to load for a helper that succeeds.
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  spawnSync('logger', ['--journald'], { input: fields.join('\n') + '\n', timeout: 5_000, stdio: ['pipe', 'ignore', 'ignore'] });
}

async function recreateNetns(name: string): Promise<void> {
  if (listNetns().includes(name)) await deleteNetns(name);
  const ns = await createNetns(name);
  try {
    setLoopbackUp(ns);
  } finally {
    ns.close();
  }
}

async function removeNetns(name: string): Promise<boolean> {
  if (!listNetns().includes(name)) return false;
  await deleteNetns(name);
  return true;
}

export async function unitStart(agentSocket: string, name: string): Promise<UnitState> {
  const unit = normalizeUnit(name);
  let spec: UnitSpec | undefined;
  try {
    const raw = readDecl(unit);
    if (!raw) throw new AgentError('INVALID_ARGUMENT', `${unit} has no [X-NetworkServiceMesh] section (or no unit file)`);
    spec = checkDecl(raw);
    if (spec.netns !== 'host') await recreateNetns(spec.netns);
    return controlCallSync<UnitState>(controlSocketPath(agentSocket), { op: 'unit-start', spec });
  } catch (err) {
    const e = AgentError.from(err, 'INVALID_ARGUMENT');
    if (spec && spec.netns !== 'host') await removeNetns(spec.netns).catch(() => {});
    journalForUnit(unit, `network service mesh: ${e.message} (${e.code})`);
    throw e;
  }
}

export async function unitStop(agentSocket: string, name: string): Promise<{ stopped: boolean; agent: boolean; netns: boolean }> {
  const unit = normalizeUnit(name);
  let stopped = false;
  let agent = true;
  try {
    stopped = controlCallSync<{ stopped: boolean }>(controlSocketPath(agentSocket), { op: 'unit-stop', unit }).stopped;
  } catch (err) {
    if (!(err instanceof AgentError) || err.code !== 'UNAVAILABLE') throw err;
    // The agent is down: forget the unit so that it is not restored, and go on.
    agent = false;
    rmSync(path.join(path.dirname(agentSocket), 'units', `${unit}.json`), { force: true });
  }
  const netns = await removeNetns(unitNetnsName(unit));
  return { stopped, agent, netns };
}

export async function unitList(agentSocket: string): Promise<UnitState[]> {
  return controlCallSync<UnitState[]>(controlSocketPath(agentSocket), { op: 'units' });
}

export function printUnits(list: UnitState[]): string {
  if (!list.length) return 'no units';
  return table(
    ['UNIT', 'NETNS', 'ENDPOINT', 'CONNECTIONS'],
    list.map((u) => [
      u.unit,
      u.netns,
      u.endpoint ? `${u.endpoint} (${u.services.join(',')})` : '-',
      u.connections.map((c) => `${c.ifname}${c.up ? '' : ' (not held)'}`).join(',') || '-',
    ]),
  );
}

export async function reload(agentSocket: string): Promise<ReloadResult> {
  return controlCallSync<ReloadResult>(controlSocketPath(agentSocket), { op: 'reload' });
}

export function printReload(r: ReloadResult): string {
  const lines = [`reloaded ${r.file}: ${r.added.length} added, ${r.removed.length} removed, ${r.changed.length} changed`];
  for (const x of r.added) lines.push(`  + ${x}`);
  for (const x of r.removed) lines.push(`  - ${x}`);
  for (const x of r.changed) lines.push(`  ~ ${x}`);
  for (const x of r.connections ?? []) lines.push(`  connection ${x}`);
  if (r.restartNeeded.length) lines.push(`restart needed to apply: ${r.restartNeeded.join(', ')}`);
  for (const e of r.errors) lines.push(`error: ${e}`);
  return lines.join('\n');
}
