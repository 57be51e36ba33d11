export * from './errors.js';
export * from './names.js';
export * from './messages.js';
export * from './codec.js';
export * from './positions.js';
export * from './payload.js';
