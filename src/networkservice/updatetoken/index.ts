export { updateTokenServer } from './server';
export { updateTokenClient } from './client';
