export { mechanismsServer, mechanismsServer as newServer, type MechanismHandlers } from './server';
export { mechanismsClient, mechanismsClient as newClient } from './client';
