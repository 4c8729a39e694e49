export * from './api.ts';
export * from './codec.ts';
export * from './errors.ts';
export * from './host.ts';
export * from './ids.ts';
export * from './limits.ts';
export * from './worker.ts';
