import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, startCoordinator } from '../src/coordinator.ts';
import { attack, honestHost } from './support/fuzz-attack.ts';

/** Frames thrown at `/ws` in `npm test`; `FUZZ_FRAMES` raises it for a soak. */
const FRAMES = Number(process.env.FUZZ_FRAMES ?? 200_000);
const token = 'wpvm_fuzz-admin-token';
v8.setFlagsFromString('--expose-gc');
/** The collector, to weigh what the attack left behind rather than garbage not yet collected. */
const collect = vm.runInNewContext('gc') as () => void;
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

describe('fuzzing the coordinator while a job runs', () => {
  it(`stays up, throws in no handler, keeps its memory, and finishes the job exactly under ${FRAMES.toLocaleString('en')} hostile host frames, junk on /lane and /peerjs, and random requests`, async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-fuzz-'));
    const coordinator = await startCoordinator(loadConfig({ PORT: '0', WEBPVM_DATA: dataDir, WEBPVM_ADMIN_TOKEN: token, WEBPVM_LOG_LEVEL: 'silent' }));
    stops.push(async () => {
      await coordinator.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });
    const { url } = coordinator;
    const api = (method: string, route: string, body?: string, auth = true) =>
      fetch(`${url}${route}`, { method, headers: { ...(auth ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body }) });
    const total = 600;
    const submitted = await api('POST', '/api/jobs', JSON.stringify({ name: 'under fire', program: 'export default (ctx, x) => x * x', inputs: Array.from({ length: total }, (_, i) => i) }));
    const { id } = (await submitted.json()) as { id: string };

    collect();
    const heapBefore = process.memoryUsage().heapUsed;
    const under = attack({ url, token, jobId: id, frames: FRAMES, requests: 400 });
    // honest hosts join while the attack is under way
    const honest = [await honestHost(url, 'h'.repeat(40)), await honestHost(url, 'i'.repeat(40))];
    const { internalErrors, serverErrors } = await under;

    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(internalErrors).toEqual([]);
    expect(serverErrors).toEqual([]);
    let state = '';
    for (let i = 0; i < 200 && state !== 'done'; i++) {
      state = ((await (await api('GET', `/api/jobs/${id}`)).json()) as { state: string }).state;
      if (state !== 'done') await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(state).toBe('done');
    const { results } = (await (await api('GET', `/api/jobs/${id}/results`)).json()) as { results: unknown[] };
    expect(results).toEqual(Array.from({ length: total }, (_, i) => i * i));
    for (const socket of honest) socket.close();
    const metrics = await (await api('GET', '/metrics')).text();
    const counted = [...metrics.matchAll(/^webpvm_host_(?:frames_in_total\{[^}]*\}|bad_frames_total) (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    // most of the attack reached the coordinator (the rest went down with connections it closed)
    expect(counted).toBeGreaterThan(FRAMES / 2);
    // what the attack left behind: the coordinator's heap grew by less than 32 MiB
    await new Promise((resolve) => setTimeout(resolve, 100));
    collect();
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
  }, 240_000);
});
