#!/usr/bin/env node
// The CLI is TypeScript run in place (no build step), so tsx must hook the loader first.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
