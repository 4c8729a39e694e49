import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, apiHarness } from './support/api-harness.ts';

type Harness = Awaited<ReturnType<typeof apiHarness>>;
const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function submit(payload: Record<string, unknown>) {
  const h = await apiHarness();
  harnesses.push(h);
  return h.app.inject({ method: 'POST', url: '/api/jobs', headers: h.bearer(ADMIN_TOKEN), payload });
}

describe('submitting a replicated job', () => {
  it('takes replicas, quorum and tolerance for a bag', async () => {
    const res = await submit({ program: 'export default (ctx, x) => x', inputs: [1, 2], replicas: 3, quorum: 2, tolerance: 1e-9 });
    expect(res.statusCode, res.body).toBe(201);
  });

  it('refuses replicas for a main job: its tasks message each other and run once', async () => {
    const res = await submit({ program: 'export default (ctx, x) => x', main: 1, replicas: 2, quorum: 2 });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: 'E_BAD_REQUEST', message: expect.stringContaining('replicas apply to a bag') } });
  });

  it('takes a program whose validate loads, and refuses one whose validate cannot be loaded, saying why', async () => {
    const good = await submit({ program: 'export default (ctx, x) => x; export function validate(a, b) { return a === b; }', inputs: [1], replicas: 2, quorum: 2 });
    expect(good.statusCode, good.body).toBe(201);
    const looping = 'export default (ctx, x) => x; export function validate(a, b) { return true; } for (;;) {}';
    const bad = await submit({ program: looping, inputs: [1], replicas: 2, quorum: 2 });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: { code: 'E_BAD_PROGRAM', message: expect.stringContaining('time limit') } });
  });
});
