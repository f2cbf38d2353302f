export { updatePathServer, updatePathServer as newServer } from './server';
export { updatePathClient, updatePathClient as newClient } from './client';
export { updatePath, type UpdatePathOptions, type UpdatedPath } from './common';
