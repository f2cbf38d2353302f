export { excludedPrefixesServer, type ClientSide, type ExcludedPrefixesOptions } from './server';
