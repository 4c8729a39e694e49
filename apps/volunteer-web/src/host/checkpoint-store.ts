import type { Checkpoint, TaskRef } from '@webpvm/vm-protocol';
import type { KeyValueStore } from './kv-store.ts';

const PREFIX = 'ckpt:';

export interface StoredCheckpoint {
  attempt: number;
  checkpoint: Checkpoint;
  /** The byte segments of the value-encoded state. */
  stateBuffers: Uint8Array[];
}

const checkpointKey = (tid: string): string => `${PREFIX}${tid}`;

/** Each local task's latest checkpoint, kept until its result is acknowledged. */
export function saveCheckpoint(store: KeyValueStore, ref: TaskRef, checkpoint: Checkpoint, stateBuffers: Uint8Array[]): Promise<void> {
  const stored: StoredCheckpoint = { attempt: ref.attempt, checkpoint, stateBuffers };
  return store.set(checkpointKey(ref.tid), stored);
}

/** Keeps a checkpoint of a later attempt of the same tid, which may already run here. */
export async function forgetCheckpoint(store: KeyValueStore, ref: TaskRef): Promise<void> {
  const stored = await store.get<StoredCheckpoint>(checkpointKey(ref.tid));
  if (stored && stored.attempt <= ref.attempt) await store.del(checkpointKey(ref.tid));
}

/**
 * On page start no task runs yet: checkpoints of tasks with no pending result are orphans.
 * Returns the tids whose checkpoints stay.
 */
export async function pruneCheckpoints(store: KeyValueStore, keepTids: Set<string>): Promise<string[]> {
  const tids = (await store.keys()).filter((key) => key.startsWith(PREFIX)).map((key) => key.slice(PREFIX.length));
  await store.delMany(tids.filter((tid) => !keepTids.has(tid)).map(checkpointKey));
  return tids.filter((tid) => keepTids.has(tid));
}
