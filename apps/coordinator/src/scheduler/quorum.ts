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
  /** The one replica of a trusted volunteer answered: its outcome stands until its volunteer's next spot check. */
  | { kind: 'provisional'; outcome: Ballot }
  /** The cap of replicas is reached with no quorum: the task fails. */
  | { kind: 'disagreed'; ballots: Ballot[] };

/**
 * The replicas of one bag task and their ballots (BOINC's quorum): `replicas` are given out to
 * distinct volunteers, and the outcome `quorum` of them agree on (by the job's `agree`) is the
 * task's. Errors agree with errors: a task fails only when a quorum of volunteers saw it fail.
 * When every replica is in and none has a quorum, one more is given out, up to `cap` in all.
 *
 * With adaptive replication a trusted volunteer's replica may run alone (`trustAlone`): its
 * outcome is provisional, until that volunteer passes a spot check or its trust ends and the
 * task is `widen`ed to a full quorum, the lone ballot one of its votes.
 */
export class Quorum {
  /** Volunteers given a replica: never two to one volunteer (a browser profile, however many tabs). */
  readonly volunteers = new Set<string | null>();
  /** The network addresses they ran from: with `distinct: "address"`, never two replicas from one. */
  readonly addresses = new Set<string | null>();
  /** Replicas out now, by attempt: when each was leased, on the monotonic clock (its lease runs from then, lease-deadlines.ts). */
  readonly out = new Map<number, number>();
  /** Replicas still to give out, and how many times the job's `replicas` queue holds the task for them (leasing.ts). */
  unissued: number;
  queued = 0;
  /** Replicas to give out or given out, not yet answered. */
  open: number;
  /** The trusted volunteer whose one replica runs alone; null for a full quorum. */
  alone: string | null = null;
  /** The lone replica's outcome, while it stands alone. */
  provisional: Ballot | null = null;
  readonly #classes: Ballot[][] = [];
  #cast = 0;
  #needed: number;

  constructor(
    private readonly quorum: number,
    private readonly replicas: number,
    private readonly cap: number,
    private readonly agree: Agree,
  ) {
    this.open = replicas;
    this.unissued = replicas;
    this.#needed = quorum;
  }

  /** Its first replica, just issued to trusted `volunteerId`, runs alone: no other is given out. */
  trustAlone(volunteerId: string): void {
    this.alone = volunteerId;
    this.#needed = 1;
    this.open -= this.replicas - 1;
    this.unissued -= this.replicas - 1;
  }

  /** A replica running alone, or its provisional outcome, is no longer enough: the full quorum is gathered. */
  widen(): void {
    if (this.alone === null) return;
    this.alone = null;
    this.provisional = null;
    this.#needed = this.quorum;
    this.open += this.replicas - 1;
    this.unissued += this.replicas - 1;
  }

  /** A replica was leased to `volunteerId`, at `address`, as `attempt`. */
  issued(volunteerId: string | null, address: string | null, attempt: number, now: number): void {
    this.unissued--;
    this.volunteers.add(volunteerId);
    this.addresses.add(address);
    this.out.set(attempt, now);
  }

  /** A replica out is gone unanswered (its host was lost, reclaimed or let its lease expire): another replaces it. */
  gone(attempt: number): boolean {
    if (!this.out.delete(attempt)) return false;
    // its replacement is not the trusted volunteer's
    this.widen();
    this.unissued++;
    return true;
  }

  get ballots(): number {
    return this.#cast;
  }

  cast(ballot: Ballot): Verdict {
    this.out.delete(ballot.attempt);
    // a trusted volunteer's lone error is not trusted: a quorum must see the task fail
    if (this.alone !== null && !ballot.ok) this.widen();
    this.open--;
    this.#cast++;
    const same = this.#classes.find((c) => this.#agrees(c[0]!, ballot));
    const mates = same ?? [];
    mates.push(ballot);
    if (!same) this.#classes.push(mates);
    if (this.alone !== null) {
      this.provisional = ballot;
      return { kind: 'provisional', outcome: ballot };
    }
    if (mates.length >= this.#needed) {
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
