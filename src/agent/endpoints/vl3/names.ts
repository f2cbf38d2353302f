/** Names of what a vL3 endpoint makes; kept apart so that configuration code loads no kernel code. */
import { createHash } from 'node:crypto';

/** The namespace name the agent makes for an endpoint's router (at most 40 characters). */
export function routerNetnsName(endpoint: string): string {
  const name = `nsm-vl3-${endpoint}`;
  if (name.length <= 40) return name;
  return `nsm-vl3-${endpoint.slice(0, 23)}-${createHash('sha256').update(endpoint).digest('hex').slice(0, 8)}`;
}
