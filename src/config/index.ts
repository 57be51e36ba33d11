export * from './settings.js';
export * from './resolve.js';
export { isLoopbackAddress, zmqAddressesOf } from './curve.js';
