/** Keeps only the last `cap` bytes of a stream, trimming in batches so a chatty command stays cheap. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;

  constructor(private readonly cap: number) {}

  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    if (this.size > this.cap * 2) this.trim();
  }

  text(): string {
    this.trim();
    if (this.dropped === 0) return Buffer.concat(this.chunks).toString("utf8");
    const marker = Buffer.from("[… earlier output cut …]\n");
    let tail = Buffer.concat(this.chunks).subarray(marker.length);
    // Do not start in the middle of a UTF-8 character.
    let skip = 0;
    while (skip < tail.length && skip < 4 && (tail[skip]! & 0xc0) === 0x80) skip++;
    tail = tail.subarray(skip);
    return Buffer.concat([marker, tail]).toString("utf8");
  }

  private trim(): void {
    if (this.size <= this.cap) return;
    const all = Buffer.concat(this.chunks);
    this.dropped += all.length - this.cap;
    this.chunks = [all.subarray(all.length - this.cap)];
    this.size = this.cap;
  }
}
