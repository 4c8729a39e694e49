import { createHash } from 'node:crypto';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { ForwardedReply, ForwardedRequest, WebpvmError } from '@webpvm/vm-protocol';
import type { Logger } from 'pino';

/** How long a forwarded change may take at the coordinator that runs its job. */
const FORWARD_TIMEOUT_MS = 30_000;

/** A coordinator's subject: its id holds characters (`:`, `/`, `.`) that a NATS subject cannot. */
function subjectOf(coordinator: string): string {
  return `webpvm.coordinator.${createHash('sha256').update(coordinator).digest('hex').slice(0, 32)}.http`;
}

/**
 * What coordinators of one cluster say to each other over NATS (`NATS_URL`, docs/cluster.md): a
 * REST change to a job another coordinator runs is forwarded to it, and answered by it as if sent
 * there. Each coordinator serves its own subject; a request has one responder or none.
 */
export class ClusterBus {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly coordinator: string,
    private readonly log: Logger,
  ) {}

  static async connect(url: string, coordinator: string, log: Logger): Promise<ClusterBus> {
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: url, name: coordinator, maxReconnectAttempts: -1 });
    } catch (error) {
      throw new WebpvmError('E_BAD_REQUEST', `NATS_URL: cannot reach NATS at ${url}: ${error instanceof Error ? error.message : String(error)}`);
    }
    return new ClusterBus(nc, coordinator, log);
  }

  /** Answers the changes forwarded to this coordinator with `handle`. */
  serve(handle: (request: ForwardedRequest) => Promise<ForwardedReply>): void {
    this.nc.subscribe(subjectOf(this.coordinator), {
      callback: (error, msg) => {
        if (error) {
          this.log.error({ err: error }, 'forwarded changes can no longer be received');
          return;
        }
        const parsed = ForwardedRequest.safeParse(parseJson(msg.string()));
        const answer = parsed.success
          ? handle(parsed.data)
          : Promise.resolve(errorReply(400, 'E_BAD_REQUEST', `a forwarded change that is not one: ${parsed.error.issues[0]?.message ?? ''}`));
        void answer
          .catch((err: unknown) => {
            this.log.error({ err }, 'a forwarded change failed');
            return errorReply(500, 'E_INTERNAL', 'the coordinator that runs the job could not answer');
          })
          .then((reply) => msg.respond(JSON.stringify(reply)));
      },
    });
  }

  /**
   * The answer of `runner` to `request`; throws E_CONFLICT naming it when it cannot be asked (it
   * does not answer, NATS is away, or the request is larger than NATS carries), so that the
   * client can send the change there itself.
   */
  async forward(runner: string, request: ForwardedRequest): Promise<ForwardedReply> {
    const payload = JSON.stringify(request);
    const unreachable = (why: string) => new WebpvmError('E_CONFLICT', `job is run by another coordinator, ${runner}, which ${why}: send this there`);
    const maxPayload = this.nc.info?.max_payload ?? 0;
    if (Buffer.byteLength(payload) > maxPayload) throw unreachable(`cannot be handed a request this large through NATS (${maxPayload} bytes at most)`);
    let text: string;
    try {
      text = (await this.nc.request(subjectOf(runner), payload, { timeout: FORWARD_TIMEOUT_MS })).string();
    } catch (error) {
      throw unreachable(`could not be asked (${error instanceof Error ? error.message : String(error)})`);
    }
    const reply = ForwardedReply.safeParse(parseJson(text));
    if (!reply.success) throw new WebpvmError('E_INTERNAL', `the coordinator that runs the job, ${runner}, answered with something that is not a reply`);
    return reply.data;
  }

  async close(): Promise<void> {
    await this.nc.drain().catch((error: unknown) => this.log.warn({ err: error }, 'NATS did not drain'));
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function errorReply(status: number, code: string, message: string): ForwardedReply {
  return { status, contentType: 'application/json; charset=utf-8', body: JSON.stringify({ error: { code, message } }) };
}
