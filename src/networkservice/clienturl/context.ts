/**
 * The URL of the next hop, chosen by discover / roundrobin (or fixed by the clienturl element)
 * and read by whatever dials it (NSM tools/clienturlctx).
 */
import { Ctx, Key } from '../../core/ctx';
import { AgentError } from '../../core/errors';

const KEY = new Key<URL>('clienturl');

/** Parses a registry URL (tcp://host:port, unix:///path, inode://dev/ino); INVALID_ARGUMENT if malformed. */
export function parseClientURL(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new AgentError('INVALID_ARGUMENT', `failed to parse url ${JSON.stringify(url)}`);
  }
}

export function withClientURL(ctx: Ctx, url: URL | string | undefined): Ctx {
  return ctx.with(KEY, typeof url === 'string' ? parseClientURL(url) : url);
}

/** The next hop's URL, if one was chosen before the caller. */
export function clientURL(ctx: Ctx): URL | undefined {
  return ctx.get(KEY);
}
