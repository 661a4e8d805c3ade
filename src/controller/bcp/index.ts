// Public surface of the control channel.
export * from './codec.js';
export * from './transport.js';
