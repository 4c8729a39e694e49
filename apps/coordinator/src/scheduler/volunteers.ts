import type { StoredVolunteer } from '../store/store.ts';
import type { TaskRun } from './model.ts';

/**
 * A new volunteer holds this many leases at once (running and queued, over all its tabs); each
 * result it returns earns one more, so an honest fast one reaches its prefetch depth within a
 * second or two (leasing.ts) — as TCP's slow start does.
 */
export const FIRST_LEASES = 8;
/** Results in a row that agreed with a quorum, after which a volunteer is trusted (adaptive replication). */
export const TRUST_AFTER = 10;

/** However good its record, a volunteer holds at most this many leases: a few expiries bring a turncoat down. */
const MOST_LEASES = 4096;

/** A volunteer's stored record (store.ts), and what of it is not stored. */
export interface VolunteerRecord extends Omit<StoredVolunteer, 'updatedAt'> {
  /** Tasks whose outcome it gave alone, standing until it passes its next spot check. */
  readonly provisional: Set<TaskRun>;
}

/**
 * What the coordinator knows of each volunteer (a browser profile: hosts.ts `volunteerId`): how
 * many leases it may hold. BOINC limits the work in progress per host and raises the limit with
 * the host's record; here the record is the volunteer's, so opening more tabs earns nothing, and
 * a volunteer that lets leases expire (hoarding, or only gone quiet) or drops its connection
 * while it holds tasks is given half as many. Every change is stored (`changed`): a restart
 * resumes each volunteer's allowance, record and trust, though not what it gave alone and still
 * stands provisionally (those tasks run again).
 */
export class Volunteers {
  readonly #records = new Map<string, VolunteerRecord>();
  readonly #changed: (record: VolunteerRecord) => void;

  constructor(changed: (record: VolunteerRecord) => void = () => {}) {
    this.#changed = changed;
  }

  /** The records a restart found stored. */
  restore(stored: readonly StoredVolunteer[]): void {
    for (const { updatedAt: _, ...record } of stored) this.#records.set(record.volunteerId, { ...record, provisional: new Set() });
  }

  all(): IterableIterator<VolunteerRecord> {
    return this.#records.values();
  }

  get(volunteerId: string): VolunteerRecord {
    let record = this.#records.get(volunteerId);
    if (!record) {
      record = { volunteerId, allowance: FIRST_LEASES, returned: 0, dropped: 0, validated: 0, invalid: 0, streak: 0, trusted: false, provisional: new Set() };
      this.#records.set(volunteerId, record);
    }
    return record;
  }

  /** Forgets the volunteers with nothing on record that have no host `remembered`. */
  forgetIdle(remembered: (volunteerId: string) => boolean): void {
    for (const [id, record] of this.#records) {
      const onRecord = record.returned + record.dropped + record.validated + record.invalid + record.provisional.size > 0;
      if (!onRecord && !remembered(id)) this.#records.delete(id);
    }
  }

  /** It returned `count` results (done or failed): as many more leases. */
  returned(volunteerId: string, count: number): void {
    const record = this.get(volunteerId);
    record.returned += count;
    record.allowance = Math.min(MOST_LEASES, record.allowance + count);
    this.#changed(record);
  }

  /**
   * A result of its for a replicated task agreed with a quorum, or did not. Returns the tasks it
   * gave alone meanwhile: when it agreed they are confirmed (it passed a spot check), when it did
   * not its trust is over and they must be checked (job-book.ts).
   */
  judged(volunteerId: string, agreed: boolean): TaskRun[] {
    const record = this.get(volunteerId);
    if (agreed) {
      record.validated++;
      record.streak++;
      record.trusted ||= record.streak >= TRUST_AFTER;
    } else {
      record.invalid++;
      record.streak = 0;
      record.trusted = false;
    }
    const settled = [...record.provisional];
    record.provisional.clear();
    this.#changed(record);
    return settled;
  }

  /** It let a lease expire, or went away holding leases: half the leases, one at least. */
  dropped(volunteerId: string): void {
    const record = this.get(volunteerId);
    record.dropped++;
    record.allowance = Math.max(1, Math.floor(record.allowance / 2));
    this.#changed(record);
  }
}
