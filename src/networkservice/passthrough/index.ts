export { passthroughServer, type PassthroughJoint, type PassthroughRecord, type PassthroughOptions, type PassthroughServer } from './server';
