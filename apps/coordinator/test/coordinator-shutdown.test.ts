import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, startCoordinator } from '../src/coordinator.ts';
import { openSse } from './support/sse-client.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('coordinator shutdown', () => {
  it('ends open event streams instead of waiting out the close grace for them', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-coordinator-'));
    dirs.push(dataDir);
    const token = 'wpvm_shutdown-test';
    const coordinator = await startCoordinator(
      loadConfig({ PORT: '0', WEBPVM_DATA: dataDir, WEBPVM_ADMIN_TOKEN: token, WEBPVM_LOG_LEVEL: 'silent' }),
    );
    const sse = await openSse(`${coordinator.url}/api/events`, { authorization: `Bearer ${token}` });
    expect(sse.response.status).toBe(200);

    const started = Date.now();
    await Promise.all([coordinator.close(), sse.ended()]);
    // the grace for sockets that stay open is 2 s
    expect(Date.now() - started).toBeLessThan(1_500);
  });
});
