export { metadataServer, metadataServer as newServer } from './server';
export { metadataClient, metadataClient as newClient } from './client';
export { metadata, hasMetadata, metadataOrigin, withMetadata, MetaMap, ConnectionMetadata, type Side } from './context';
