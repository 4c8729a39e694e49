/** One measured row of bench:throughput, as the table prints it and the JSON keeps it. */
export type Visibility = 'visible' | 'hidden';
export const VISIBILITIES: Visibility[] = ['visible', 'hidden'];

export interface Row {
  /** `trivial`, `cpu 10 ms`, `cpu 100 ms`, or `coordinator alone` */
  workload: string;
  system: string;
  visibility: Visibility | null;
  /** CPU-bound rows: which of the rounds. */
  round?: number;
  tabs: number | null;
  /** Tasks asked for (bare trivial rows: those completed in the timed window). */
  tasks: number;
  done: number;
  /** False when the row was stopped at its time limit: tasks/s is the progress so far. */
  complete: boolean;
  seconds: number;
  tasksPerSecond: number;
  /** To bare workers of the same workload, visibility and round (the null server for the coordinator alone). */
  ratio: number | null;
  /** The server's own CPU (coordinator, bare server or null server), µs per task. */
  serverCpuMicrosPerTask: number;
  /** The coordinator on PostgreSQL: the server's CPU (all its processes), µs per task. */
  storeCpuMicrosPerTask?: number;
  /** Two coordinators: each one's own CPU, µs per task of the whole run (`serverCpuMicrosPerTask` is their sum). */
  coordinatorCpuMicrosPerTask?: number[];
  /** Share of the machine's cores that processes other than the bench's kept busy during the row. */
  neighboursCpuShare?: number;
  /** µs of CPU per task by process and thread (thread-cpu.ts), with `total` and what the cores left idle. */
  cpuMicrosPerTask?: Record<string, number>;
  /** webpvm: leases per task (1 unless tasks were given out again, after a host seemed lost, say) and migrations, from the job's status. */
  leasesPerTask?: number;
  /** webpvm: tasks given out, counting each attempt. */
  leases?: number;
  migrations?: number;
  /** webpvm: Web Workers the row's host pages started during the row (their snapshots' workersStarted). */
  workersStarted?: number;
}

export const round = (x: number, digits = 0) => +x.toFixed(digits);
/** Tasks per second from a row's counts (its tasksPerSecond is rounded for the table). */
export const rate = (r: Row) => r.done / r.seconds;
