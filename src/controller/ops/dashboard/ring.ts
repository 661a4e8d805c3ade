// A bounded first-in first-out buffer: the newest `capacity` items, oldest first.
export class Ring<T> {
  private items: T[] = [];

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
  }

  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
  }

  /** A copy, oldest first. */
  list(): T[] {
    return [...this.items];
  }

  get size(): number {
    return this.items.length;
  }
}
