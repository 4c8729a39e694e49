import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { PROTOCOL_VERSION, encode } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig, startCoordinator } from '../src/coordinator.ts';
import { selfSignedCertificate } from './support/self-signed.ts';

const dirs: string[] = [];
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-tls-'));
  dirs.push(dir);
  return dir;
};

describe('TLS and where the coordinator listens', () => {
  it('refuses to listen beyond loopback in plain http unless told a TLS proxy is in front', () => {
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrow(/WEBPVM_TLS_CERT and WEBPVM_TLS_KEY.*WEBPVM_ALLOW_PLAIN_HTTP=1/);
    expect(() => loadConfig({ HOST: '192.168.1.20' })).toThrow(/without TLS/);
    expect(loadConfig({ HOST: '0.0.0.0', WEBPVM_ALLOW_PLAIN_HTTP: '1' }).host).toBe('0.0.0.0');
    for (const host of ['127.0.0.1', '127.8.9.10', '::1', 'localhost']) expect(loadConfig({ HOST: host }).tls).toBeNull();
  });

  it('takes a certificate and a key together, and says which file it could not read', () => {
    const { certFile, keyFile } = selfSignedCertificate(tempDir());
    expect(() => loadConfig({ WEBPVM_TLS_CERT: certFile })).toThrow(/go together/);
    expect(() => loadConfig({ WEBPVM_TLS_CERT: certFile, WEBPVM_TLS_KEY: '/nonexistent/key.pem' })).toThrow('WEBPVM_TLS_KEY: cannot read /nonexistent/key.pem (ENOENT)');
    expect(loadConfig({ HOST: '0.0.0.0', WEBPVM_TLS_CERT: certFile, WEBPVM_TLS_KEY: keyFile }).tls).toMatchObject({ cert: expect.stringContaining('BEGIN CERTIFICATE') });
  });

  it('serves https and wss on one port with WEBPVM_TLS_CERT and WEBPVM_TLS_KEY', async () => {
    const dir = tempDir();
    const { certFile, keyFile, cert } = selfSignedCertificate(dir);
    const coordinator = await startCoordinator(loadConfig({ PORT: '0', WEBPVM_DATA: dir, WEBPVM_LOG_LEVEL: 'silent', WEBPVM_ADMIN_TOKEN: 'wpvm_tls-test-admin-token', WEBPVM_TLS_CERT: certFile, WEBPVM_TLS_KEY: keyFile }));
    stops.push(() => coordinator.close());
    expect(coordinator.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await new Promise<{ status: number; hsts: unknown }>((resolve, reject) =>
      https.get(`${coordinator.url}/healthz`, { ca: cert }, (r) => resolve({ status: r.statusCode ?? 0, hsts: r.headers['strict-transport-security'] })).on('error', reject),
    );
    expect(res).toEqual({ status: 200, hsts: expect.stringContaining('max-age=') });
    const socket = new WebSocket(`${coordinator.url.replace('https', 'wss')}/ws`, { ca: cert });
    const welcome = await new Promise<{ type: string }>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('open', () => socket.send(encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 1, running: [], userAgent: 'tls', volunteer: 't'.repeat(43) })));
      socket.once('message', (data) => resolve(JSON.parse(data.toString()) as { type: string }));
    });
    expect(welcome.type).toBe('welcome');
    socket.close();
    // a client that does not trust the certificate is refused at the handshake
    await expect(new Promise((resolve, reject) => https.get(`${coordinator.url}/healthz`, resolve).on('error', reject))).rejects.toThrow(/self-signed|certificate/);
  });
});
