import { expect, test } from '../support/fixtures.ts';
import { openHost } from '../support/hosts.ts';

test('the host page is cross-origin isolated, shares memory with a worker, and still runs tasks', async ({ browser, api }) => {
  // openHost waits until the page is connected: its WebSocket to the coordinator works under COEP
  const tab = await openHost(browser, api.baseUrl, 1);
  expect(await tab.page.evaluate(() => crossOriginIsolated)).toBe(true);

  const shared = await tab.page.evaluate(async () => {
    const source = `onmessage = (e) => { Atomics.store(new Int32Array(e.data), 0, 42); postMessage(crossOriginIsolated); };`;
    const worker = new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })));
    const memory = new SharedArrayBuffer(4);
    const workerIsolated = await new Promise<boolean>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<boolean>) => resolve(e.data);
      worker.onerror = (e) => reject(new Error(e.message));
      worker.postMessage(memory);
    });
    worker.terminate();
    return { workerIsolated, written: Atomics.load(new Int32Array(memory), 0) };
  });
  expect(shared).toEqual({ workerIsolated: true, written: 42 });

  // a task worker (its own script, with CSP and COEP) imports its program and runs it
  const id = await api.submit({ name: 'isolated', program: 'export default (ctx, x) => x * 2', inputs: [1, 2, 3] });
  await api.waitForState(id, 'done');
  expect(await api.results(id)).toEqual([2, 4, 6]);
  await tab.close();
});

test('the dashboard is cross-origin isolated too, and reaches the API', async ({ browser, api }) => {
  const page = await browser.newPage();
  await page.goto(`${api.baseUrl}/dashboard`);
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  await page.getByTestId('token-input').fill(api.token);
  await page.getByTestId('token-save').click();
  await expect(page.getByTestId('hosts-count')).toHaveText('0');
  await page.close();
});
