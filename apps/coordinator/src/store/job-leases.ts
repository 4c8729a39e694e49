/**
 * What several coordinators on one database share besides the store (docs/cluster.md): which of
 * them runs each unfinished job, by leases that run out unless renewed, and ids no two of them
 * give out. Only the PostgreSQL store has it; a coordinator on SQLite is alone with its file.
 */
export interface JobLeases {
  /** This coordinator's id: the jobs it commits are its own. */
  readonly coordinator: string;
  /** Renews, for `ttlMs` more, the leases this coordinator holds; answers the jobs it holds now. */
  renew(ttlMs: number): Promise<string[]>;
  /** Takes up to `limit` unfinished jobs that are its own already, or whose owner's lease ran out, or that have none. */
  claim(ttlMs: number, limit: number): Promise<string[]>;
  /** Lets go of every job it holds (a clean stop): another coordinator takes them over at once. */
  release(): Promise<void>;
  /** The coordinator that runs an unfinished job now; null when none does (or the job has ended). */
  runnerOf(jobId: string): Promise<string | null>;
  /**
   * Marks this coordinator seen now, and answers the coordinators seen within `memoryMs` (this
   * one too), in order: one down for an upgrade is still among them.
   */
  members(memoryMs: number): Promise<string[]>;
  /** A block of EVENT_ID_BLOCK event ids no other coordinator gets: its first. */
  eventIdBlock(): Promise<number>;
}

/** A commit touched a job another coordinator took over: this one no longer runs it, and must stop. */
export class NotOwner extends Error {
  constructor(readonly jobIds: string[]) {
    super(`jobs ${jobIds.join(', ')} are run by another coordinator now`);
  }
}
