// The user's alert configuration: loaded on start and after saving; edited in the settings dialog.
// Everything that shows it listens to its "change" event, which fires when it starts loading,
// when it arrives and when loading fails (`status`: "loading", "loaded" or "error").

import { getJSON, postJSON } from "./api.js";
import { el } from "./format.js";
import { rangeLabel } from "./indicators.js";

export const USER_ID = "Default User";

class AlertConfig extends EventTarget {
  constructor() {
    super();
    this.indicators = [];
    this.audible = false;
    this.status = "loading";
    this.error = "";
  }

  get loaded() {
    return this.status === "loaded";
  }

  setStatus(status, error = "") {
    this.status = status;
    this.error = error;
    this.dispatchEvent(new CustomEvent("change"));
  }

  apply(body) {
    this.indicators = (body.indicators || []).slice().sort((a, b) => a.display_order - b.display_order);
    this.audible = Boolean(body.audible_alerts_enabled);
    this.setStatus("loaded");
  }

  // Rejects when loading fails (after setting the error status), so a Poller can back off.
  async load() {
    if (!this.loaded) this.setStatus("loading");
    let body;
    try {
      body = await getJSON("/api/user-alert-configs", { user_id: USER_ID });
    } catch (error) {
      // A configuration already on screen stays usable; only a first load fails visibly.
      if (!this.loaded) this.setStatus("error", error.message);
      throw error;
    }
    this.apply(body);
  }

  async save(indicators, audible) {
    const body = await postJSON("/api/user-alert-configs", {
      user_id: USER_ID,
      audible_alerts_enabled: audible,
      indicators: indicators.map((item) => ({
        indicator_id: item.indicator_id,
        indicator_type: "percentage_range",
        percentage_range_min: item.percentage_range_min,
        percentage_range_max: item.percentage_range_max,
        color: item.color,
        is_default: item.is_default,
        enabled: item.enabled,
        display_order: item.display_order,
      })),
    });
    this.apply(body);
  }

  async reset() {
    this.apply(await postJSON("/api/user-alert-configs/reset", { user_id: USER_ID }));
  }
}

export const alertConfig = new AlertConfig();

export function renderLegend(container) {
  container.dataset.state = alertConfig.status;
  if (alertConfig.status === "loading") {
    container.replaceChildren("Alerts: loading…");
    return;
  }
  if (alertConfig.status === "error") {
    container.replaceChildren("Alerts unavailable");
    return;
  }
  const enabled = alertConfig.indicators.filter((item) => item.enabled);
  const swatches = enabled.map((item) => {
    const swatch = el("span", { class: "swatch", title: `Indicator ${item.display_order}` }, rangeLabel(item));
    swatch.style.backgroundColor = item.color;
    return swatch;
  });
  container.replaceChildren(enabled.length ? "Alerts:" : "Alerts off", ...swatches);
}

export class SettingsDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.rows = dialog.querySelector('[data-testid="indicator-rows"]');
    this.toggleAll = dialog.querySelector('[data-testid="toggle-all"]');
    this.audible = dialog.querySelector('[data-testid="audible-toggle"]');
    this.message = dialog.querySelector('[data-testid="settings-message"]');
    this.loading = dialog.querySelector('[data-testid="settings-loading"]');
    this.loadError = dialog.querySelector('[data-testid="settings-load-error"]');
    this.saveButton = dialog.querySelector('[data-testid="settings-save"]');
    this.draft = [];
    // Whether the draft holds the loaded configuration (only then can it be saved).
    this.hasDraft = false;
    this.saveButton.addEventListener("click", () => this.save());
    dialog.querySelector('[data-testid="settings-retry"]').addEventListener("click", () => {
      alertConfig.load().catch(() => {}); // the error is shown through the change event
    });
    // Opened before the configuration arrived: fill in when it does. A draft already taken holds
    // the user's edits and is kept.
    alertConfig.addEventListener("change", () => {
      if (!this.dialog.open) return;
      if (!this.hasDraft && alertConfig.loaded) this.takeDraft();
      this.renderState();
      this.renderRows();
    });
    dialog.querySelector('[data-testid="settings-reset"]').addEventListener("click", () => this.reset());
    dialog.querySelector('[data-testid="settings-cancel"]').addEventListener("click", () => dialog.close());
    this.toggleAll.addEventListener("change", () => {
      for (const item of this.draft) item.enabled = this.toggleAll.checked;
      this.renderRows();
    });
  }

  // The dialog edits copies, so Cancel leaves the loaded configuration as it was.
  takeDraft() {
    this.draft = alertConfig.indicators.map((item) => ({ ...item }));
    this.audible.checked = alertConfig.audible;
    this.hasDraft = alertConfig.loaded;
  }

  open() {
    this.hasDraft = false;
    if (alertConfig.loaded) this.takeDraft();
    else this.draft = [];
    this.say("");
    this.renderState();
    this.renderRows();
    this.dialog.showModal();
  }

  // Loading and load-error states; nothing can be saved until the configuration is loaded.
  renderState() {
    this.loading.hidden = !(alertConfig.status === "loading" && !this.hasDraft);
    this.loadError.hidden = !(alertConfig.status === "error" && !this.hasDraft);
    this.loadError.querySelector('[data-testid="settings-load-error-text"]').textContent =
      `Could not load your alert settings: ${alertConfig.error}`;
    this.saveButton.disabled = !this.hasDraft;
    this.toggleAll.disabled = !this.hasDraft;
    this.audible.disabled = !this.hasDraft;
  }

  say(text, isError = false) {
    this.message.textContent = text;
    this.message.classList.toggle("error", isError);
  }

  renderRows() {
    this.toggleAll.checked = this.draft.length > 0 && this.draft.every((item) => item.enabled);
    const rows = this.draft.map((item) => {
      const enabled = el("input", { type: "checkbox", "data-testid": "indicator-enabled", "aria-label": `Enable ${rangeLabel(item)}` });
      enabled.checked = item.enabled;
      enabled.addEventListener("change", () => {
        item.enabled = enabled.checked;
        this.toggleAll.checked = this.draft.every((entry) => entry.enabled);
      });
      const color = el("input", { type: "color", value: item.color.toLowerCase(), "data-testid": "indicator-color", "aria-label": `Colour for ${rangeLabel(item)}` });
      const preview = el("span", { class: "preview" }, "+$1,234");
      preview.style.backgroundColor = item.color;
      color.addEventListener("input", () => {
        item.color = color.value.toUpperCase();
        preview.style.backgroundColor = item.color;
      });
      return el("tr", { "data-testid": "indicator-row", "data-display-order": item.display_order },
        el("td", {}, enabled),
        el("td", {}, rangeLabel(item)),
        el("td", {}, color),
        el("td", {}, preview));
    });
    this.rows.replaceChildren(...rows);
  }

  async save() {
    if (!this.hasDraft) return; // never save an empty configuration that was never loaded
    try {
      await alertConfig.save(this.draft, this.audible.checked);
      this.takeDraft();
      this.renderState();
      this.renderRows();
      this.say("Saved.");
    } catch (error) {
      this.say(`Could not save: ${error.message}`, true);
    }
  }

  async reset() {
    try {
      await alertConfig.reset();
      this.takeDraft();
      this.renderState();
      this.renderRows();
      this.say("Defaults restored.");
    } catch (error) {
      this.say(`Could not reset: ${error.message}`, true);
    }
  }
}
