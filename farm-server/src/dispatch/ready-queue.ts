/** A binary min-heap of unit keys ordered by (rank, arrival). Stale entries are skipped by the caller. */
export class ReadyQueue {
  private heap: Array<{ key: string; rank: number; seq: number }> = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(key: string, rank: number): void {
    const h = this.heap;
    h.push({ key, rank, seq: this.seq++ });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): string | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(l, m)) m = l;
        if (r < h.length && this.less(r, m)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top.key;
  }

  private less(a: number, b: number): boolean {
    const x = this.heap[a]!;
    const y = this.heap[b]!;
    return x.rank !== y.rank ? x.rank < y.rank : x.seq < y.seq;
  }
}
