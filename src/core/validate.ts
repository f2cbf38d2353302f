/**
 * Checks of the names and ids that users and raw NSM clients send and the agent stores or acts
 * on. Each throws INVALID_ARGUMENT (or INVALID_INTERFACE_NAME) naming the key and the limit, so
 * nothing a caller typed fails later as INTERNAL or DATAPLANE.
 */
import { AgentError } from './errors';

/**
 * Connection ids: printable ASCII without spaces (units' ids are `UNIT/IFNAME`), kept in state
 * file names percent-encoded, which must stay under the 255-byte limit of a file name.
 */
export const MAX_ENCODED_ID = 240;
const ID_RE = /^[\x21-\x7e]+$/;

export function validateId(id: string, key = 'connection id'): string {
  if (!id) throw new AgentError('INVALID_ARGUMENT', `${key} must not be empty`);
  if (!ID_RE.test(id)) throw new AgentError('INVALID_ARGUMENT', `${key} ${JSON.stringify(id.slice(0, 80))} may contain only printable ASCII characters without spaces`);
  if (encodeURIComponent(id).length > MAX_ENCODED_ID) {
    throw new AgentError('INVALID_ARGUMENT', `${key} ${JSON.stringify(`${id.slice(0, 20)}...`)} is too long: at most ${MAX_ENCODED_ID} characters once percent-encoded (80 always fit)`);
  }
  return id;
}

/** Label keys and values, as Kubernetes bounds them (NSM's selectors come from there). */
export const MAX_LABEL_KEY = 253;
export const MAX_LABEL_VALUE = 253;
const LABEL_KEY_RE = /^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/;

export function validateLabels(labels: Record<string, unknown> | null | undefined, key = 'labels'): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (k.length > MAX_LABEL_KEY || !LABEL_KEY_RE.test(k)) {
      throw new AgentError('INVALID_ARGUMENT', `${key}: label key ${JSON.stringify(k.slice(0, 40))} must be 1 to ${MAX_LABEL_KEY} letters, digits, '.', '_', '/' or '-', starting and ending with a letter or digit`);
    }
    const s = String(v);
    // eslint-disable-next-line no-control-regex
    if (s.length > MAX_LABEL_VALUE || /[\u0000-\u001f\u007f]/.test(s)) {
      throw new AgentError('INVALID_ARGUMENT', `${key}.${k}: a label value must be at most ${MAX_LABEL_VALUE} characters without control characters`);
    }
  }
}

/** Network service and endpoint names: DNS names, as NSM's registry and Kubernetes use them. */
export const NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

export function validateServiceName(name: string, key = 'network service'): string {
  if (!name) throw new AgentError('INVALID_ARGUMENT', `${key} must not be empty`);
  if (name.length > 253 || !/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(name)) {
    throw new AgentError('INVALID_ARGUMENT', `${key} ${JSON.stringify(name.slice(0, 40))} must be a name of at most 253 letters, digits, '.', '_' or '-'`);
  }
  return name;
}
