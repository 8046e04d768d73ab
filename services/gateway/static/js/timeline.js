// The money-flow timeline of one race: a full load, then incremental refreshes by created_after,
// following next_cursor pages; documents merge by their stable id (rest-api.md §2.12, §4.2).

import { getJSON } from "./api.js";
import { toMs } from "./format.js";

const stamp = (value) => toMs(value) ?? 0;

const PAGE_LIMIT = 2000;
const MAX_PAGES = 20;

export class TimelineStore {
  constructor(raceId) {
    this.raceId = raceId;
    this.byId = new Map();
    this.byCell = new Map();
    this.nextCreatedAt = null;
    this.loaded = false;
  }

  merge(documents) {
    for (const doc of documents) {
      this.byId.set(doc.id, doc);
      const key = `${doc.entrant_id}|${doc.time_interval}`;
      const existing = this.byCell.get(key);
      if (!existing || existing.id === doc.id || stamp(doc.created_at) >= stamp(existing.created_at)) {
        this.byCell.set(key, doc);
      }
    }
  }

  noteCreatedAt(value) {
    if (!value) return;
    if (!this.nextCreatedAt || stamp(value) >= stamp(this.nextCreatedAt)) this.nextCreatedAt = value;
  }

  async fetchPages(createdAfter) {
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const body = await getJSON("/api/money-flow-timeline", {
        race_id: this.raceId,
        limit: PAGE_LIMIT,
        cursor_after: cursor,
        created_after: createdAfter,
      });
      this.merge(body.documents || []);
      this.noteCreatedAt(body.next_created_at);
      if (!body.next_cursor) return;
      cursor = body.next_cursor;
    }
  }

  async fullLoad() {
    this.byId.clear();
    this.byCell.clear();
    this.nextCreatedAt = null;
    await this.fetchPages(null);
    this.loaded = true;
  }

  async refresh() {
    if (!this.loaded || !this.nextCreatedAt) return this.fullLoad();
    return this.fetchPages(this.nextCreatedAt);
  }

  cell(entrantId, interval) {
    return this.byCell.get(`${entrantId}|${interval}`) || null;
  }

  intervals() {
    const values = new Set();
    for (const doc of this.byCell.values()) values.add(doc.time_interval);
    return [...values];
  }

  get size() {
    return this.byCell.size;
  }
}
