/** Traffic figures in the status: projected per connection when read, decoded and printed by the CLI. */
import { describe, it, expect } from 'vitest';
import type { Connection } from '../../../src/api';
import { api } from '../../../src/api';
import { projectStatus, type StatusSources } from '../../../src/agent/status';
import { printStatus, viewStatus } from '../../../src/agent/cli/commands';

const conn = (id: string): Connection => ({
  id,
  network_service: 'icmp-responder',
  state: 'UP',
  mechanism: { type: 'KERNEL', parameters: { name: 'nsm-1', inodeURL: 'file:///run/netns/blue' } },
  path: { index: 1, path_segments: [{ id: `${id}-c`, name: 'nsc' }, { id, name: 'host-a' }] },
});

const sources = (extra: Partial<StatusSources>): StatusSources => ({
  name: 'host-a',
  version: '1',
  started: 1_700_000_000_000,
  registry: 'embedded (memory)',
  listen: [],
  url: '',
  tunnelIp: '',
  identity: '',
  endpoints: [],
  connections: [conn('s1'), conn('s2')],
  held: [],
  pending: [],
  tunnelOf: () => ({}),
  svid: { id: 'spiffe://nsm.local/nsm-agent/host-a', expires: 1_700_003_600_000, source: 'dev' },
  journal: { since: () => undefined, nextHop: () => undefined, lastHeal: () => undefined },
  ...extra,
});

describe('status traffic', () => {
  it('is projected for the connections it was read for, and survives the wire (uint64 as text)', () => {
    const t = { side: 'client' as const, rx_bytes: 3 * 1024 * 1024, tx_bytes: 1536, rx_packets: 101, tx_packets: 102, handshake_age_ms: 12_400 };
    const s = projectStatus(sources({ traffic: (id) => (id === 's1' ? t : undefined) }));
    expect(s.connections[0]).toMatchObject({ traffic: t });
    expect(s.connections[1]).not.toHaveProperty('traffic');

    const method = api().agent.nsmagent.v1.Agent.service.Status;
    const wire: any = method.responseDeserialize(method.responseSerialize(s));
    expect(wire.connections[0].traffic.rx_bytes).toBe(String(3 * 1024 * 1024));
    const view = viewStatus(wire);
    expect(view.connections[0]!.traffic).toEqual({ side: 'client', rxBytes: 3 * 1024 * 1024, txBytes: 1536, rxPackets: 101, txPackets: 102, handshakeAgeMs: 12_400 });
    expect(view.connections[1]!.traffic).toBeNull();
    const text = printStatus(view);
    expect(text).toMatch(/^\s+client rx 3\.0 MiB \(101\), tx 1\.5 KiB \(102\), handshake 12s ago$/m);
    expect(text.match(/ rx /g)).toHaveLength(1);
  });

  it('prints no traffic line when nothing was read', () => {
    expect(printStatus(viewStatus(projectStatus(sources({}))))).not.toMatch(/ rx /);
  });
});
