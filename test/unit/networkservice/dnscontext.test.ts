import { describe, it, expect } from 'vitest';
import { Ctx } from '../../../src/core/ctx';
import { chainServer } from '../../../src/core/networkservice';
import { dnsContextServer } from '../../../src/networkservice/dnscontext';
import { parseConfig } from '../../../src/agent/config';
import { toDnsConfig } from '../../../src/agent/config/dns';
import { recorder } from './helpers';

describe('dnscontext server', () => {
  const mine = { dns_server_ips: ['172.16.1.100'], search_domains: ['my.coredns.service'] };

  it('adds its configs to the request, once, keeping the ones already there', async () => {
    const rec = recorder();
    const chain = chainServer(dnsContextServer([mine]), rec);
    const other = { dns_server_ips: ['10.0.0.53'], search_domains: [] };
    const req = { connection: { id: 'a', context: { ip_context: { src_ip_addrs: ['1.1.1.1/32'] }, dns_context: { configs: [other] } } } };
    const conn = await chain.request(Ctx.background(), req);
    expect(rec.requests[0]!.connection!.context).toEqual({ ip_context: { src_ip_addrs: ['1.1.1.1/32'] }, dns_context: { configs: [other, mine] } });
    expect(req.connection.context.dns_context.configs).toEqual([other]);
    // a refresh brings the config back (in another order): not added twice
    const again = { dns_server_ips: ['172.16.1.100'], search_domains: ['my.coredns.service'] };
    await chain.request(Ctx.background(), { connection: { ...conn, context: { dns_context: { configs: [again, other] } } } });
    expect(rec.requests[1]!.connection!.context!.dns_context!.configs).toEqual([again, other]);
    await chain.request(Ctx.background(), { connection: { id: 'b' } });
    expect(rec.requests[2]!.connection!.context).toEqual({ dns_context: { configs: [mine] } });
  });

  it('sends an endpoint\'s dns entry with upstream field names, domains without the final dot', () => {
    const cfg = parseConfig({ endpoints: [{ name: 'e', services: ['s'], cidr: '172.16.1.0/31', dns: [{ servers: ['172.16.1.100'], searchDomains: ['my.coredns.service.'] }] }] }).endpoints[0]!;
    expect(cfg.dns!.map(toDnsConfig)).toEqual([{ dns_server_ips: ['172.16.1.100'], search_domains: ['my.coredns.service'] }]);
  });
});
