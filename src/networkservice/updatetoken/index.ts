export { updateTokenServer } from './server';
export { updateTokenClient } from './client';
// The elements' parameter and Ctx key, for callers that wire them; defined in src/core/token.ts.
export { INCOMING_TOKEN, type Token, type TokenSource } from '../../core/token';
