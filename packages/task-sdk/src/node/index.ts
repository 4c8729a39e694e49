export { bundleProgram, type ProgramSource } from './bundle-program.ts';
export { runLocal, type RunLocalOptions, type RunLocalResult } from './run-local.ts';
