/**
 * One error type for the whole agent. Every failure that crosses a module boundary is an
 * AgentError with a stable code; the code is mapped to a gRPC status in exactly one place
 * (toStatus, used by the servers), and back when an error arrives from a peer (fromStatus).
 * The stable code itself, and the component that failed, travel in the status's trailing
 * metadata (`nsm-agent-error-code`, `nsm-agent-error-component`), which upstream NSM clients
 * ignore: they see the gRPC status only, so that stays true to each code.
 * docs/errors.md lists every code; a unit test keeps the two in step.
 */
import type { status as GrpcStatus, Metadata } from '@grpc/grpc-js';

/**
 * gRPC's status codes, fixed by the gRPC protocol (grpc-js's `status` has the same numbers; a unit
 * test checks it). Written out so that the CLI, which imports this module, does not load grpc-js.
 */
type Status = GrpcStatus;
const Status = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as unknown as typeof GrpcStatus;

/** Stable codes and the gRPC status each one maps to. */
export const ERROR_CODES = {
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT, // malformed request, config or manifest
  INVALID_INTERFACE_NAME: Status.INVALID_ARGUMENT, // empty or over 15 characters, or bad characters
  UNSUPPORTED_MECHANISM: Status.INVALID_ARGUMENT, // none of the offered mechanisms is supported
  NOT_FOUND: Status.NOT_FOUND, // unknown connection, endpoint or other named thing
  SERVICE_NOT_FOUND: Status.NOT_FOUND, // no such network service in the registry
  NO_CANDIDATES: Status.NOT_FOUND, // the service exists but no endpoint matches
  NETNS_NOT_FOUND: Status.NOT_FOUND, // the requested network namespace does not exist
  DOMAIN_NOT_FOUND: Status.NOT_FOUND, // DNS names no registry for the domain of a `name@domain`
  ALREADY_EXISTS: Status.ALREADY_EXISTS,
  SOCKET_IN_USE: Status.ALREADY_EXISTS, // another running agent answers on the socket this one was given
  POOL_EXHAUSTED: Status.RESOURCE_EXHAUSTED, // an address pool (endpoint) or prefix pool (vl3-ipam) has nothing free
  ADDRESS_OVERLAP: Status.FAILED_PRECONDITION, // the endpoint has no addresses outside what the client's namespace already uses
  PERMISSION_DENIED: Status.PERMISSION_DENIED,
  FOREIGN_DOMAIN: Status.PERMISSION_DENIED, // a name carries the suffix of a domain that does not own it
  UNAUTHENTICATED: Status.UNAUTHENTICATED,
  FAILED_PRECONDITION: Status.FAILED_PRECONDITION,
  BUNDLE_INVALID: Status.INVALID_ARGUMENT, // a SPIFFE bundle document that does not parse (JSON, JWK set, x5c)
  BUNDLE_WRONG_TRUST_DOMAIN: Status.INVALID_ARGUMENT, // a bundle endpoint served the bundle of another trust domain
  BUNDLE_ENDPOINT_UNTRUSTED: Status.UNAUTHENTICATED, // a bundle endpoint's certificate is not an SVID of its endpointId
  BUNDLE_ENDPOINT_UNAVAILABLE: Status.UNAVAILABLE, // a bundle endpoint cannot be reached or answered other than 200
  UNAVAILABLE: Status.UNAVAILABLE, // a peer (endpoint, registry, agent) cannot be reached
  UNIT_START_FAILED: Status.UNAVAILABLE, // an OnDemand=yes unit did not start or did not register its endpoint in time
  ENDPOINT_STARTING: Status.UNAVAILABLE, // a supplier started its unit for another host's client: request again
  DEADLINE_EXCEEDED: Status.DEADLINE_EXCEEDED,
  CANCELLED: Status.CANCELLED,
  DATAPLANE: Status.INTERNAL, // the kernel refused an operation (message carries errno)
  INTERNAL: Status.INTERNAL,
  UNKNOWN: Status.UNKNOWN,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Trailing metadata keys that carry the stable code and the failed component across gRPC. */
export const ERROR_CODE_HEADER = 'nsm-agent-error-code';
export const ERROR_COMPONENT_HEADER = 'nsm-agent-error-component';

/** The component names errors use: who failed, as the operator knows it. */
export const COMPONENT = {
  kernel: 'the kernel',
  registry: (url: string) => `the registry at ${url}`,
  agent: (url: string) => `the agent at ${url}`,
} as const;

function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, v);
}

const BY_STATUS = new Map<number, ErrorCode>([
  [Status.INVALID_ARGUMENT, 'INVALID_ARGUMENT'],
  [Status.NOT_FOUND, 'NOT_FOUND'],
  [Status.ALREADY_EXISTS, 'ALREADY_EXISTS'],
  [Status.RESOURCE_EXHAUSTED, 'POOL_EXHAUSTED'],
  [Status.PERMISSION_DENIED, 'PERMISSION_DENIED'],
  [Status.UNAUTHENTICATED, 'UNAUTHENTICATED'],
  [Status.FAILED_PRECONDITION, 'FAILED_PRECONDITION'],
  [Status.UNAVAILABLE, 'UNAVAILABLE'],
  [Status.DEADLINE_EXCEEDED, 'DEADLINE_EXCEEDED'],
  [Status.CANCELLED, 'CANCELLED'],
  [Status.INTERNAL, 'INTERNAL'],
]);

export class AgentError extends Error {
  override readonly name = 'AgentError';
  /**
   * Who failed, when it is not the agent that reports the error: `the kernel`, `the registry at
   * URL`, `the agent at URL` (COMPONENT). Undefined: the reporting agent itself.
   */
  readonly component: string | undefined;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; component?: string | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.component = options?.component || undefined;
  }

  get grpcStatus(): Status {
    return ERROR_CODES[this.code];
  }

  /** Wraps anything thrown into an AgentError, keeping AgentErrors and gRPC statuses as they are. */
  static from(err: unknown, fallback: ErrorCode = 'INTERNAL'): AgentError {
    if (err instanceof AgentError) return err;
    const st = grpcStatusOf(err);
    if (st) return fromStatus(st.code, st.details, err, st.metadata);
    const e = err as { code?: unknown; syscall?: unknown; message?: unknown } | undefined;
    if (e && typeof e.code === 'string' && typeof e.syscall === 'string') {
      return new AgentError('DATAPLANE', String(e.message ?? e.code), { cause: err, component: COMPONENT.kernel });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new AgentError(fallback, message, { cause: err });
  }

  /** Prefixes the message with context, keeping the code: `select endpoint: <message>`. */
  static wrap(err: unknown, context: string, fallback: ErrorCode = 'INTERNAL'): AgentError {
    const e = AgentError.from(err, fallback);
    return new AgentError(e.code, `${context}: ${e.message}`, { cause: e.cause ?? err, component: e.component ?? (e.code === 'DATAPLANE' ? COMPONENT.kernel : undefined) });
  }

  /** The same error, naming `component` as the one that failed unless it already names one. */
  static at(err: unknown, component: string): AgentError {
    const e = AgentError.from(err);
    if (e.component) return e;
    return new AgentError(e.code, e.message, { cause: e.cause ?? err, component });
  }
}

/**
 * The one-line form users see: the innermost cause first, then the code and the component
 * that failed (`this agent` when none is named), e.g.
 * `network namespace /run/netns/x does not exist (NETNS_NOT_FOUND from this agent)`; a message
 * that names its component already ends with the code alone.
 */
export function describeError(err: unknown): string {
  const e = AgentError.from(err);
  // `cannot reach the registry at URL: ...` names it already.
  if (e.component && e.message.includes(e.component)) return `${e.message} (${e.code})`;
  return `${e.message} (${e.code} from ${e.component ?? 'this agent'})`;
}

/** True for an AgentError of one of these codes. */
export function isCode(err: unknown, ...codes: ErrorCode[]): boolean {
  return err instanceof AgentError && codes.includes(err.code);
}

function grpcStatusOf(err: unknown): { code: number; details: string; metadata: Metadata } | undefined {
  const e = err as { code?: unknown; details?: unknown; metadata?: unknown } | undefined;
  if (e && typeof e.code === 'number' && typeof e.details === 'string' && isMetadata(e.metadata)) {
    return { code: e.code, details: e.details, metadata: e.metadata };
  }
  return undefined;
}

/** A grpc-js Metadata (what its ServiceErrors carry), recognised without loading grpc-js. */
function isMetadata(m: unknown): m is Metadata {
  const x = m as Partial<Metadata> | undefined;
  return !!x && typeof x.get === 'function' && typeof x.getMap === 'function' && typeof x.clone === 'function';
}

/**
 * grpc-js's connection failure text in our words: `No connection established. Last error:
 * connect ECONNREFUSED 10.0.0.1:5002. Resolution note: ` becomes `connect ECONNREFUSED
 * 10.0.0.1:5002`; an empty resolution note is dropped, a real one kept as `(name resolution: ...)`.
 */
export function plainGrpcDetails(details: string): string {
  let out = details.replace(/^No connection established\. Last error: /, '');
  out = out.replace(/\.? ?Resolution note: ?(.*)$/s, (_m, note: string) => (note.trim() ? ` (name resolution: ${note.trim()})` : ''));
  return out.replace(/^No addresses resolved(?: \(name resolution: (.*)\))?$/, (_m, note?: string) => `no address found${note ? `: ${note}` : ''}`);
}

function header(md: Pick<Metadata, 'get'> | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  return typeof v === 'string' && v.length <= 1024 ? v : undefined;
}

/**
 * An error received from a peer as a gRPC status. The stable code in its trailing metadata is
 * kept when it agrees with the status (a peer cannot turn a NOT_FOUND into POOL_EXHAUSTED);
 * otherwise the status decides.
 */
export function fromStatus(code: number, details: string, cause?: unknown, metadata?: Pick<Metadata, 'get'>): AgentError {
  const sent = header(metadata, ERROR_CODE_HEADER);
  const stable = isErrorCode(sent) && ERROR_CODES[sent] === code ? sent : (BY_STATUS.get(code) ?? 'UNKNOWN');
  return new AgentError(stable, plainGrpcDetails(details), { cause, component: header(metadata, ERROR_COMPONENT_HEADER) });
}

/** The server boundary: what a gRPC caller receives for an error thrown by a chain. */
export function toStatus(err: unknown): { code: Status; details: string; metadata: Metadata } {
  const e = AgentError.from(err);
  // Servers only: grpc-js is loaded by whoever serves; the CLI never gets here.
  const { Metadata: GrpcMetadata } = require('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
  const metadata = new GrpcMetadata();
  metadata.set(ERROR_CODE_HEADER, e.code);
  // Header values are printable ASCII; anything else in a component name becomes '?'.
  if (e.component) metadata.set(ERROR_COMPONENT_HEADER, e.component.replace(/[^\x20-\x7e]/g, '?'));
  return { code: e.grpcStatus, details: e.message, metadata };
}
