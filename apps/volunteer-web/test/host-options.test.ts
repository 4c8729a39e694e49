import { describe, expect, it } from 'vitest';
import { parseHostOptions } from '../src/host/host-options.ts';

describe('parseHostOptions', () => {
  it('defaults to one slot fewer than the cores, and the idle policy', () => {
    expect(parseHostOptions('', 8)).toEqual({ slots: 7, policy: 'idle' });
    expect(parseHostOptions('', 1)).toEqual({ slots: 1, policy: 'idle' });
    expect(parseHostOptions('', undefined)).toEqual({ slots: 1, policy: 'idle' });
  });

  it('reads slots and policy from the query, within limits', () => {
    expect(parseHostOptions('?slots=3&policy=hidden', 8)).toEqual({ slots: 3, policy: 'hidden' });
    expect(parseHostOptions('?slots=1000&policy=always', 8)).toEqual({ slots: 64, policy: 'always' });
  });

  it('falls back to the defaults on values it cannot read', () => {
    expect(parseHostOptions('?slots=0&policy=sometimes', 4)).toEqual({ slots: 3, policy: 'idle' });
    expect(parseHostOptions('?slots=two', 4)).toEqual({ slots: 3, policy: 'idle' });
    expect(parseHostOptions('?slots=', 4)).toEqual({ slots: 3, policy: 'idle' });
  });
});
