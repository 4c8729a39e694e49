import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from '@playwright/test';
import { selfSignedCertificate } from '../../apps/coordinator/test/support/self-signed.ts';
import { Api, readProgram } from '../support/api.ts';
import { CaddyProxy } from '../support/caddy.ts';
import { CoordinatorProcess } from '../support/coordinator.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';
import { totalCounters } from '../support/snapshots.ts';

/** Chromium is told to accept the self-signed certificate. */
const ACCEPT = { ignoreHTTPSErrors: true };

/** Through `url`, over TLS: a bag job, a token ring over data channels, and one over relay lanes. */
async function squaresAndRings(browser: Browser, url: string): Promise<void> {
  const api = new Api(url);
  const tabs = await openHosts(browser, url, 2, 2, '', ACCEPT);
  expect(await tabs[0]!.page.evaluate(() => location.protocol)).toBe('https:');

  const bag = await api.submit({ name: 'squares over tls', program: 'export default (ctx, x) => x * x;', inputs: Array.from({ length: 40 }, (_, i) => i) });
  await api.waitForState(bag, 'done');
  expect(await api.results(bag)).toEqual(Array.from({ length: 40 }, (_, i) => i * i));

  const ring = await api.submit({ name: 'ring over tls', program: readProgram('examples/token-ring.ts'), main: { tasks: 8, rounds: 20 } });
  await api.waitForState(ring, 'done');
  expect(await api.results(ring)).toEqual([expect.objectContaining({ tasks: 8, rounds: 20, token: 160 })]);
  // PeerJS signalled over wss: the ring's messages between the tabs went over data channels
  expect((await totalCounters(tabs)).channelOut).toBeGreaterThan(0);
  for (const tab of tabs) await tab.close();

  // without data channels, task workers write to each other on relay lanes: wss to /lane
  const relayTabs = await openHosts(browser, url, 2, 2, '&p2p=off', ACCEPT);
  const relayed = await api.submit({ name: 'ring over tls relay', program: readProgram('examples/token-ring.ts'), main: { tasks: 8, rounds: 20 } });
  await api.waitForState(relayed, 'done');
  expect(await api.results(relayed)).toEqual([expect.objectContaining({ token: 160 })]);
  expect((await totalCounters(relayTabs)).relayLaneOut).toBeGreaterThan(0);
  for (const tab of relayTabs) await tab.close();
}

/**
 * A self-signed certificate in a directory of its own, and this process trusting any certificate
 * for its own requests (the API client's) while `body` runs.
 */
async function withCertificate(body: (files: { certFile: string; keyFile: string }) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-e2e-tls-'));
  const trusted = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  try {
    await body(selfSignedCertificate(dir));
  } finally {
    if (trusted === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = trusted;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('served over https and wss by the coordinator itself, a bag job and a message-passing job complete', async ({ browser }) => {
  test.setTimeout(120_000);
  await withCertificate(async ({ certFile, keyFile }) => {
    const coordinator = await CoordinatorProcess.start({ WEBPVM_TLS_CERT: certFile, WEBPVM_TLS_KEY: keyFile });
    try {
      expect(coordinator.url).toMatch(/^https:/);
      await squaresAndRings(browser, coordinator.url);
    } finally {
      await coordinator.stop();
    }
  });
});

test('behind Caddy from Debian as the README sets it up, a bag job and a message-passing job complete', async ({ browser }) => {
  test.setTimeout(240_000);
  await withCertificate(async ({ certFile, keyFile }) => {
    const coordinator = await CoordinatorProcess.start({ WEBPVM_TRUST_PROXY: '1' });
    let proxy: CaddyProxy | null = null;
    try {
      proxy = await CaddyProxy.start(coordinator.url, certFile, keyFile);
      await squaresAndRings(browser, proxy.url);
    } finally {
      await proxy?.stop();
      await coordinator.stop();
    }
  });
});
