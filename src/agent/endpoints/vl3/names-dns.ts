/**
 * The names of a vL3 endpoint's members, as upstream's vl3dns serves them: each member
 * (client) of the endpoint is `<name>.<service>.`, with A and AAAA records for its addresses
 * and PTR records back from them. This is the pure part: the records and the answer to one
 * query, without sockets (./dns-server.ts serves it).
 *
 * Answers: a name under the service's zone that a member here holds gets its records (TTL 0:
 * members come and go, nothing should keep them); a reverse name of a member's address gets
 * the PTR. Any other name under the zone, and any other reverse name of the vL3 network, is
 * asked of the service's other endpoints when the query asks for recursion (RD), with RD
 * cleared: an endpoint answers a query without RD from its own records only, so a forwarded
 * query is never forwarded again (no loops between endpoints). Not found anywhere: NXDOMAIN. Names outside the zone, and
 * reverse names of addresses outside the vL3 network: REFUSED (the client's resolver asks its
 * other servers at the same time). An answer bigger than the query allows over UDP is sent
 * truncated (TC), so the client asks again over TCP.
 * Bad input as the client resolver treats it: too short or a response: dropped; not parsable
 * or other than one question: FORMERR; opcodes other than QUERY: NOTIMP.
 */
import type * as Packet from 'dns-packet';
import { lazyModule } from '../../../core/lazy';
import { isIP } from 'node:net';
import { headerAnswer, parseQuery, rcodeOf, RCODE } from '../../dns/forwarder';
import { contains, formatIp, parseIp, parsePrefix } from '../../../networkservice/ipam/cidr';

/** dns-packet, loaded by the first message that needs it: an agent whose connections carry no DNS never does. */
const packet = lazyModule(() => require('dns-packet') as typeof Packet);

const HEADER = 12;
const AA = 0x0400;
const RD = 0x0100;
const TC = 0x0200;

/** A member's name as a DNS label: lower case, letters, digits and '-' (others become '-'), at most 63. */
export function memberLabel(name: string | undefined): string | undefined {
  if (!name) return undefined;
  const label = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return label || undefined;
}

/** The IP address a full reverse-tree name stands for (4 labels under in-addr.arpa, 32 under ip6.arpa). */
export function addressOfReverse(rev: string): { family: 4 | 6; value: bigint } | undefined {
  const v4 = /^((?:\d{1,3}\.){4})in-addr\.arpa$/.exec(rev);
  if (v4) {
    const octets = v4[1]!.slice(0, -1).split('.').reverse();
    return octets.every((o) => Number(o) <= 255) ? parseIp(octets.join('.')) : undefined;
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa$/.exec(rev);
  if (v6) return { family: 6, value: BigInt(`0x${v6[1]!.replace(/\./g, '').split('').reverse().join('')}`) };
  return undefined;
}

/** The reverse-tree name of an IP address (in-addr.arpa or ip6.arpa), lower case, no final dot. */
export function reverseName(ip: string): string | undefined {
  const p = parseIp(ip);
  if (!p) return undefined;
  if (p.family === 4) return `${formatIp(4, p.value).split('.').reverse().join('.')}.in-addr.arpa`;
  const hex = p.value.toString(16).padStart(32, '0');
  return `${[...hex].reverse().join('.')}.ip6.arpa`;
}

interface Member {
  name: string;
  addresses: string[];
  /** The addresses' reverse names. */
  reverse: string[];
}

/** The member records of one endpoint, by connection id. */
export class MemberNames {
  private readonly byId = new Map<string, Member>();
  /** fqdn → ids of the members with that name */
  private readonly byName = new Map<string, Set<string>>();
  /** reverse name of an address → id of the member holding it */
  private readonly byReverse = new Map<string, string>();
  readonly zone: string;

  /**
   * @param networks the vL3 networks (prefixes) whose reverse names are answered or asked
   *   of the peers; other reverse names are refused. Undefined: every reverse name.
   */
  constructor(
    service: string,
    private readonly networks?: () => string[],
  ) {
    this.zone = service.toLowerCase().replace(/\.$/, '');
  }

  /** True if `rev` (a reverse-tree name) is an address of the vL3 network. */
  inReverseZone(rev: string): boolean {
    if (!this.networks) return true;
    const a = addressOfReverse(rev);
    if (!a) return false;
    return this.networks().some((n) => {
      const p = parsePrefix(n);
      return p !== undefined && contains(p, a.family, a.value);
    });
  }

  /** Sets what connection `id` holds (a name from the member's podName label, its addresses); no name: none. */
  set(id: string, name: string | undefined, addresses: string[]): void {
    this.delete(id);
    const label = memberLabel(name);
    const addrs = addresses.map((a) => a.replace(/\/\d+$/, '')).filter((a) => isIP(a) !== 0);
    if (!label || addrs.length === 0) return;
    const m: Member = { name: `${label}.${this.zone}`, addresses: addrs, reverse: addrs.map((a) => reverseName(a)!) };
    this.byId.set(id, m);
    let ids = this.byName.get(m.name);
    if (!ids) this.byName.set(m.name, (ids = new Set()));
    ids.add(id);
    for (const r of m.reverse) this.byReverse.set(r, id);
  }

  delete(id: string): void {
    const m = this.byId.get(id);
    if (!m) return;
    this.byId.delete(id);
    const ids = this.byName.get(m.name);
    ids?.delete(id);
    if (ids?.size === 0) this.byName.delete(m.name);
    for (const r of m.reverse) if (this.byReverse.get(r) === id) this.byReverse.delete(r);
  }

  /** Every record, for status and tests: fqdn (no final dot) → addresses. */
  list(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const name of this.byName.keys()) out.set(name, this.addresses(name)!);
    return out;
  }

  /** Addresses of `fqdn` (lower case, no final dot), undefined if no member has it. */
  addresses(fqdn: string): string[] | undefined {
    const ids = this.byName.get(fqdn);
    return ids && [...ids].flatMap((id) => this.byId.get(id)!.addresses);
  }

  /** The member name of the address whose reverse name is `rev`. */
  nameOf(rev: string): string | undefined {
    const id = this.byReverse.get(rev);
    return id === undefined ? undefined : this.byId.get(id)?.name;
  }

  /** True if `fqdn` is the zone or under it. */
  inZone(fqdn: string): boolean {
    return fqdn === this.zone || fqdn.endsWith(`.${this.zone}`);
  }
}

/** Asks the other endpoints (the query has RD cleared); resolves with the first answer found, or undefined. */
export type AskPeers = (query: Buffer) => Promise<Buffer | undefined>;

const TTL_S = 0;

/** The answer to `query` from `names` (asking `peers` for what is not here); undefined: drop it. */
export async function answerMemberQuery(names: MemberNames, query: Buffer, peers?: AskPeers, maxSize = 65_535): Promise<Buffer | undefined> {
  const out = await answerOf(names, query, peers);
  if (!out || out.length <= maxSize) return out;
  const cut = headerAnswer(query, rcodeOf(out), TC);
  cut.writeUInt16BE(out.readUInt16BE(2) | TC, 2);
  return cut;
}

async function answerOf(names: MemberNames, query: Buffer, peers?: AskPeers): Promise<Buffer | undefined> {
  const parsed = parseQuery(query);
  if (parsed === undefined || Buffer.isBuffer(parsed)) return parsed;
  const { decoded, question: q } = parsed;
  const fqdn = q.name.toLowerCase().replace(/\.$/, '');
  const reverse = /\.(in-addr|ip6)\.arpa$/.test(fqdn);
  if (reverse ? !names.inReverseZone(fqdn) : !names.inZone(fqdn)) return headerAnswer(query, RCODE.REFUSED);
  const type = q.type as string;
  const answers: Packet.Answer[] = [];
  let found = false;
  if (reverse) {
    const name = names.nameOf(fqdn);
    if (name) {
      found = true;
      if (type === 'PTR' || type === 'ANY') answers.push({ name: q.name, type: 'PTR', class: 'IN', ttl: TTL_S, data: `${name}.` });
    }
  } else {
    const addrs = names.addresses(fqdn);
    if (addrs) {
      found = true;
      for (const a of addrs) {
        const fam = isIP(a);
        if (fam === 4 && (type === 'A' || type === 'ANY')) answers.push({ name: q.name, type: 'A', class: 'IN', ttl: TTL_S, data: a });
        if (fam === 6 && (type === 'AAAA' || type === 'ANY')) answers.push({ name: q.name, type: 'AAAA', class: 'IN', ttl: TTL_S, data: a });
      }
    }
  }
  // The zone itself exists (no data), so that search-domain handling sees NOERROR for it.
  if (found || fqdn === names.zone) return encodeAnswer(query, decoded, RCODE.NOERROR, answers);
  const flags = query.readUInt16BE(2);
  if (flags & RD && peers) {
    const ask = Buffer.from(query);
    ask.writeUInt16BE(flags & ~RD, 2);
    const got = await peers(ask).catch(() => undefined);
    if (got && got.length >= HEADER && rcodeOf(got) === RCODE.NOERROR) {
      const out = Buffer.from(got);
      out.writeUInt16BE(query.readUInt16BE(0), 0);
      out.writeUInt16BE((out.readUInt16BE(2) & ~AA) | RD, 2);
      return out;
    }
  }
  return encodeAnswer(query, decoded, RCODE.NXDOMAIN, []);
}

function encodeAnswer(query: Buffer, decoded: Packet.DecodedPacket, rcode: number, answers: Packet.Answer[]): Buffer {
  try {
    const flags = AA | ((decoded.flags ?? 0) & RD) | rcode;
    return packet.encode({ id: decoded.id, type: 'response', flags, questions: decoded.questions, answers });
  } catch {
    return headerAnswer(query, RCODE.SERVFAIL);
  }
}
