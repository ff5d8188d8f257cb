import type { EventType } from "@optimus/shared";

/**
 * The format of the events this version writes (stored beside each event, outside its hash).
 * 2: `task_created` always names who created the task (format 1 left it to the event's actor).
 */
export const EVENT_FORMAT = 2;

type Upcaster = (data: Record<string, unknown>, actor: string) => Record<string, unknown>;

/**
 * From format `v` to `v + 1`, per event type; a type that did not change in a step needs none.
 * Events are read through these (replay, history, catch-up), so the projection and every reader
 * see one shape whatever version wrote the journal; the stored event is never rewritten (its hash).
 */
const UPCASTERS: Readonly<Record<number, Partial<Record<EventType, Upcaster>>>> = {
  1: { task_created: (d, actor) => (typeof d.createdBy === "string" ? d : { ...d, createdBy: actor }) },
};

export class EventFormatError extends Error {}

/** An event's data in this version's format. */
export function upcast(type: string, v: number, data: Record<string, unknown>, actor: string): Record<string, unknown> {
  if (v > EVENT_FORMAT)
    throw new EventFormatError(
      `journal entry of type ${type} has format ${v}, newer than this Optimus reads (${EVENT_FORMAT}): it was written by a newer version; upgrade Optimus`,
    );
  let out = data;
  for (let at = v; at < EVENT_FORMAT; at++) out = UPCASTERS[at]?.[type as EventType]?.(out, actor) ?? out;
  return out;
}
