export { passthroughServer, type PassthroughJoint, type PassthroughOptions, type PassthroughServer } from './server';
