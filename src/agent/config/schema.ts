/**
 * The JSON schema of agent.yaml: the keys are the user-facing contract. Unknown keys are
 * errors, so a typo is never ignored.
 */
const duration = { type: 'string', pattern: '^(\\d+(\\.\\d+)?(ms|s|m|h))+$' };
const labels = { type: 'object', additionalProperties: { type: 'string' } };
const ifname = { type: 'string', minLength: 1, maxLength: 15, pattern: '^[^\\s/:]+$' };
// a port or protocol number, or a port range start-end (YAML may give a number)
const portOrNumber = { anyOf: [{ type: 'string', pattern: '^\\d{1,5}(-\\d{1,5})?$' }, { type: 'integer', minimum: 0, maximum: 65535 }] };
const route = {
  type: 'object',
  additionalProperties: false,
  required: ['prefix'],
  properties: { prefix: { type: 'string', minLength: 1 }, nextHop: { type: 'string', minLength: 1 } },
};
const hostPort = { type: 'string', pattern: '^(\\[[0-9a-fA-F:.]+\\]|[^\\s:\\[\\]]*):\\d{1,5}$' };

export const AGENT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$' },
    logLevel: { enum: ['debug', 'info', 'warn', 'error'] },
    stateDir: { type: 'string', minLength: 1 },
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: {
        unix: { type: 'string', minLength: 1 },
        allowUids: { type: 'array', items: { type: 'integer', minimum: 0 } },
        tcp: hostPort,
      },
    },
    tunnelIP: { type: 'string', minLength: 1 },
    // behind NAT: the address other hosts reach this one at (checked in index.ts; docs/interdomain.md)
    publicIP: { type: 'string', minLength: 1 },
    // this site's domain: its agents accept `name@<domain>` (docs/interdomain.md)
    domain: { type: 'string', pattern: '^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$' },
    // how other domains' registries are found (docs/interdomain.md); servers checked in index.ts
    interdomain: {
      type: 'object',
      additionalProperties: false,
      properties: {
        dnsServers: { type: 'array', items: { type: 'string', minLength: 1 } },
        timeout: duration,
        // this agent is its site's nsmgr-proxy (docs/interdomain.md); needs domain and listen.tcp
        relay: { type: 'boolean' },
      },
    },
    wireguard: {
      type: 'object',
      additionalProperties: false,
      properties: {
        ports: { type: 'string', pattern: '^\\d{1,5}(-\\d{1,5})?$' },
        implementation: { enum: ['auto', 'kernel', 'wireguard-go'] },
        spares: { type: 'integer', minimum: 0, maximum: 64 },
      },
    },
    maxTokenLifetime: duration,
    // OTLP traces (docs/metrics.md); TELEMETRY=true and NSM_OPEN_TELEMETRY_ENDPOINT also switch them
    telemetry: {
      type: 'object',
      additionalProperties: false,
      required: ['endpoint'],
      properties: { endpoint: hostPort },
    },
    // Prometheus /metrics (docs/metrics.md); off unless set
    metrics: {
      type: 'object',
      additionalProperties: false,
      required: ['listen'],
      properties: {
        listen: hostPort,
        // HTTPS with the agent's SVID; mtls: clients must present an SVID of the agent's trust domain
        tls: { type: 'boolean' },
        mtls: { type: 'boolean' },
      },
    },
    heal: {
      type: 'object',
      additionalProperties: false,
      properties: {
        // data-plane liveness check of held connections (ICMP from each source to each
        // destination address, inside the client's namespace); 0s turns it off
        livenessInterval: duration,
        livenessTimeout: duration,
        // the periodic checks of all held connections together (each costs CPU, so the total must stay bounded)
        maxChecksPerSecond: { type: 'integer', minimum: 1 },
      },
    },
    identity: {
      type: 'object',
      additionalProperties: false,
      properties: {
        source: { enum: ['spiffe', 'files', 'dev'] },
        // the Workload API: unix:///path, unix:/path or tcp://IP:port (checked in index.ts)
        socket: { type: 'string', minLength: 1 },
        files: {
          type: 'object',
          additionalProperties: false,
          required: ['cert', 'key', 'bundle'],
          properties: {
            cert: { type: 'string', minLength: 1 },
            key: { type: 'string', minLength: 1 },
            bundle: { type: 'string', minLength: 1 },
            // trust domain (td or spiffe://td) -> its bundle file
            federated: { type: 'object', additionalProperties: { type: 'string', minLength: 1 } },
          },
        },
        // other trust domains' bundles from their SPIFFE bundle endpoints (https_spiffe)
        federation: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['trustDomain', 'bundleEndpoint', 'endpointId'],
            properties: {
              trustDomain: { type: 'string', minLength: 1 },
              bundleEndpoint: { type: 'string', pattern: '^https://' },
              endpointId: { type: 'string', pattern: '^spiffe://' },
              bundle: { type: 'string', minLength: 1 },
              minRefresh: duration,
              maxRefresh: duration,
            },
          },
        },
        // serve the own trust domain's bundle (https_spiffe) for other domains to federate with
        bundleEndpoint: {
          type: 'object',
          additionalProperties: false,
          required: ['listen'],
          properties: { listen: hostPort, refreshHint: duration },
        },
        dev: {
          type: 'object',
          additionalProperties: false,
          properties: {
            caDir: { type: 'string', minLength: 1 },
            trustDomain: { type: 'string', pattern: '^[a-z0-9._-]{1,255}$' },
            allowNonLoopback: { type: 'boolean' },
          },
        },
      },
    },
    registry: {
      type: 'object',
      additionalProperties: false,
      properties: {
        url: { type: 'string', pattern: '^(embedded|tcp://.+|unix://.+|[^@\\s]+@[^@\\s]+)$' },
        listen: hostPort,
        store: { enum: ['memory', 'etcd'] },
        etcd: { type: 'array', items: { type: 'string' } },
        expiration: duration,
      },
    },
    policy: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['service', 'allow'],
        properties: {
          service: { type: 'string', minLength: 1 },
          // SPIFFE IDs: exact, spiffe://td/* or spiffe://td/path/* (checked in index.ts)
          allow: { type: 'array', items: { type: 'string', minLength: 1 } },
        },
      },
    },
    endpoints: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'services'],
        properties: {
          // `name@domain`: registered into that domain's registry (floating; docs/interdomain.md)
          name: { type: 'string', pattern: '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(@[A-Za-z0-9]([A-Za-z0-9.:-]{0,251}[A-Za-z0-9])?)?$' },
          services: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
          labels,
          cidr: { type: 'string', minLength: 1 },
          netns: { type: 'string', minLength: 1 },
          payload: { enum: ['IP', 'ETHERNET'] },
          interface: ifname,
          excludedPrefixes: { type: 'array', items: { type: 'string' } },
          // routes in each client's namespace (via the endpoint's address unless nextHop); checked in index.ts
          routes: { type: 'array', items: route },
          // policy routes (upstream PolicyRoute): a table and an `ip rule` each in the client's namespace
          policies: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              properties: {
                from: { type: 'string', minLength: 1 },
                proto: portOrNumber,
                dstPort: portOrNumber,
                srcPort: portOrNumber,
                routes: { type: 'array', items: route },
              },
            },
          },
          // an element of a composed service: requests its services again with its labels, no cidr (checked in index.ts)
          passthrough: { type: 'boolean' },
          // DNS servers and search domains handed to every client (checked in dns.ts)
          dns: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['servers'],
              properties: {
                servers: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
                searchDomains: { type: 'array', items: { type: 'string', minLength: 1 } },
              },
            },
          },
          vl3: {
            type: 'object',
            additionalProperties: false,
            required: ['ipam'],
            properties: { ipam: { type: 'array', minItems: 1, maxItems: 2, items: { type: 'string', minLength: 1 } } },
          },
        },
      },
    },
    // this agent serves vl3-ipam (ipam.IPAM/ManagePrefixes); listen and the pool checked in index.ts
    vl3ipam: {
      type: 'object',
      additionalProperties: false,
      required: ['listen', 'prefix'],
      properties: {
        listen: { type: 'string', minLength: 1 },
        prefix: { type: 'string', minLength: 1 },
        clientPrefixLength: { type: 'integer', minimum: 1, maximum: 128 },
      },
    },
    connections: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['url'],
        properties: {
          url: { type: 'string', minLength: 1 },
          netns: { type: 'string', minLength: 1 },
          id: { type: 'string', minLength: 1 },
        },
      },
    },
  },
} as const;
