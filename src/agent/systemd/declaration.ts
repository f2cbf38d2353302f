/**
 * The `[X-NetworkServiceMesh]` section of a unit:
 *
 *   [X-NetworkServiceMesh]
 *   Connect=kernel://db-replication/nsm-1?app=postgres   # one or more NSM client URLs
 *   Provide=db-replication?app=postgres                  # a service this unit serves, with labels
 *   Passthrough=secure-intranet?app=firewall             # or: a service this unit passes on
 *                                                        # (an element of a composed service)
 *   AddressPool=172.16.1.0/24                            # the pool of the unit's endpoint
 *   VL3IPAM=tcp://10.0.0.1:5006                          # or: a vL3 endpoint leasing from these
 *   DNS=172.16.1.100                                     # DNS servers handed to the endpoint's clients
 *   DNSSearch=my.service                                 # and their search domains
 *   Namespace=private                                    # private (default) or host
 *   OnDemand=yes                                         # with Provide=: started by the agent on a Request
 *   IdleStopSec=5min                                     # and stopped after this long without connections
 *
 * Connect=, Provide=, Passthrough=, AddressPool=, VL3IPAM=, DNS= and DNSSearch= are lists: several values on one line (blank-separated)
 * or several lines add up, and an empty assignment resets the list, as with systemd's own
 * list settings. This module only collects the values (no imports beyond unitfile, so the
 * generator stays quick); src/agent/systemd/units.ts checks them.
 */
import { readFileSync } from 'node:fs';
import { Assignment, UnitDirListing, UnitFileError, UnitFiles, findUnitFiles, sectionOf, unitSearchPath } from './unitfile';

export const SECTION = 'X-NetworkServiceMesh';

export interface RawDecl {
  unit: string;
  namespace: 'private' | 'host';
  connect: string[];
  provide: string[];
  /** Services the unit's endpoint passes on (a passthrough endpoint), with its labels; absent: none. */
  passthrough?: string[];
  addressPool: string[];
  /** vl3-ipam servers: the unit's endpoint is a vL3 one, its router the unit's namespace. */
  vl3ipam: string[];
  /** DNS servers and search domains of the unit's endpoint (one DNS config); absent: none. */
  dns?: string[];
  dnsSearch?: string[];
  /** OnDemand=: the agent starts the unit when a Request for its service arrives (a supplier). */
  onDemand?: boolean;
  /** IdleStopSec= as written (a systemd time span); absent: the default. */
  idleStopSec?: string;
  /** Where the section was read from (fragment and drop-ins that have it). */
  files: string[];
}

const LIST_KEYS = { Connect: 'connect', Provide: 'provide', Passthrough: 'passthrough', AddressPool: 'addressPool', VL3IPAM: 'vl3ipam', DNS: 'dns', DNSSearch: 'dnsSearch' } as const;
/** List keys whose values may also be comma-separated. */
const COMMA_LISTS = new Set(['AddressPool', 'VL3IPAM', 'DNS', 'DNSSearch']);

/** Collects the section's assignments; throws UnitFileError naming the file and line. */
export function collectDecl(unit: string, assignments: Assignment[]): RawDecl {
  const decl: RawDecl = { unit, namespace: 'private', connect: [], provide: [], passthrough: [], addressPool: [], vl3ipam: [], dns: [], dnsSearch: [], files: [] };
  for (const a of assignments) {
    if (!decl.files.includes(a.file)) decl.files.push(a.file);
    if (a.key in LIST_KEYS) {
      const list = (decl[LIST_KEYS[a.key as keyof typeof LIST_KEYS]] ??= []);
      if (a.value === '') list.length = 0;
      else list.push(...a.value.split(COMMA_LISTS.has(a.key) ? /[\s,]+/ : /\s+/).filter(Boolean));
    } else if (a.key === 'Namespace') {
      if (a.value === '' || a.value === 'private') decl.namespace = 'private';
      else if (a.value === 'host') decl.namespace = 'host';
      else throw new UnitFileError(a.file, a.line, `Namespace= must be private or host, not ${JSON.stringify(a.value)}`);
    } else if (a.key === 'OnDemand') {
      const b = parseBoolean(a.value);
      if (b === undefined) throw new UnitFileError(a.file, a.line, `OnDemand= must be a boolean (yes or no), not ${JSON.stringify(a.value)}`);
      decl.onDemand = b;
    } else if (a.key === 'IdleStopSec') {
      if (a.value === '') delete decl.idleStopSec;
      else decl.idleStopSec = a.value;
    } else {
      throw new UnitFileError(a.file, a.line, `unknown key ${a.key}= in [${SECTION}] (known: Connect, Provide, Passthrough, AddressPool, VL3IPAM, DNS, DNSSearch, Namespace, OnDemand, IdleStopSec)`);
    }
  }
  return decl;
}

/** systemd's booleans (1/yes/true/on, 0/no/false/off); an empty value is false. */
function parseBoolean(v: string): boolean | undefined {
  const x = v.toLowerCase();
  if (['', '0', 'no', 'false', 'off', 'n', 'f'].includes(x)) return false;
  if (['1', 'yes', 'true', 'on', 'y', 't'].includes(x)) return true;
  return undefined;
}

/** The unit's declaration from its files, or undefined if no file has the section. */
export function readDecl(unit: string, files: UnitFiles = findUnitFiles(unit, unitSearchPath()), listing?: UnitDirListing): RawDecl | undefined {
  // most units on a host have no such section: their files are not parsed
  const has = [files.fragment, ...files.dropIns].some((f) => f && hasSection(f, listing));
  if (!has) return undefined;
  return collectDecl(unit, sectionOf(files, SECTION));
}

const SECTION_HEADER = Buffer.from(`[${SECTION}]`);

/** Whether `file` has the section's header; `listing`: the scan that may have read it already. */
export function hasSection(file: string, listing?: UnitDirListing): boolean {
  try {
    return (listing?.readBefore(file) ?? readFileSync(file)).includes(SECTION_HEADER);
  } catch {
    return false;
  }
}

/** `foo.service` -> `foo`, `foo@bar.service` -> `foo@bar` (systemd's %N). */
export function unitBase(unit: string): string {
  return unit.endsWith('.service') ? unit.slice(0, -'.service'.length) : unit;
}

/** The private namespace of a unit, under /run/netns (the generator's NetworkNamespacePath=). */
export function unitNetnsName(unit: string): string {
  return `nsm-${unitBase(unit)}`;
}
