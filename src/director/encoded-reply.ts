/**
 * A command result already encoded: `body` is the JSON text sent as the reply
 * body, `frames` follow it as extra frames of the same reply (raw history
 * pushes, so neither side parses or re-encodes them).
 */
export class EncodedReply {
  constructor(
    readonly body: Buffer,
    readonly frames: readonly Buffer[] = [],
  ) {}

  get bytes(): number {
    let n = this.body.length;
    for (const f of this.frames) n += f.length;
    return n;
  }
}
