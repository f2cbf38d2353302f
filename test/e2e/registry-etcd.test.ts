/**
 * Two agents, each with the embedded registry, over one etcd. An endpoint registered
 * through one agent is found through the other, and when its agent dies without unregistering,
 * its expiry reaches a watcher on the other agent as a deleted event.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { startAgent, type RunningAgent } from '../harness/agent.mjs';
import { haveEtcd, startEtcd, type RunningEtcd } from '../harness/etcd.mjs';
import { uniq, isRoot } from '../harness/exec.mjs';
import { addNetns, delNetns } from '../harness/netns.mjs';
import { newRegistryClients } from '../../src/registry/client';

const run = isRoot && haveEtcd() ? describe : describe.skip;

run('embedded registries over one etcd', () => {
  let etcd: RunningEtcd;
  let one: RunningAgent;
  let two: RunningAgent;
  const nse = uniq('nse');

  beforeAll(async () => {
    addNetns(nse);
    etcd = await startEtcd();
    const registry = { url: 'embedded', store: 'etcd', etcd: [`http://${etcd.endpoint}`], expiration: '2s' };
    [one, two] = await Promise.all([
      startAgent({
        name: 'etcd-one',
        registry,
        endpoints: [{ name: 'shared-responder', services: ['shared'], cidr: '172.16.9.0/30', netns: nse, labels: { app: 'shared' } }],
      }),
      startAgent({ name: 'etcd-two', registry }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await one?.stop('SIGKILL');
    await two?.stop();
    await etcd?.stop();
    delNetns(nse);
  });

  it('an endpoint registered through one agent is found through the other, and its expiry is watched there', async () => {
    const seen = two.cliJson(['endpoints']);
    const ep = seen.find((e: any) => e.name === 'shared-responder');
    expect(ep).toBeDefined();
    expect(ep.network_service_labels.shared.labels).toMatchObject({ app: 'shared', nodeName: 'etcd-one' });
    expect(two.cliJson(['services']).map((s: any) => s.name)).toContain('shared');

    // A watcher on agent two, then agent one dies without unregistering.
    const reg = newRegistryClients(`unix://${two.socket}`, grpc.credentials.createInsecure());
    try {
      const events: { name: string; deleted: boolean; at: number }[] = [];
      const stream = reg.nse.Find({ network_service_endpoint: { name: 'shared-responder' }, watch: true });
      stream.on('data', (r: any) => events.push({ name: r.network_service_endpoint?.name, deleted: !!r.deleted, at: Date.now() }));
      stream.on('error', () => {});
      await new Promise((r) => setTimeout(r, 300));
      expect(events.some((e) => e.name === 'shared-responder' && !e.deleted)).toBe(true);
      const killed = Date.now();
      await one.stop('SIGKILL');
      const deadline = Date.now() + 10_000;
      while (!events.some((e) => e.deleted) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const del = events.find((e) => e.deleted);
      expect(del?.name).toBe('shared-responder');
      // Expiry 2 s, refreshed at 2/3: gone within the expiry plus etcd's lease rounding.
      expect(del!.at - killed).toBeLessThan(5_000);
      stream.cancel();
      expect(two.cliJson(['endpoints']).some((e: any) => e.name === 'shared-responder')).toBe(false);
    } finally {
      reg.close();
    }
  }, 30_000);
});
