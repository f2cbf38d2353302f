/**
 * Queries answered by the agent's DNS servers (the resolver in client namespaces and the vL3
 * endpoints' name servers), by server and response code, for the metrics exporter. One count per
 * process: an agent is one per process, and the counts are only ever read in total.
 */
import { RCODE } from './forwarder';

/** Which of the agent's DNS servers answered: a client namespace's resolver, or a vL3 endpoint's. */
export type DnsServerKind = 'resolver' | 'vl3';

const RCODE_NAMES = new Map<number, string>(Object.entries(RCODE).map(([name, code]) => [code, name]));

export class DnsAnswerCounts {
  private readonly counts = new Map<string, { server: DnsServerKind; rcode: string; n: number }>();

  /** One query handled by `server`: its answer (its rcode is counted), or undefined when dropped. */
  count(server: DnsServerKind, answer: Buffer | undefined): void {
    const code = answer && answer.length >= 4 ? answer[3]! & 0x0f : undefined;
    const rcode = code === undefined ? 'DROPPED' : (RCODE_NAMES.get(code) ?? String(code));
    const key = `${server}/${rcode}`;
    const entry = this.counts.get(key);
    if (entry) entry.n++;
    else this.counts.set(key, { server, rcode, n: 1 });
  }

  entries(): { server: DnsServerKind; rcode: string; n: number }[] {
    return [...this.counts.values()];
  }
}

export const dnsAnswers = new DnsAnswerCounts();
