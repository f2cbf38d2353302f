import { describe, it, expect } from 'vitest';
import type { NetworkService, NetworkServiceEndpoint } from '../../../src/api';
import { matchEndpoint, processLabels, isSubset } from '../../../src/networkservice/discover';

const nse = (name: string, labels: Record<string, string>, service = 'ns'): NetworkServiceEndpoint => ({
  name,
  network_service_names: [service],
  network_service_labels: { [service]: { labels } },
});
const names = (l: NetworkServiceEndpoint[]) => l.map((e) => e.name);

const a = nse('a', { app: 'icmp', nodeName: 'node-1' });
const b = nse('b', { app: 'icmp', nodeName: 'node-2' });
const sup = nse('supplier', { app: 'supplier' });
const all = [a, b, sup];

describe('matchEndpoint', () => {
  it('a service without matches takes every endpoint', () => {
    expect(names(matchEndpoint({}, { name: 'ns' }, all))).toEqual(['a', 'b', 'supplier']);
  });

  it('the first match whose source selector applies decides; no applicable match gives nothing', () => {
    const ns: NetworkService = {
      name: 'ns',
      matches: [
        { source_selector: { app: 'firewall' }, routes: [{ destination_selector: { app: 'supplier' } }] },
        { source_selector: { app: 'client' }, routes: [{ destination_selector: { nodeName: 'node-2' } }] },
      ],
    };
    expect(names(matchEndpoint({ app: 'client' }, ns, all))).toEqual(['b']);
    expect(names(matchEndpoint({ app: 'firewall', x: 'y' }, ns, all))).toEqual(['supplier']);
    expect(matchEndpoint({ app: 'other' }, ns, all)).toEqual([]);
    expect(matchEndpoint({}, ns, all)).toEqual([]);
  });

  it('a match without fallthrough stops the search even with no candidates', () => {
    const ns: NetworkService = {
      name: 'ns',
      matches: [
        { routes: [{ destination_selector: { app: 'missing' } }] },
        { routes: [{ destination_selector: { app: 'supplier' } }] },
      ],
    };
    expect(matchEndpoint({}, ns, all)).toEqual([]);
  });

  it('fallthrough moves on when a match finds nothing (scale from zero)', () => {
    const ns: NetworkService = {
      name: 'ns',
      matches: [
        { fallthrough: true, routes: [{ destination_selector: { app: 'icmp', nodeName: '{{.nodeName}}' } }] },
        { routes: [{ destination_selector: { app: 'supplier' } }] },
      ],
    };
    expect(names(matchEndpoint({ nodeName: 'node-2' }, ns, all))).toEqual(['b']);
    expect(names(matchEndpoint({ nodeName: 'node-9' }, ns, all))).toEqual(['supplier']);
  });

  it('a metadata-only match with no routes takes every endpoint', () => {
    const ns: NetworkService = { name: 'ns', matches: [{ source_selector: {}, metadata: { labels: { p2p: 'true' } } }] };
    expect(names(matchEndpoint({}, ns, all))).toEqual(['a', 'b', 'supplier']);
    const noMeta: NetworkService = { name: 'ns', matches: [{ source_selector: {}, metadata: null }] };
    expect(matchEndpoint({}, noMeta, all)).toEqual([]);
  });

  it('templates a source selector too, and a selector value that cannot render does not match', () => {
    const ns: NetworkService = {
      name: 'ns',
      matches: [{ source_selector: { nodeName: '{{.nodeName}}', zone: '{{ .zone }}' }, routes: [{ destination_selector: { app: 'icmp' } }] }],
    };
    // {{ .zone }} renders to "<no value>" without a zone label, which is not the empty value.
    expect(matchEndpoint({ nodeName: 'n', x: 'y' }, ns, all)).toEqual([]);
    expect(names(matchEndpoint({ nodeName: 'n', zone: 'z' }, ns, all))).toEqual(['a', 'b']);
  });

  it('only considers the endpoint labels for this service', () => {
    const other = nse('c', { app: 'icmp' }, 'other-service');
    other.network_service_names = ['ns', 'other-service'];
    const ns: NetworkService = { name: 'ns', matches: [{ routes: [{ destination_selector: { app: 'icmp' } }] }] };
    expect(names(matchEndpoint({}, ns, [a, other]))).toEqual(['a']);
  });
});

describe('isSubset', () => {
  it('needs every key with an equal or templated-equal value, and at least as many entries', () => {
    expect(isSubset({ a: '1', b: '2' }, { a: '1' }, {})).toBe(true);
    expect(isSubset({ a: '1' }, { a: '1', b: '' }, {})).toBe(false);
    expect(isSubset({ a: '1', c: '3' }, { a: '1', b: '' }, {})).toBe(true); // a missing key reads as ""
    expect(isSubset({ n: 'node-1' }, { n: '{{.nodeName}}' }, { nodeName: 'node-1' })).toBe(true);
    expect(isSubset({ n: 'node-1' }, { n: '{{.nodeName}}' }, { nodeName: 'node-2' })).toBe(false);
  });
});

describe('processLabels', () => {
  const labels = { nodeName: 'node-1', 'dotted.key': 'dk' };
  it.each<[string, string]>([
    ['{{.nodeName}}', 'node-1'],
    ['{{ .nodeName }}', 'node-1'],
    ['{{index . "nodeName"}}', 'node-1'],
    ['{{ index . "dotted.key" }}', 'dk'],
    ['{{index . `nodeName`}}', 'node-1'],
    ['pre-{{.nodeName}}-post', 'pre-node-1-post'],
    ['{{.missing}}', '<no value>'],
    ['{{index . "missing"}}', ''],
    ['a {{- .nodeName -}} b', 'anode-1b'],
    ['{{/* note */}}x', 'x'],
    ['plain', 'plain'],
    ['}}', '}}'],
    ['{{.nodeName', '{{.nodeName'],
    ['{{}}', '{{}}'],
    ['{{.a.b}}', '{{.a.b}}'],
    ['{{ printf "%s" .nodeName }}', '{{ printf "%s" .nodeName }}'],
  ])('%s → %s', (tmpl, want) => {
    expect(processLabels(tmpl, labels)).toBe(want);
  });

  it('renders <no value> for fields with no labels at all', () => {
    expect(processLabels('{{.nodeName}}', undefined)).toBe('<no value>');
  });
});
