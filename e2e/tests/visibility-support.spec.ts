import { type Page, expect, test } from '@playwright/test';
import { type VisibleBrowser, launchVisibleBrowser } from '../support/visible-browser.ts';

// one browser for the file, as launching takes most of a second; each test uses tabs of its own
let vb: VisibleBrowser;

test.beforeAll(async () => {
  vb = await launchVisibleBrowser();
});

test.afterAll(async () => {
  await vb.close();
});

/** A tab that counts its own `visibilitychange` events, in `toggles`. */
async function countingPage(): Promise<Page> {
  const page = await vb.newPage();
  await page.setContent(`<script>
    var toggles = 0;
    document.addEventListener('visibilitychange', () => toggles++);
  </script>`);
  return page;
}

const states = (pages: Page[]) => Promise.all(pages.map((p) => p.evaluate(() => document.visibilityState)));
const toggles = (pages: Page[]) => Promise.all(pages.map((p) => p.evaluate('toggles')));

test('tabs are hidden and shown independently of each other', async () => {
  const pages = [await countingPage(), await countingPage(), await countingPage()];
  const [a, b, c] = pages as [Page, Page, Page];
  expect(await states(pages)).toEqual(['visible', 'visible', 'visible']);

  await Promise.all([vb.hide(a), vb.hide(b)]);
  expect(await states(pages)).toEqual(['hidden', 'hidden', 'visible']);
  expect(await toggles(pages)).toEqual([1, 1, 0]);

  await vb.show(a);
  expect(await states(pages)).toEqual(['visible', 'hidden', 'visible']);
  expect(await toggles(pages)).toEqual([2, 1, 0]);

  for (let i = 0; i < 10; i++) {
    await vb.hide(c);
    expect(await states(pages)).toEqual(['visible', 'hidden', 'hidden']);
    await vb.show(c);
    expect(await states(pages)).toEqual(['visible', 'hidden', 'visible']);
  }
  expect(await toggles(pages)).toEqual([2, 1, 20]);
});

test('a hidden tab stays hidden across a navigation and is throttled like a background tab', async () => {
  const [hidden, visible] = [await vb.newPage(), await vb.newPage()];
  await vb.hide(hidden);
  await hidden.goto('data:text/html,<title>next</title>');
  expect(await hidden.evaluate(() => document.visibilityState)).toBe('hidden');

  // a 10 ms interval for 500 ms: ~50 runs when visible, about one when hidden
  const ticks = (page: Page) =>
    page.evaluate(
      () =>
        new Promise<number>((resolve) => {
          let count = 0;
          const id = setInterval(() => count++, 10);
          setTimeout(() => {
            clearInterval(id);
            resolve(count);
          }, 500);
        }),
    );
  const [hiddenTicks, visibleTicks] = await Promise.all([ticks(hidden), ticks(visible)]);
  expect(hiddenTicks).toBeLessThan(5);
  expect(visibleTicks).toBeGreaterThan(25);
});

test('input reaches a visible tab while others are hidden, and closing it fires pagehide', async () => {
  // the tab that gets input is not the newest window, nor the only visible one
  const [page, hidden, other] = [await vb.newPage(), await vb.newPage(), await vb.newPage()];
  await vb.hide(hidden);
  const events: string[] = [];
  await page.exposeFunction('report', (event: string) => events.push(event));
  await page.setContent(`
    <button style="position:absolute; left:0; top:0; width:100px; height:40px">press</button>
    <input style="position:absolute; left:0; top:60px">
    <script>
      var presses = 0;
      document.querySelector('button').addEventListener('click', () => presses++);
      addEventListener('pagehide', () => report('pagehide'));
    </script>`);

  await page.mouse.click(50, 20);
  await page.locator('input').click();
  await page.keyboard.type('typed');
  expect(await page.evaluate('presses')).toBe(1);
  await expect(page.locator('input')).toHaveValue('typed');

  const closed = page.waitForEvent('close');
  await page.close({ runBeforeUnload: true });
  await closed;
  expect(events).toEqual(['pagehide']);
  expect(await states([hidden, other])).toEqual(['hidden', 'visible']);
});
