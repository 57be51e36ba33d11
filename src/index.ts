/**
 * Tidings as a library: the services (to embed a director, forwarder or edge
 * in your own process), the ZeroMQ Publisher for backend code, token signing,
 * the protocol module and configuration. The client SDK is `tidings/client`.
 */
export * from './protocol/index.js';
export { resolveConfig, redactConfig, ConfigError, type Config } from './config/resolve.js';
export { SETTINGS, envName, flagName } from './config/settings.js';
export { Director } from './director/director.js';
export { Forwarder } from './forwarder/forwarder.js';
export { EdgeServer } from './edge/edge-server.js';
export { TidingsNode } from './node/tidings-node.js';
export { Publisher, type PublisherOptions } from './publisher/publisher.js';
export { publicKeyOf, isCurveKey, parseKeyText } from './zmq/keys.js';
export { signToken, type TokenRequest } from './auth/sign.js';
export { Authenticator, type Identity } from './auth/authenticator.js';
