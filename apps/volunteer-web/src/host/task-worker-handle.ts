import type { ErrorCode, LaneGift, ToWorker } from '@webpvm/vm-protocol';

/**
 * A worker's safe-point cells (vm-protocol SAFE_POINT_FLAGS), one per task it holds: where the
 * worker lives, not the page, so the page sets them through its handle.
 */
export interface SafePointCells {
  store(cell: number, bits: number): void;
  or(cell: number, bits: number): void;
}

/** What the slot pool needs of a task worker; tests give it a fake. */
export interface TaskWorkerHandle {
  /** `transfer` moves buffers instead of copying them. */
  post(message: ToWorker, transfer?: Transferable[]): void;
  /** Has the worker's frame make stream `stream` of its link `link` and hand it to the worker with `gift`; `made` says whether it did. */
  lane(link: number, stream: number, gift: LaneGift, made: (ok: boolean) => void): void;
  terminate(): void;
  /** Null where no cells are shared (a page that is not cross-origin isolated): a freeze then goes by message. */
  readonly cells: SafePointCells | null;
}

export interface TaskWorkerListener {
  message(data: unknown): void;
  error(code: ErrorCode, message: string): void;
  /** The worker was ended at `at` (the page's `performance.now()`) as its task froze; what it posted before may still be on its way. */
  stopped(at: number): void;
}

/** The job whose tasks the worker will run: a worker loads one job's program and holds nothing of another's. */
export interface WorkerJob {
  jobId: string;
  programUrl: string;
}

export type SpawnTaskWorker = (job: WorkerJob, listener: TaskWorkerListener) => TaskWorkerHandle;

