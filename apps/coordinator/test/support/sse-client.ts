/** One server-sent-events response read frame by frame, as a test needs it. */
export interface SseClient {
  response: Response;
  /** The next `count` frames (events and comments), each without its blank line. */
  frames(count: number): Promise<string[]>;
  /** Resolves once the server has ended the response. */
  ended(): Promise<void>;
  abort(): void;
}

export async function openSse(url: string, headers: Record<string, string>): Promise<SseClient> {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  const frames = async (count: number) => {
    const out: string[] = [];
    while (out.length < count) {
      const end = buffer.indexOf('\n\n');
      if (end >= 0) {
        out.push(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        continue;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`the stream ended after ${out.length} of ${count} frames`);
      buffer += value;
    }
    return out;
  };
  const ended = async () => {
    while (!(await reader.read()).done);
  };
  return { response, frames, ended, abort: () => controller.abort() };
}

/** The id of an event frame (`id: 7\nevent: …\ndata: …`). */
export const frameId = (frame: string): number => Number(/^id: (\d+)$/m.exec(frame)?.[1]);
