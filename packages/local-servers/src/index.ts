export { ensureDebianPackage, installDebianPackage } from './debian.ts';
export { freePort, untilListening } from './ports.ts';
export { NatsServer } from './nats.ts';
export { PostgresServer, type PostgresOptions } from './postgres.ts';
