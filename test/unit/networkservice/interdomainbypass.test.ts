import { describe, expect, it } from 'vitest';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { chainServer } from '../../../src/core/networkservice';
import { interdomainBypassServer } from '../../../src/networkservice/interdomainbypass';
import { recorder } from './helpers';

const ctx = () => Ctx.background();

describe('interdomainbypass (server)', () => {
  it('strips this domain\'s suffix towards the endpoint and restores it in the answer', async () => {
    const rec = recorder();
    const chain = chainServer(interdomainBypassServer({ ownDomain: 'b.test' }), rec);
    const conn = { id: 'c1', network_service: 'icmp@b.test', network_service_endpoint_name: 'nse-1@b.test' };
    const answer = await chain.request(ctx(), { connection: conn });
    expect(rec.requests[0]!.connection).toMatchObject({ network_service: 'icmp', network_service_endpoint_name: 'nse-1' });
    expect(answer).toMatchObject({ network_service: 'icmp@b.test', network_service_endpoint_name: 'nse-1@b.test' });
    await chain.close(ctx(), answer);
    expect(rec.closes[0]).toMatchObject({ network_service: 'icmp', network_service_endpoint_name: 'nse-1' });
  });

  it('a first request (no endpoint yet) gets the endpoint chosen here back with the domain', async () => {
    const rec = recorder((c) => ({ ...c, network_service_endpoint_name: 'nse-1' }));
    const answer = await chainServer(interdomainBypassServer({ ownDomain: 'b.test' }), rec).request(ctx(), { connection: { id: 'c', network_service: 'icmp@b.test' } });
    expect(answer.network_service_endpoint_name).toBe('nse-1@b.test');
  });

  it('strips any domain from the names of an endpoint hosted here (a domain written as IP:port)', async () => {
    const rec = recorder();
    const chain = chainServer(interdomainBypassServer({ hosts: (n) => n === 'nse-1' }), rec);
    const conn = { id: 'c', network_service: 'icmp@10.0.0.2:5002', network_service_endpoint_name: 'nse-1@10.0.0.2:5002' };
    const answer = await chain.request(ctx(), { connection: conn });
    expect(rec.requests[0]!.connection).toMatchObject({ network_service: 'icmp', network_service_endpoint_name: 'nse-1' });
    expect(answer).toMatchObject({ network_service: 'icmp@10.0.0.2:5002', network_service_endpoint_name: 'nse-1@10.0.0.2:5002' });
    await chain.request(ctx(), { connection: { ...conn, network_service_endpoint_name: 'other@10.0.0.2:5002' } });
    expect(rec.requests[1]!.connection?.network_service).toBe('icmp@10.0.0.2:5002');
  });

  it('keeps the whole names of an endpoint hosted here under another domain (floating)', async () => {
    const rec = recorder();
    const chain = chainServer(interdomainBypassServer({ ownDomain: 'b.test', hosts: (n) => n === 'nse-b@floating.test' }), rec);
    const conn = { id: 'c', network_service: 'svc@floating.test', network_service_endpoint_name: 'nse-b@floating.test' };
    const answer = await chain.request(ctx(), { connection: conn });
    expect(rec.requests[0]!.connection).toMatchObject({ network_service: 'svc@floating.test', network_service_endpoint_name: 'nse-b@floating.test' });
    expect(answer).toMatchObject({ network_service: 'svc@floating.test', network_service_endpoint_name: 'nse-b@floating.test' });
  });

  it('leaves names of other domains and plain names alone', async () => {
    const rec = recorder();
    const chain = chainServer(interdomainBypassServer({ ownDomain: 'b.test' }), rec);
    await chain.request(ctx(), { connection: { id: 'c', network_service: 'icmp@c.test' } });
    await chain.request(ctx(), { connection: { id: 'd', network_service: 'icmp' } });
    expect(rec.requests.map((r) => r.connection?.network_service)).toEqual(['icmp@c.test', 'icmp']);
  });

  it('refuses an endpoint name spoofing another domain\'s suffix (FOREIGN_DOMAIN)', async () => {
    const rec = recorder();
    const chain = chainServer(interdomainBypassServer({ ownDomain: 'b.test' }), rec);
    const err = (await chain
      .request(ctx(), { connection: { id: 'c', network_service: 'icmp@b.test', network_service_endpoint_name: 'nse-1@c.test' } })
      .catch((e) => e)) as AgentError;
    expect(err.code).toBe('FOREIGN_DOMAIN');
    expect(err.message).toContain('nse-1@c.test');
    expect(rec.requests).toHaveLength(0);
  });
});
