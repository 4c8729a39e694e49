/**
 * Tabs of one browser profile share IndexedDB. Each tab claims a lane — a Web Lock held for the
 * page's whole life — and keeps its identity and outbox in that lane's database, so two tabs never
 * share a host id or acknowledge each other's results. A closed tab frees its lane; the next tab
 * to claim it takes over its identity and resends what it left unacknowledged.
 */
export async function claimLane(locks: LockManager | undefined = navigator.locks): Promise<number> {
  // Web Locks exist only in secure contexts (https, localhost): elsewhere every tab uses lane 0.
  if (!locks) return 0;
  for (let lane = 0; ; lane++) {
    const claimed = await new Promise<boolean>((resolve) => {
      void locks.request(`webpvm-host-lane-${lane}`, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        return lock === null ? undefined : new Promise<never>(() => {});
      });
    });
    if (claimed) return lane;
  }
}

export const laneDatabase = (lane: number): string => (lane === 0 ? 'webpvm-host' : `webpvm-host-${lane}`);
