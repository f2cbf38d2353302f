import { describe, it, expect } from 'vitest';
import { matchNs, matchNse } from '../../../src/registry/store/memory';
import type { NetworkService, NetworkServiceEndpoint } from '../../../src/api';

describe('matchNs (NSM registry matching)', () => {
  const ns: NetworkService = {
    name: 'icmp-responder',
    payload: 'ETHERNET',
    matches: [{ source_selector: { app: 'a' }, routes: [{ destination_selector: { x: '1' } }] }],
  };

  it('an empty query matches anything', () => {
    expect(matchNs({}, ns)).toBe(true);
    expect(matchNs(undefined, ns)).toBe(true);
    expect(matchNs({ name: '', payload: '', matches: [] }, ns)).toBe(true);
  });

  it('name must be equal, not a substring', () => {
    expect(matchNs({ name: 'icmp-responder' }, ns)).toBe(true);
    expect(matchNs({ name: 'icmp' }, ns)).toBe(false);
    expect(matchNs({ name: 'icmp-responder-2' }, ns)).toBe(false);
  });

  it('payload must be equal when set', () => {
    expect(matchNs({ payload: 'ETHERNET' }, ns)).toBe(true);
    expect(matchNs({ payload: 'IP' }, ns)).toBe(false);
  });

  it('matches must be deep-equal, with unset fields equal to their defaults', () => {
    // The stored entry as proto-loader decodes it (every field present).
    const decoded: NetworkService = {
      name: 'icmp-responder',
      payload: 'ETHERNET',
      path_ids: [],
      matches: [
        {
          source_selector: { app: 'a' },
          routes: [{ destination_selector: { x: '1' }, weight: 0 }],
          fallthrough: false,
          metadata: null,
        },
      ],
    };
    expect(matchNs({ matches: ns.matches }, decoded)).toBe(true);
    expect(matchNs({ matches: [{ source_selector: { app: 'b' } }] }, decoded)).toBe(false);
    expect(matchNs({ matches: [{ source_selector: { app: 'a' }, routes: [{ destination_selector: { x: '1' } }], fallthrough: true }] }, decoded)).toBe(false);
    expect(matchNs({ matches: [...(ns.matches ?? []), {}] }, decoded)).toBe(false);
    // A present but empty metadata message differs from an absent one (proto.Equal).
    expect(matchNs({ matches: [{ ...ns.matches![0], metadata: {} }] }, decoded)).toBe(false);
  });
});

describe('matchNse (NSM registry matching)', () => {
  const nse: NetworkServiceEndpoint = {
    name: 'nse-1',
    network_service_names: ['a', 'b'],
    network_service_labels: { a: { labels: { app: 'x', nodeName: 'n1' } }, b: { labels: {} } },
    url: 'tcp://10.0.0.1:5001',
    expiration_time: { seconds: '1700000060', nanos: 5 },
  };

  it('an empty query matches anything', () => {
    expect(matchNse({}, nse)).toBe(true);
    expect(matchNse({ name: '', network_service_names: [], network_service_labels: {}, url: '', expiration_time: null }, nse)).toBe(true);
  });

  it('name must be equal', () => {
    expect(matchNse({ name: 'nse-1' }, nse)).toBe(true);
    expect(matchNse({ name: 'nse' }, nse)).toBe(false);
  });

  it('every queried label of every queried service must be present with the same value', () => {
    expect(matchNse({ network_service_labels: { a: { labels: { app: 'x' } } } }, nse)).toBe(true);
    expect(matchNse({ network_service_labels: { a: { labels: { app: 'x', nodeName: 'n1' } } } }, nse)).toBe(true);
    expect(matchNse({ network_service_labels: { a: { labels: { app: 'y' } } } }, nse)).toBe(false);
    expect(matchNse({ network_service_labels: { a: { labels: { missing: 'x' } } } }, nse)).toBe(false);
    expect(matchNse({ network_service_labels: { b: { labels: {} } } }, nse)).toBe(true);
    // The service key itself must exist, even with no labels asked for.
    expect(matchNse({ network_service_labels: { c: { labels: {} } } }, nse)).toBe(false);
  });

  it('expiration_time matches on seconds only', () => {
    expect(matchNse({ expiration_time: { seconds: '1700000060', nanos: 999 } }, nse)).toBe(true);
    expect(matchNse({ expiration_time: { seconds: '1700000061' } }, nse)).toBe(false);
  });

  it('every queried service name must be in the entry', () => {
    expect(matchNse({ network_service_names: ['a'] }, nse)).toBe(true);
    expect(matchNse({ network_service_names: ['b', 'a'] }, nse)).toBe(true);
    expect(matchNse({ network_service_names: ['a', 'c'] }, nse)).toBe(false);
  });

  it('url is a substring match', () => {
    expect(matchNse({ url: '10.0.0.1' }, nse)).toBe(true);
    expect(matchNse({ url: 'tcp://10.0.0.1:5001' }, nse)).toBe(true);
    expect(matchNse({ url: '10.0.0.2' }, nse)).toBe(false);
  });

  it('all set conditions must hold together', () => {
    expect(matchNse({ name: 'nse-1', network_service_names: ['a'], url: ':5001' }, nse)).toBe(true);
    expect(matchNse({ name: 'nse-1', network_service_names: ['a'], url: ':5002' }, nse)).toBe(false);
  });
});
