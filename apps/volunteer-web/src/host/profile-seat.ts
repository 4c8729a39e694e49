/**
 * Tabs of one browser profile share IndexedDB. Each tab claims a seat — a Web Lock held for the
 * page's whole life — and keeps its identity and outbox in that seat's database, so two tabs never
 * share a host id or acknowledge each other's results. A closed tab frees its seat; the next tab
 * to claim it takes over its identity and resends what it left unacknowledged.
 *
 * The lock and database names still say "lane", as they did before seats had their own name:
 * tabs open now hold those locks and profiles keep their state in those databases, so the
 * strings must not change.
 */
export async function claimSeat(locks: LockManager | undefined = navigator.locks): Promise<number> {
  // Web Locks exist only in secure contexts (https, localhost): elsewhere every tab uses seat 0.
  if (!locks) return 0;
  for (let seat = 0; ; seat++) {
    const claimed = await new Promise<boolean>((resolve) => {
      void locks.request(`webpvm-host-lane-${seat}`, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        return lock === null ? undefined : new Promise<never>(() => {});
      });
    });
    if (claimed) return seat;
  }
}

export const seatDatabase = (seat: number): string => (seat === 0 ? 'webpvm-host' : `webpvm-host-${seat}`);
