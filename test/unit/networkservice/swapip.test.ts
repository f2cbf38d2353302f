import { describe, expect, it } from 'vitest';
import type { Connection } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { chainClient, chainServer } from '../../../src/core/networkservice';
import { swapIpClient, swapIpServer } from '../../../src/networkservice/swapip';
import { recorder } from './helpers';

const ctx = () => Ctx.background();
const nat = { publicIP: '203.0.113.5', privateIP: () => '192.168.77.2' };
const wg = (params: Record<string, string>) => ({ cls: 'REMOTE', type: 'WIREGUARD', parameters: { src_port: '51820', ...params } });

describe('swapip (upstream swapip)', () => {
  it('client: offers the public src_ip with the private one in orig_src_ip, and sees its own again in the answer', async () => {
    const rec = recorder((c: Connection) => ({ ...c, mechanism: { ...wg({ ...c.mechanism?.parameters, dst_ip: '198.51.100.9' }) } }));
    const chain = chainClient(swapIpClient(nat), rec);
    const answer = await chain.request(ctx(), {
      connection: { id: 'c', mechanism: wg({ src_ip: '192.168.77.2' }) },
      mechanism_preferences: [wg({ src_ip: '192.168.77.2' }), { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1' } }],
    });
    const sent = rec.requests[0]!;
    expect(sent.connection?.mechanism?.parameters).toMatchObject({ src_ip: '203.0.113.5', orig_src_ip: '192.168.77.2' });
    expect(sent.mechanism_preferences![0]!.parameters).toMatchObject({ src_ip: '203.0.113.5', orig_src_ip: '192.168.77.2' });
    expect(sent.mechanism_preferences![1]!.parameters).toEqual({ name: 'nsm-1' });
    expect(answer.mechanism?.parameters).toMatchObject({ src_ip: '192.168.77.2', dst_ip: '198.51.100.9' });
    expect(answer.mechanism?.parameters).not.toHaveProperty('orig_src_ip');
  });

  it('server: answers the public dst_ip with the private one in orig_dst_ip; a refresh reaches the mechanism with its own', async () => {
    const rec = recorder((c: Connection) => ({ ...c, mechanism: wg({ ...c.mechanism?.parameters, dst_ip: '192.168.77.2' }) }));
    const chain = chainServer(swapIpServer(nat), rec);
    const first = await chain.request(ctx(), { connection: { id: 'c', mechanism: wg({ src_ip: '198.51.100.9' }) } });
    expect(first.mechanism?.parameters).toMatchObject({ src_ip: '198.51.100.9', dst_ip: '203.0.113.5', orig_dst_ip: '192.168.77.2' });
    await chain.request(ctx(), { connection: first });
    expect(rec.requests[1]!.connection?.mechanism?.parameters).toMatchObject({ dst_ip: '192.168.77.2' });
    expect(rec.requests[1]!.connection?.mechanism?.parameters).not.toHaveProperty('orig_dst_ip');
  });

  it('leaves addresses that are not this host\'s private one alone', async () => {
    const rec = recorder();
    await chainClient(swapIpClient(nat), rec).request(ctx(), { connection: { id: 'c' }, mechanism_preferences: [wg({ src_ip: '10.0.0.1' })] });
    expect(rec.requests[0]!.mechanism_preferences![0]!.parameters).toEqual({ src_port: '51820', src_ip: '10.0.0.1' });
  });
});
