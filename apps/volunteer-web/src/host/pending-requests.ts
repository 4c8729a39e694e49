import type { HostMessageOf } from '@webpvm/vm-protocol';

type Request = HostMessageOf<'request'>;

/**
 * Task requests (spawn, groups, barrier, notify) sent and not answered yet. A request whose
 * connection broke, or whose coordinator died before it answered, would leave its task waiting
 * forever: each is sent again after every welcome. The coordinator answers a request it has seen
 * with its first answer, and counts a barrier call once (JobVm), so sending again is safe.
 */
export class PendingRequests {
  #waiting = new Map<string, Map<number, Request>>();

  sent(request: Request): void {
    const byId = this.#waiting.get(request.tid) ?? new Map<number, Request>();
    byId.set(request.requestId, request);
    this.#waiting.set(request.tid, byId);
  }

  answered(tid: string, requestId: number): void {
    const byId = this.#waiting.get(tid);
    if (!byId?.delete(requestId) || byId.size) return;
    this.#waiting.delete(tid);
  }

  /** The task ended or left this page: its answers no longer come here. */
  forget(tid: string): void {
    this.#waiting.delete(tid);
  }

  /** Every request not answered yet, oldest first per task. */
  all(): Request[] {
    return [...this.#waiting.values()].flatMap((byId) => [...byId.values()]);
  }
}
