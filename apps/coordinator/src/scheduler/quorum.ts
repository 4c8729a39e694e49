import type { ErrorBody } from '@webpvm/vm-protocol';
import type { Agree } from './result-agreement.ts';

/** One replica's outcome, as its volunteer returned it. */
export interface Ballot {
  volunteerId: string | null;
  attempt: number;
  ok: boolean;
  value: unknown;
  error: ErrorBody | null;
}

export type Verdict =
  /** `quorum` ballots agree: the task ends with their outcome; the others were wrong. */
  | { kind: 'agreed'; outcome: Ballot; agreeing: Ballot[]; dissenting: Ballot[] }
  /** Every replica is in and no quorum: one more is to be given out. */
  | { kind: 'more' }
  /** Replicas are still out. */
  | { kind: 'waiting' }
  /** The cap of replicas is reached with no quorum: the task fails. */
  | { kind: 'disagreed'; ballots: Ballot[] };

/**
 * The replicas of one bag task and their ballots (BOINC's quorum): `replicas` are given out to
 * distinct volunteers, and the outcome `quorum` of them agree on (by the job's `agree`) is the
 * task's. Errors agree with errors: a task fails only when a quorum of volunteers saw it fail.
 * When every replica is in and none has a quorum, one more is given out, up to `cap` in all.
 */
export class Quorum {
  /** Volunteers given a replica: never two to one volunteer (a browser profile, however many tabs). */
  readonly volunteers = new Set<string | null>();
  /** Replicas out now, by attempt: when each was leased (its lease runs from then, job-book.ts). */
  readonly out = new Map<number, number>();
  /** Replicas still to give out, and how many times the job's `replicas` queue holds the task for them (leasing.ts). */
  unissued: number;
  queued = 0;
  /** Replicas to give out or given out, not yet answered. */
  open: number;
  readonly #classes: Ballot[][] = [];
  #cast = 0;

  constructor(
    private readonly quorum: number,
    replicas: number,
    private readonly cap: number,
    private readonly agree: Agree,
  ) {
    this.open = replicas;
    this.unissued = replicas;
  }

  /** A replica was leased to `volunteerId` as `attempt`. */
  issued(volunteerId: string | null, attempt: number, now: number): void {
    this.unissued--;
    this.volunteers.add(volunteerId);
    this.out.set(attempt, now);
  }

  /** A replica out is gone unanswered (its host was lost, reclaimed or let its lease expire): another replaces it. */
  gone(attempt: number): boolean {
    if (!this.out.delete(attempt)) return false;
    this.unissued++;
    return true;
  }

  get ballots(): number {
    return this.#cast;
  }

  cast(ballot: Ballot): Verdict {
    this.out.delete(ballot.attempt);
    this.open--;
    this.#cast++;
    const same = this.#classes.find((c) => this.#agrees(c[0]!, ballot));
    const mates = same ?? [];
    mates.push(ballot);
    if (!same) this.#classes.push(mates);
    if (mates.length >= this.quorum) {
      return { kind: 'agreed', outcome: mates[0]!, agreeing: mates, dissenting: this.#classes.filter((c) => c !== mates).flat() };
    }
    if (this.open > 0) return { kind: 'waiting' };
    if (this.#cast >= this.cap) return { kind: 'disagreed', ballots: this.#classes.flat() };
    this.open++;
    this.unissued++;
    return { kind: 'more' };
  }

  #agrees(a: Ballot, b: Ballot): boolean {
    if (a.ok !== b.ok) return false;
    return !a.ok || this.agree(a.value, b.value);
  }
}
