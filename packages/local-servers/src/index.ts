export { ensureDebianPackage, installDebianPackage } from './debian.ts';
export { freePort, untilListening } from './ports.ts';
export { PostgresServer, type PostgresOptions } from './postgres.ts';
