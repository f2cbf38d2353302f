export { discoverServer, discoverServer as newServer } from './server';
export { matchEndpoint, isSubset } from './match';
export { processLabels } from './template';
export { candidates, withCandidates, type Candidates } from './context';
