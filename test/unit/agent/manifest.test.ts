import { describe, it, expect } from 'vitest';
import { MAX_MANIFEST_BYTES, parseManifests } from '../../../src/agent/manifest';

const TWO = `apiVersion: networkservicemesh.io/v1
kind: NetworkService
metadata:
  name: icmp-responder
spec:
  payload: IP
  matches:
    - source_selector:
      fallthrough: true
      routes:
        - destination_selector:
            app: nse-icmp-responder
            nodeName: "{{.nodeName}}"
    - source_selector:
      routes:
        - destination_selector:
            app: icmp-responder-supplier
---
apiVersion: networkservicemesh.io/v1
kind: NetworkService
metadata:
  name: select-forwarder
spec:
  payload: ETHERNET
  matches:
    - sourceSelector: {app: a}
      metadata:
        labels:
          my_forwarder_capability: "true"
`;

describe('NetworkService manifests', () => {
  it('parses the upstream form, several documents, camelCase too', () => {
    const list = parseManifests(TWO, 'ns.yaml');
    expect(list).toHaveLength(2);
    expect(list[0]).toEqual({
      name: 'icmp-responder',
      payload: 'IP',
      matches: [
        {
          source_selector: {},
          fallthrough: true,
          routes: [{ destination_selector: { app: 'nse-icmp-responder', nodeName: '{{.nodeName}}' }, weight: 0 }],
          metadata: null,
        },
        { source_selector: {}, fallthrough: false, routes: [{ destination_selector: { app: 'icmp-responder-supplier' }, weight: 0 }], metadata: null },
      ],
    });
    expect(list[1]!.matches![0]).toMatchObject({ source_selector: { app: 'a' }, metadata: { labels: { my_forwarder_capability: 'true' } } });
  });

  it('defaults the payload to IP', () => {
    const [ns] = parseManifests('apiVersion: networkservicemesh.io/v1\nkind: NetworkService\nmetadata: {name: a}\n', 'f');
    expect(ns!.payload).toBe('IP');
  });

  it.each([
    ['kind: Pod\napiVersion: networkservicemesh.io/v1\nmetadata: {name: a}', /document 1\): kind: must be NetworkService/],
    ['kind: NetworkService\napiVersion: v1\nmetadata: {name: a}', /apiVersion: must be networkservicemesh.io\/v1/],
    ['kind: NetworkService\napiVersion: networkservicemesh.io/v1\nmetadata: {name: A_b}', /metadata.name: must be a lower-case DNS name/],
    ['kind: NetworkService\napiVersion: networkservicemesh.io/v1\nmetadata: {name: a}\nspec: {payload: TCP}', /spec.payload: must be IP or ETHERNET/],
    ['kind: NetworkService\napiVersion: networkservicemesh.io/v1\nmetadata: {name: a}\nspec: {matches: {}}', /spec.matches: must be a list/],
    ['kind: NetworkService\napiVersion: networkservicemesh.io/v1\nmetadata: {name: a}\nspec: {matches: [{routes: [{destination_selector: [1]}]}]}', /routes\[0\].destination_selector: must be a map/],
    ['kind: NetworkService\napiVersion: networkservicemesh.io/v1\nmetadata: {name: a}\nspec: {matches: [{fallthrough: yes please}]}', /fallthrough: must be true or false/],
    ['kind: NetworkService\napiVersion: networkservicemesh.io/v1\nmetadata: {name: a}\nspec: {colour: red}', /spec.colour: unknown key/],
    ['key: [unclosed', /invalid YAML/],
    ['a: 1\nb\n', /^bad\.yaml \(document 1\): line 2, column 1: invalid YAML: implicit map keys need to be followed by map values$/],
    ['kind: NetworkService\napiVersion: networkservicemesh.io/v1\nmetadata: {name: a}\nspec: {matches: [{source_selector: {"a b": x}}]}', /label key "a b" must be/],
    ['', /no NetworkService manifest found/],
  ])('rejects %j', (text, message) => {
    expect(() => parseManifests(text, 'bad.yaml')).toThrow(message);
  });

  it('refuses a manifest of more than 1 MiB before parsing it', () => {
    const big = 'apiVersion: networkservicemesh.io/v1\nkind: NetworkService\nmetadata: {name: a}\n' + '#'.repeat(MAX_MANIFEST_BYTES);
    expect(() => parseManifests(big, 'big.yaml')).toThrow(/^big\.yaml: the file is larger than 1048576 bytes \(1 MiB\), the most a manifest file may have$/);
  });
});
