export { updateTokenServer } from './server';
export { updateTokenClient } from './client';
export { INCOMING_TOKEN, unsignedTokens } from './token';
export type { Token, TokenSource } from './token';
