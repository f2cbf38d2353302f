/**
 * One error type for the whole agent. Every failure that crosses a module boundary is an
 * AgentError with a stable code; the code is mapped to a gRPC status in exactly one place
 * (toStatus, used by the servers), and back when an error arrives from a peer (fromStatus).
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
  ALREADY_EXISTS: Status.ALREADY_EXISTS,
  SOCKET_IN_USE: Status.ALREADY_EXISTS, // another running agent answers on the socket this one was given
  POOL_EXHAUSTED: Status.RESOURCE_EXHAUSTED, // an endpoint's address pool has no free address
  PERMISSION_DENIED: Status.PERMISSION_DENIED,
  UNAUTHENTICATED: Status.UNAUTHENTICATED,
  FAILED_PRECONDITION: Status.FAILED_PRECONDITION,
  UNAVAILABLE: Status.UNAVAILABLE, // a peer (endpoint, registry, agent) cannot be reached
  DEADLINE_EXCEEDED: Status.DEADLINE_EXCEEDED,
  CANCELLED: Status.CANCELLED,
  DATAPLANE: Status.INTERNAL, // the kernel refused an operation (message carries errno)
  INTERNAL: Status.INTERNAL,
  UNKNOWN: Status.UNKNOWN,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

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
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get grpcStatus(): Status {
    return ERROR_CODES[this.code];
  }

  /** Wraps anything thrown into an AgentError, keeping AgentErrors and gRPC statuses as they are. */
  static from(err: unknown, fallback: ErrorCode = 'INTERNAL'): AgentError {
    if (err instanceof AgentError) return err;
    const st = grpcStatusOf(err);
    if (st) return fromStatus(st.code, st.details, err);
    const e = err as { code?: unknown; syscall?: unknown; message?: unknown } | undefined;
    if (e && typeof e.code === 'string' && typeof e.syscall === 'string') {
      return new AgentError('DATAPLANE', String(e.message ?? e.code), { cause: err });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new AgentError(fallback, message, { cause: err });
  }

  /** Prefixes the message with context, keeping the code: `select endpoint: <message>`. */
  static wrap(err: unknown, context: string, fallback: ErrorCode = 'INTERNAL'): AgentError {
    const e = AgentError.from(err, fallback);
    return new AgentError(e.code, `${context}: ${e.message}`, { cause: e.cause ?? err });
  }
}

/** True for an AgentError of one of these codes. */
export function isCode(err: unknown, ...codes: ErrorCode[]): boolean {
  return err instanceof AgentError && codes.includes(err.code);
}

function grpcStatusOf(err: unknown): { code: number; details: string } | undefined {
  const e = err as { code?: unknown; details?: unknown; metadata?: unknown } | undefined;
  if (e && typeof e.code === 'number' && typeof e.details === 'string' && isMetadata(e.metadata)) {
    return { code: e.code, details: e.details };
  }
  return undefined;
}

/** A grpc-js Metadata (what its ServiceErrors carry), recognised without loading grpc-js. */
function isMetadata(m: unknown): m is Metadata {
  const x = m as Partial<Metadata> | undefined;
  return !!x && typeof x.get === 'function' && typeof x.getMap === 'function' && typeof x.clone === 'function';
}

/** An error received from a peer as a gRPC status. */
export function fromStatus(code: number, details: string, cause?: unknown): AgentError {
  return new AgentError(BY_STATUS.get(code) ?? 'UNKNOWN', details, { cause });
}

/** The server boundary: what a gRPC caller receives for an error thrown by a chain. */
export function toStatus(err: unknown): { code: Status; details: string } {
  const e = AgentError.from(err);
  return { code: e.grpcStatus, details: e.message };
}
