import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NatsServer, PostgresServer, freePort } from '@webpvm/local-servers';
import type { ForwardedRequest } from '@webpvm/vm-protocol';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClusterBus } from '../src/cluster-bus.ts';
import { loadConfig, startCoordinator } from '../src/coordinator.ts';

/* Coordinators on one PostgreSQL database and one NATS server: a change sent to one that does not run the job (docs/cluster.md). */

const TOKEN = 'wpvm_cluster-bus-test';
let postgres: PostgresServer;
let nats: NatsServer;
beforeAll(async () => {
  [postgres, nats] = await Promise.all([PostgresServer.start({ durable: false }), NatsServer.start()]);
}, 120_000);
afterAll(async () => {
  await Promise.all([postgres.stop(), nats.stop()]);
});
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function coordinator(databaseUrl: string, withNats = true) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-bus-'));
  const env = {
    PORT: String(port),
    WEBPVM_DATA: dataDir,
    DATABASE_URL: databaseUrl,
    WEBPVM_PUBLIC_URL: url,
    WEBPVM_ADMIN_TOKEN: TOKEN,
    WEBPVM_LOG_LEVEL: 'silent',
    ...(withNats ? { NATS_URL: nats.url } : {}),
  };
  const started = await startCoordinator(loadConfig(env));
  stops.push(async () => {
    await started.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  const call = (method: string, route: string, body?: string, contentType = 'application/json') =>
    fetch(`${url}${route}`, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': contentType } : {}) }, ...(body !== undefined ? { body } : {}) });
  return { url, call };
}

const openBag = JSON.stringify({ name: 'open', program: 'export default (ctx, x) => x', inputs: [], open: true });

describe('a cluster with NATS', () => {
  it('forwards a cancel and inputs sent to a coordinator that does not run the job to the one that does', async () => {
    const databaseUrl = postgres.createDatabase();
    const a = await coordinator(databaseUrl);
    const b = await coordinator(databaseUrl);
    const { id } = (await (await a.call('POST', '/api/jobs', openBag)).json()) as { id: string };

    const added = await b.call('POST', `/api/jobs/${id}/inputs`, '1\n2\n3\n', 'application/x-ndjson');
    expect(added.status).toBe(200);
    expect(await added.json()).toEqual({ added: 3, total: 3 });
    expect(((await (await a.call('GET', `/api/jobs/${id}`)).json()) as { tasks: { total: number } }).tasks.total).toBe(3);

    // the runner's own refusals come back as they are
    const refused = await b.call('POST', `/api/jobs/${id}/inputs`, '{"no end"\n', 'application/x-ndjson');
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: { code: 'E_BAD_REQUEST' } });

    const cancelled = await b.call('DELETE', `/api/jobs/${id}`);
    expect(cancelled.status).toBe(200);
    expect(await cancelled.json()).toMatchObject({ id, state: 'cancelled' });
    expect(((await (await a.call('GET', `/api/jobs/${id}`)).json()) as { state: string }).state).toBe('cancelled');
  });

  it('answers 409 naming the runner where it cannot forward: no NATS, or a change forwarded already', async () => {
    const databaseUrl = postgres.createDatabase();
    const a = await coordinator(databaseUrl);
    const alone = await coordinator(databaseUrl, false);
    const { id } = (await (await a.call('POST', '/api/jobs', openBag)).json()) as { id: string };
    const refused = await alone.call('DELETE', `/api/jobs/${id}`);
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({ error: { code: 'E_CONFLICT', message: expect.stringContaining(a.url) } });

    // a change that reaches a coordinator that does not run its job, forwarded, is not sent on again
    const b = await coordinator(databaseUrl);
    const { id: onB } = (await (await b.call('POST', '/api/jobs', openBag)).json()) as { id: string };
    const forwardedAgain = await fetch(`${a.url}/api/jobs/${onB}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}`, 'x-webpvm-forwarded': '1' } });
    expect(forwardedAgain.status).toBe(409);
    expect(((await (await b.call('GET', `/api/jobs/${onB}`)).json()) as { state: string }).state).not.toBe('cancelled');
  });

  it('refuses what is not a forwarded change, and says so when the runner cannot be asked', async () => {
    const databaseUrl = postgres.createDatabase();
    const a = await coordinator(databaseUrl);
    const bus = await ClusterBus.connect(nats.url, 'test', pino({ level: 'silent' }));
    stops.push(() => bus.close());
    const notAChange = { method: 'GET', url: '/api/jobs', headers: {}, body: '' } as unknown as ForwardedRequest;
    const answer = await bus.forward(a.url, notAChange);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'E_BAD_REQUEST' } });
    await expect(bus.forward('http://nobody.example', { method: 'DELETE', url: '/api/jobs/x', headers: {}, body: '' })).rejects.toMatchObject({
      code: 'E_CONFLICT',
      message: expect.stringContaining('http://nobody.example, which could not be asked'),
    });
  });
});
