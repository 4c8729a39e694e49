import { describe, expect, it } from 'vitest';
import { hostTable } from '../src/cli/output.ts';

const host = { hostId: 'h1', volunteerId: 'v1', validated: 0, invalid: 0, trusted: false, connected: true, draining: false, slots: 3, running: 1, done: 7, userAgent: 'Chromium', connectedAt: null, lastSeenAt: '2026-01-01T00:00:00.000Z' };

describe('hostTable', () => {
  it('says whether each host is connected, draining or offline', () => {
    const text = hostTable(
      [host, { ...host, hostId: 'h2', draining: true }, { ...host, hostId: 'h3', connected: false }],
      Date.parse('2026-01-01T00:00:05.000Z'),
    );
    const states = text
      .split('\n')
      .slice(1)
      .map((line) => line.split(/\s+/).slice(0, 2).join(' '));
    expect(states).toEqual(['h1 connected', 'h2 draining', 'h3 offline']);
  });
});
