/** A caller of `barrier` waiting to be released: which task, and whatever its owner needs to answer it. */
export interface BarrierWaiter {
  tid: string;
}

export interface GroupsSnapshot<W> {
  /** Per group, its members and their instance numbers. */
  groups: [string, [string, number][]][];
  /** Per group with callers waiting, the count they wait for and who they are. */
  barriers: [string, number, W[]][];
}

/**
 * PVM's dynamic groups for the tasks of one job: instance numbers (the lowest free one, as in
 * pvm_joingroup), sizes, members in instance order, and barriers that release their callers
 * once `count` of them are waiting. One implementation for the coordinator and runLocal, so a
 * program behaves the same in both.
 */
export class TaskGroups<W extends BarrierWaiter = BarrierWaiter> {
  private readonly groups = new Map<string, Map<string, number>>();
  private readonly barriers = new Map<string, { count: number; waiting: W[] }>();

  join(group: string, tid: string): number {
    const members = this.groups.get(group) ?? new Map<string, number>();
    this.groups.set(group, members);
    const existing = members.get(tid);
    if (existing !== undefined) return existing;
    const taken = new Set(members.values());
    let instance = 0;
    while (taken.has(instance)) instance++;
    members.set(tid, instance);
    return instance;
  }

  /** False when the task was not a member. */
  leave(group: string, tid: string): boolean {
    const members = this.groups.get(group);
    if (!members?.delete(tid)) return false;
    if (!members.size) this.groups.delete(group);
    return true;
  }

  size(group: string): number {
    return this.groups.get(group)?.size ?? 0;
  }

  members(group: string): string[] {
    return [...(this.groups.get(group) ?? new Map<string, number>())].sort((a, b) => a[1] - b[1]).map(([tid]) => tid);
  }

  /**
   * Registers a waiter; returns the waiters to release when this call completes the barrier.
   * A count that differs from the one the first waiter gave is an error (null).
   */
  barrier(group: string, count: number, waiter: W): W[] | null {
    const barrier = this.barriers.get(group) ?? { count, waiting: [] };
    if (barrier.count !== count) return null;
    barrier.waiting.push(waiter);
    if (barrier.waiting.length < count) {
      this.barriers.set(group, barrier);
      return [];
    }
    this.barriers.delete(group);
    return barrier.waiting;
  }

  /** No group has members and no barrier waits. */
  get empty(): boolean {
    return this.groups.size === 0 && this.barriers.size === 0;
  }

  /** Members and waiting barrier calls, as plain data: what a coordinator stores to resume them after a restart. */
  snapshot(): GroupsSnapshot<W> {
    return {
      groups: [...this.groups].map(([group, members]) => [group, [...members]]),
      barriers: [...this.barriers].map(([group, { count, waiting }]) => [group, count, [...waiting]]),
    };
  }

  /** Resumes what `snapshot` kept. */
  restore(snapshot: GroupsSnapshot<W>): void {
    this.groups.clear();
    this.barriers.clear();
    for (const [group, members] of snapshot.groups) this.groups.set(group, new Map(members));
    for (const [group, count, waiting] of snapshot.barriers) this.barriers.set(group, { count, waiting: [...waiting] });
  }

  /** A task that ends leaves every group; its pending barrier calls are forgotten. */
  leaveAll(tid: string): void {
    // Deleting the entry being visited is safe in a Map's iteration, and a copy per ended task is not free.
    for (const group of this.groups.keys()) this.leave(group, tid);
    for (const [group, barrier] of this.barriers) {
      barrier.waiting = barrier.waiting.filter((w) => w.tid !== tid);
      if (!barrier.waiting.length) this.barriers.delete(group);
    }
  }
}
