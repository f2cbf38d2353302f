export { refreshClient, refreshClient as newClient, refreshAfter, REFRESH_RETRY_MS } from './client';
