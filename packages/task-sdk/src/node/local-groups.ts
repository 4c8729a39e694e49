/**
 * PVM's dynamic groups for one local job: members with instance numbers (the lowest free one
 * from 0, as pvm_joingroup gives) and barriers.
 */
export class LocalGroups {
  /** group → tid → instance. */
  readonly #members = new Map<string, Map<string, number>>();
  readonly #barriers = new Map<string, (() => void)[]>();

  join(group: string, tid: string): number {
    let members = this.#members.get(group);
    if (!members) {
      members = new Map();
      this.#members.set(group, members);
    }
    const joined = members.get(tid);
    if (joined !== undefined) return joined;
    const taken = new Set(members.values());
    let instance = 0;
    while (taken.has(instance)) instance++;
    members.set(tid, instance);
    return instance;
  }

  leave(group: string, tid: string): void {
    const members = this.#members.get(group);
    members?.delete(tid);
    if (members?.size === 0) this.#members.delete(group);
  }

  /** An ended task leaves every group it was in. */
  leaveAll(tid: string): void {
    for (const group of [...this.#members.keys()]) this.leave(group, tid);
  }

  size(group: string): number {
    return this.#members.get(group)?.size ?? 0;
  }

  /** The members' tids by instance number. */
  members(group: string): string[] {
    return [...(this.#members.get(group) ?? [])].sort((a, b) => a[1] - b[1]).map(([tid]) => tid);
  }

  /** Resolves when `count` callers wait at the group's barrier; the next caller starts a new round. */
  barrier(group: string, count: number): Promise<void> {
    return new Promise((resolve) => {
      const waiting = this.#barriers.get(group) ?? [];
      waiting.push(resolve);
      if (waiting.length < count) {
        this.#barriers.set(group, waiting);
        return;
      }
      this.#barriers.delete(group);
      for (const release of waiting) release();
    });
  }
}
