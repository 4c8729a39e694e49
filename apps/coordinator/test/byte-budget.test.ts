import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../src/byte-budget.ts';

describe('ByteBudget', () => {
  it('lets a burst through, then asks for a pause as long as the debt takes to pay at the rate', () => {
    let now = 0;
    const budget = new ByteBudget(1000, 5000, () => now);
    expect(budget.spend(5000)).toBe(0);
    expect(budget.spend(500)).toBe(500);
    now += 500;
    expect(budget.spend(0)).toBe(0);
    expect(budget.spend(2000)).toBe(2000);
  });

  it('refills no further than its burst, however long the host was quiet', () => {
    let now = 0;
    const budget = new ByteBudget(1000, 5000, () => now);
    now += 60_000;
    expect(budget.spend(5000)).toBe(0);
    expect(budget.spend(1)).toBe(1);
  });
});
