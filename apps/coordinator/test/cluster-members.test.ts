import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PostgresServer, freePort } from '@webpvm/local-servers';
import { PROTOCOL_VERSION, encode } from '@webpvm/vm-protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ClusterMembers } from '../src/cluster-members.ts';
import { loadConfig, startCoordinator } from '../src/coordinator.ts';

describe('ClusterMembers', () => {
  it('keeps the coordinators a page can be served from, and gives their http and ws origins to connect-src', () => {
    const members = new ClusterMembers();
    members.update(['http://127.0.0.1:8080', 'coordinator-3f2a', 'https://b.example', 'ftp://c.example', 'http://d.example/path']);
    expect(members.urls).toEqual(['http://127.0.0.1:8080', 'https://b.example']);
    expect(members.connectSources).toBe('http://127.0.0.1:8080 ws://127.0.0.1:8080 https://b.example wss://b.example');
  });

  it('tells its listeners only when the members change', () => {
    const members = new ClusterMembers();
    const told: (readonly string[])[] = [];
    members.onChange((urls) => told.push(urls));
    members.update(['http://a.example']);
    members.update(['http://a.example', 'coordinator-3f2a']);
    members.update(['http://a.example', 'http://b.example']);
    expect(told).toEqual([['http://a.example'], ['http://a.example', 'http://b.example']]);
  });

  it('gives connect-src nothing more when alone', () => {
    expect(new ClusterMembers().connectSources).toBe('');
  });
});

describe('pages of a cluster', () => {
  let postgres: PostgresServer;
  beforeAll(async () => {
    postgres = await PostgresServer.start({ durable: false });
  }, 60_000);
  afterAll(() => postgres.stop());
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  async function coordinator(databaseUrl: string) {
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-cluster-'));
    const env = { PORT: String(port), WEBPVM_DATA: dataDir, DATABASE_URL: databaseUrl, WEBPVM_PUBLIC_URL: publicUrl, WEBPVM_JOB_LEASE_MS: '1000', WEBPVM_LOG_LEVEL: 'silent' };
    const started = await startCoordinator(loadConfig(env));
    stops.push(async () => {
      await started.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });
    return publicUrl;
  }

  it('learn every coordinator in their welcome and when one joins, and may connect to them', async () => {
    const databaseUrl = postgres.createDatabase();
    const a = await coordinator(databaseUrl);
    const frames: { type: string; coordinators?: string[] }[] = [];
    const socket = new WebSocket(`${a.replace('http', 'ws')}/ws`);
    stops.push(async () => socket.close());
    socket.on('message', (data, binary) => binary || frames.push(JSON.parse(data.toString())));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 1, running: [], userAgent: 'raw', volunteer: 'k'.repeat(43) }));
    await expect.poll(() => frames.find((f) => f.type === 'welcome')?.coordinators).toEqual([a]);

    const b = await coordinator(databaseUrl);
    const both = [a, b].sort();
    // a's next lease turn (a third of a lease) finds b
    await expect.poll(() => frames.find((f) => f.type === 'cluster')?.coordinators, { timeout: 5_000 }).toEqual(both);
    const policy = (await fetch(`${a}/`)).headers.get('content-security-policy') ?? '';
    const connectSrc = policy.split(';').find((d) => d.trim().startsWith('connect-src'));
    expect(connectSrc?.trim().split(/\s+/).slice(1).sort()).toEqual(["'self'", a, b, a.replace('http', 'ws'), b.replace('http', 'ws')].sort());
  });
});
