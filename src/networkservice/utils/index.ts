export { Serial, raceAbort, abortError } from './serial';
export { clone, protoEqual, connectionOf, segmentsOf, indexOf, currentSegment, prevSegment, recordExpiry } from './proto';
