// Meetings of today's NZ date as cards, and the selected meeting's races (rest-api.md §4.1).

import { getJSON } from "./api.js";
import { serverClock } from "./clock.js";
import { countdown, el, nzClock, nzDateLabel, nzTime, titleCase, toMs } from "./format.js";
import { Poller } from "./poller.js";

const REFRESH_MS = 60000;

export function meetingPhase(meeting, nowMs) {
  if (meeting.status === "completed") return "completed";
  if (meeting.status === "cancelled") return "cancelled";
  const first = toMs(meeting.first_race_time);
  return first !== null && first <= nowMs ? "live" : "upcoming";
}

function raceTypeLabel(meeting) {
  return titleCase(meeting.race_type || meeting.category_name || meeting.category || "");
}

export class MeetingsView {
  constructor(root) {
    this.root = root;
    this.cards = root.querySelector('[data-testid="meetings-list"]');
    this.empty = root.querySelector('[data-testid="meetings-empty"]');
    this.racesPanel = root.querySelector('[data-testid="meeting-races"]');
    this.racesTitle = root.querySelector('[data-testid="meeting-races-title"]');
    this.racesBody = root.querySelector('[data-testid="races-list"]');
    this.dateLabel = root.querySelector('[data-testid="meetings-date"]');
    this.updated = root.querySelector('[data-testid="meetings-updated"]');
    this.loading = root.querySelector('[data-testid="meetings-loading"]');
    this.loadError = root.querySelector('[data-testid="meetings-load-error"]');
    this.meetings = [];
    this.selected = new URLSearchParams(window.location.search).get("meeting");
    this.poller = new Poller("meetings", () => this.refresh());
    this.lastSuccess = 0;
  }

  start() {
    this.root.hidden = false;
    document.title = "Meetings · Raceday";
    this.dateLabel.textContent = nzDateLabel(serverClock.now());
    this.poller.start();
  }

  expectedIntervalMs() {
    return REFRESH_MS;
  }

  async refresh() {
    try {
      this.meetings = await getJSON("/api/meetings");
    } catch (error) {
      // Until the first answer the page has nothing to show but this; later, the last list stays.
      if (!this.lastSuccess) {
        this.loading.hidden = true;
        this.loadError.hidden = false;
        this.loadError.textContent = `Could not load the meetings: ${error.message}. Retrying automatically…`;
      }
      throw error;
    }
    this.loading.hidden = true;
    this.loadError.hidden = true;
    if (!this.meetings.some((meeting) => meeting.meeting_id === this.selected)) this.selected = this.defaultSelection();
    this.renderCards();
    if (this.selected) await this.loadRaces(this.selected);
    else this.racesPanel.hidden = true;
    this.lastSuccess = Date.now();
    this.updated.textContent = `updated ${nzClock(serverClock.now())}`;
    return REFRESH_MS;
  }

  defaultSelection() {
    const now = serverClock.now();
    const live = this.meetings.find((meeting) => meetingPhase(meeting, now) === "live");
    const upcoming = this.meetings.find((meeting) => meetingPhase(meeting, now) === "upcoming");
    const chosen = live || upcoming || this.meetings[0];
    return chosen ? chosen.meeting_id : null;
  }

  renderCards() {
    const now = serverClock.now();
    this.dateLabel.textContent = nzDateLabel(now);
    this.empty.hidden = this.meetings.length > 0;
    const cards = this.meetings.map((meeting) => {
      const phase = meetingPhase(meeting, now);
      const card = el(
        "button",
        { type: "button", class: "meeting-card", "data-testid": "meeting-card", "data-meeting-id": meeting.meeting_id,
          "aria-selected": meeting.meeting_id === this.selected ? "true" : "false" },
        el("div", { class: "row" },
          el("span", { class: "name", "data-testid": "meeting-name" }, meeting.meeting_name),
          el("span", { class: `pill ${phase}`, "data-testid": "meeting-status" }, titleCase(phase))),
        el("div", { class: "row facts" },
          el("span", {}, `First race ${nzTime(meeting.first_race_time)}`),
          el("span", {}, `${meeting.race_count} ${meeting.race_count === 1 ? "race" : "races"}`)),
        el("div", { class: "row facts" },
          el("span", {}, [raceTypeLabel(meeting), meeting.country].filter(Boolean).join(" · ")),
          el("span", {}, [meeting.track_condition, meeting.weather].filter(Boolean).join(" · ") || "—")),
      );
      card.addEventListener("click", () => this.select(meeting.meeting_id));
      return card;
    });
    this.cards.replaceChildren(...cards);
  }

  async select(meetingId) {
    this.selected = meetingId;
    const url = new URL(window.location.href);
    url.searchParams.set("meeting", meetingId);
    window.history.replaceState(null, "", url);
    for (const card of this.cards.children) {
      card.setAttribute("aria-selected", card.dataset.meetingId === meetingId ? "true" : "false");
    }
    await this.loadRaces(meetingId);
  }

  async loadRaces(meetingId) {
    const races = await getJSON("/api/races", { meeting_id: meetingId });
    if (meetingId !== this.selected) return;
    const meeting = this.meetings.find((item) => item.meeting_id === meetingId);
    this.racesTitle.textContent = meeting ? `${meeting.meeting_name} — races` : "Races";
    const rows = races.map((race) => {
      const href = `/race/${encodeURIComponent(race.race_id)}`;
      const row = el("tr", { "data-testid": "race-row", "data-race-id": race.race_id },
        el("td", {}, `R${race.race_number}`),
        el("td", {}, el("a", { href, "data-testid": "race-link" }, race.name)),
        el("td", {}, nzTime(race.start_time)),
        el("td", { class: "num muted", "data-testid": "race-countdown-cell", "data-start": race.start_time }, ""),
        el("td", {}, el("span", { class: `pill ${race.status}` }, race.status)),
        el("td", { class: "num" }, race.distance ? `${race.distance}m` : "—"),
        el("td", { class: "num" }, race.runner_count),
        el("td", {}, race.track_condition || "—"),
        el("td", {}, race.weather || "—"));
      row.addEventListener("click", (event) => {
        if (event.target.closest("a")) return;
        window.location.assign(href);
      });
      return row;
    });
    this.racesBody.replaceChildren(...rows);
    this.racesPanel.hidden = false;
    this.tick(serverClock.now());
  }

  // Countdowns of races not yet started; called every second.
  tick(nowMs) {
    for (const cell of this.racesBody.querySelectorAll('[data-testid="race-countdown-cell"]')) {
      const start = toMs(cell.dataset.start);
      const status = cell.parentElement.querySelector(".pill")?.textContent;
      cell.textContent = start !== null && start > nowMs && (status === "open" || status === "unknown")
        ? countdown(start - nowMs) : "";
    }
  }
}
