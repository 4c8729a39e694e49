import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LIMITS, PROTOCOL_VERSION, encode, encodeMessage } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig, startCoordinator } from '../src/coordinator.ts';

const token = 'wpvm_gateway-test';
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

async function coordinator(env: Record<string, string> = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-gateway-'));
  const started = await startCoordinator(loadConfig({ PORT: '0', WEBPVM_DATA: dataDir, WEBPVM_ADMIN_TOKEN: token, WEBPVM_LOG_LEVEL: 'silent', ...env }));
  stops.push(async () => {
    await started.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  return started;
}

/** A raw host socket that keeps every text frame the coordinator sends it, and how it closed. */
async function rawHost(url: string) {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/ws`);
  const frames: { type: string; code?: string; message?: string }[] = [];
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  socket.on('message', (data, binary) => binary || frames.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  return { socket, frames, closed };
}

const refused = async (url: string, why: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`webpvm_host_refused_total{why="${why}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
};

const hello = (volunteer: string) =>
  encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 1, running: [], userAgent: 'raw', volunteer });

async function hosts(url: string): Promise<{ hostId: string; connected: boolean; volunteerId: string | null }[]> {
  const response = await fetch(`${url}/api/hosts`, { headers: { authorization: `Bearer ${token}` } });
  return ((await response.json()) as { hosts: { hostId: string; connected: boolean; volunteerId: string | null }[] }).hosts;
}

describe('the host gateway', () => {
  it('takes one hello per connection: a second in the same read is refused and leaves no host behind', async () => {
    const { url } = await coordinator();
    const host = await rawHost(url);
    host.socket.send(hello('k'.repeat(43)));
    host.socket.send(hello('k'.repeat(43)));
    await expect.poll(() => host.frames.length).toBe(2);
    expect(host.frames.map((f) => f.type).sort()).toEqual(['error', 'welcome']);
    expect(host.frames.find((f) => f.type === 'error')?.message).toBe('hello was already received');
    expect(await hosts(url)).toEqual([expect.objectContaining({ connected: true })]);
    host.socket.close();
    await host.closed;
    await expect.poll(async () => (await hosts(url)).map((h) => h.connected)).toEqual([false]);
  });

  it('names the volunteer by its key: two tabs of one profile are one volunteer, another profile another', async () => {
    const { url } = await coordinator();
    const keys = ['a'.repeat(43), 'a'.repeat(43), 'b'.repeat(43)];
    for (const key of keys) {
      const host = await rawHost(url);
      host.socket.send(hello(key));
      await expect.poll(() => host.frames.some((f) => f.type === 'welcome')).toBe(true);
    }
    const volunteers = (await hosts(url)).map((h) => h.volunteerId);
    expect(volunteers).toHaveLength(3);
    expect(new Set(volunteers).size).toBe(2);
    for (const v of volunteers) expect(v).toMatch(/^v[0-9a-f]{16}$/);
    expect(volunteers.join()).not.toContain('aaaa');
  });

  it('closes a connection whose first frame is larger than a hello can be, before it is read whole', async () => {
    const { url } = await coordinator();
    const host = await rawHost(url);
    host.socket.send(Buffer.alloc(1024 * 1024));
    expect(await host.closed).toBe(1009);
  });

  it('lets a host that said hello send frames as large as a task message may be', async () => {
    const { url } = await coordinator();
    const host = await rawHost(url);
    host.socket.send(hello('c'.repeat(43)));
    await expect.poll(() => host.frames.some((f) => f.type === 'welcome')).toBe(true);
    // not a valid envelope: answered with an error, the connection stays open
    host.socket.send(Buffer.alloc(1024 * 1024));
    await expect.poll(() => host.frames.some((f) => f.type === 'error')).toBe(true);
    expect(host.socket.readyState).toBe(WebSocket.OPEN);
    // a text frame is a JSON message: past LIMITS.frameBytes it is refused unread, the connection stays open
    host.socket.send(JSON.stringify({ type: 'heartbeat', pad: 'x'.repeat(LIMITS.frameBytes) }));
    await expect.poll(() => host.frames.filter((f) => f.type === 'error').at(-1)?.code).toBe('E_TOO_LARGE');
    expect(host.socket.readyState).toBe(WebSocket.OPEN);
    host.socket.close();
  });

  it('refuses a host connection past the limit per network address, before the upgrade', async () => {
    const { url } = await coordinator({ WEBPVM_HOSTS_PER_ADDRESS: '2' });
    const open = [await rawHost(url), await rawHost(url)];
    const third = new WebSocket(`${url.replace('http', 'ws')}/ws`);
    const status = await new Promise<number>((resolve) => third.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    expect(status).toBe(429);
    expect(await refused(url, 'connections per address')).toBe(1);
    for (const host of open) host.socket.close();
  });

  it('drops log lines for tasks the host does not run, and those past its rate, and counts them', async () => {
    const { url } = await coordinator();
    const submitted = await fetch(`${url}/api/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ program: 'export default (ctx, x) => x', inputs: [1] }),
    });
    const { id } = (await submitted.json()) as { id: string };
    const host = await rawHost(url);
    host.socket.send(hello('d'.repeat(43)));
    await expect.poll(() => host.frames.some((f) => f.type === 'assign')).toBe(true);
    host.socket.send(encode({ type: 'log', tid: `${id}.0`, attempt: 7, line: 'not my attempt' }));
    for (let i = 0; i < 250; i++) host.socket.send(encode({ type: 'log', tid: `${id}.0`, attempt: 1, line: `line ${i}` }));
    await expect.poll(() => refused(url, "log line for a task not the host's")).toBe(1);
    await expect.poll(() => refused(url, 'log lines per second')).toBeGreaterThanOrEqual(50);
    host.socket.close();
  });

  it('lets a PeerJS client take up a host’s peer id only with the token issued with it', async () => {
    const { url } = await coordinator();
    const host = await rawHost(url);
    host.socket.send(hello('p'.repeat(43)));
    await expect.poll(() => host.frames.find((f) => f.type === 'welcome')).toBeTruthy();
    const { peerId, peerToken } = host.frames.find((f) => f.type === 'welcome') as unknown as { peerId: string; peerToken: string };
    const signal = (id: string, token: string) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(`${url.replace('http', 'ws')}/peerjs/peerjs?key=peerjs&id=${id}&token=${token}`);
        socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        socket.once('open', () => {
          socket.close();
          resolve(101);
        });
      });
    expect(await signal(peerId, 'someone-else')).toBe(401);
    expect(await signal('not-issued', peerToken)).toBe(401);
    expect(await signal(peerId, peerToken)).toBe(101);
    host.socket.close();
  });

  it('stops reading a host past its bytes per second until it has paid, and counts it; another host is read meanwhile', async () => {
    const { url } = await coordinator({ WEBPVM_HOST_BYTES_PER_SECOND: String(1024 * 1024) });
    const [flooder, other] = [await rawHost(url), await rawHost(url)];
    for (const [host, key] of [[flooder, 'f'], [other, 'o']] as const) host.socket.send(hello(key.repeat(43)));
    await expect.poll(() => flooder.frames.length + other.frames.length).toBe(2);
    // a heartbeat padded to 512 KiB is still a heartbeat: 4 MiB in all, at 1 MiB a second
    const padded = JSON.stringify({ type: 'heartbeat', pad: 'x'.repeat(512 * 1024) });
    const start = Date.now();
    for (let i = 0; i < 8; i++) flooder.socket.send(padded);
    flooder.socket.send('not json');
    await new Promise((resolve) => setTimeout(resolve, 200));
    other.socket.send('not json');
    const answered = (host: typeof flooder) => host.frames.some((f) => f.type === 'error');
    await expect.poll(() => answered(other)).toBe(true);
    expect(answered(flooder)).toBe(false);
    await expect.poll(() => answered(flooder), { timeout: 10_000 }).toBe(true);
    // the first second's worth went at once; the other 3 MiB waited for the budget to refill
    expect(Date.now() - start).toBeGreaterThanOrEqual(2_500);
    const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    expect(Number(metrics.match(/^webpvm_host_throttled_total (\d+)/m)?.[1])).toBeGreaterThanOrEqual(1);
    for (const host of [flooder, other]) host.socket.close();
  });

  it('holds a job to its relay bytes per second, its hosts all together', async () => {
    const { url } = await coordinator({ WEBPVM_JOB_BYTES_PER_SECOND: String(1024 * 1024) });
    const submitted = await fetch(`${url}/api/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      // more tasks than a new volunteer may hold (8): both hosts get some
      body: JSON.stringify({ program: 'export default (ctx, x) => x', inputs: Array.from({ length: 20 }, (_, i) => i) }),
    });
    const { id } = (await submitted.json()) as { id: string };
    const [a, b] = [await rawHost(url), await rawHost(url)];
    a.socket.send(encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 1, running: [], userAgent: 'raw', volunteer: 'a'.repeat(43) }));
    await expect.poll(() => a.frames.some((f) => f.type === 'assign')).toBe(true);
    b.socket.send(encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 1, running: [], userAgent: 'raw', volunteer: 'b'.repeat(43) }));
    await expect.poll(() => b.frames.some((f) => f.type === 'assign')).toBe(true);
    const tidOf = (host: typeof a) => (host.frames.find((f) => f.type === 'assign') as unknown as { tasks: { tid: string }[] }).tasks[0]!.tid;
    const [from, to] = [tidOf(a), tidOf(b)];
    expect([from, to].every((tid) => tid.startsWith(`${id}.`))).toBe(true);
    const start = Date.now();
    // 2 MiB of messages each way, 4 MiB for the job at 1 MiB a second: the first second's worth goes at once
    for (let seq = 1; seq <= 4; seq++) {
      a.socket.send(encodeMessage({ from, to, tag: 1, seq, data: new Uint8Array(512 * 1024) }));
      b.socket.send(encodeMessage({ from: to, to: from, tag: 1, seq, data: new Uint8Array(512 * 1024) }));
    }
    for (const host of [a, b]) host.socket.send('not json');
    await expect.poll(() => [a, b].every((host) => host.frames.some((f) => f.type === 'error')), { timeout: 10_000 }).toBe(true);
    expect(Date.now() - start).toBeGreaterThanOrEqual(2_500);
    for (const host of [a, b]) host.socket.close();
  });
});
