export * from './settings.js';
export * from './resolve.js';
