// tidings admin UI: small progressive enhancements. Every page works without this file.
"use strict";
document.documentElement.classList.replace("no-js", "js");

// Times are rendered in UTC (<time datetime="…Z" title="… UTC">); show them in the viewer's
// zone, named, keeping UTC in the title for hover. Without this script they stay UTC.
const pad = (n) => String(n).padStart(2, "0");
const zoneName = (d) => {
  const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
    .formatToParts(d).find((p) => p.type === "timeZoneName");
  return part ? part.value : "";
};
const localTimes = (root) => {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (Number.isNaN(d.getTime())) continue;
    t.textContent = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
      + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zoneName(d)}`;
    t.dataset.local = "yes";
  }
};

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  // Forms that change something important ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }

  // Copy buttons (hidden without JavaScript, where the text can be selected by hand): copy the
  // text of the element named in data-copy, and say so on the button and to screen readers.
  const said = document.createElement("p");
  said.className = "sr";
  said.setAttribute("role", "status");
  document.body.append(said);
  const copyByHand = (el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    return document.execCommand("copy");
  };
  // Print buttons (the subjects page's accounting of disclosures): the print stylesheet
  // leaves out navigation and forms.
  for (const button of document.querySelectorAll("button[data-print]")) {
    button.addEventListener("click", () => window.print());
  }

  for (const button of document.querySelectorAll("button[data-copy]")) {
    const label = button.textContent;
    button.addEventListener("click", async () => {
      const el = document.querySelector(button.dataset.copy);
      if (!el) return;
      let copied;
      try {
        await navigator.clipboard.writeText(el.textContent);
        copied = true;
      } catch {
        copied = copyByHand(el);
      }
      const text = copied ? "Copied" : "Selected: press Ctrl+C to copy";
      button.textContent = text;
      button.dataset.copied = copied ? "yes" : "no";
      said.textContent = text;
      window.setTimeout(() => { button.textContent = label; }, 2500);
    });
  }

  // Header rows: add a copy of the last row, or remove one, keeping labels unique.
  let counter = 1000;
  const renumber = (row) => {
    counter += 1;
    for (const input of row.querySelectorAll("input")) {
      const label = row.querySelector(`label[for="${input.id}"]`);
      const id = input.id.replace(/_\d+$/, `_${counter}`);
      if (label) label.htmlFor = id;
      input.id = id;
      input.value = "";
      input.placeholder = input.type === "password" ? "value" : input.placeholder;
    }
  };
  for (const box of document.querySelectorAll("[data-rows]")) {
    box.addEventListener("click", (e) => {
      const target = e.target;
      if (!(target instanceof HTMLElement)) return;
      if (target.hasAttribute("data-add-row")) {
        const rows = box.querySelectorAll(".row");
        const last = rows[rows.length - 1];
        if (!last) return;
        const copy = last.cloneNode(true);
        renumber(copy);
        last.after(copy);
        copy.querySelector("input")?.focus();
      } else if (target.hasAttribute("data-remove-row")) {
        const row = target.closest(".row");
        if (!row) return;
        if (box.querySelectorAll(".row").length > 1) {
          row.remove();
        } else {
          for (const input of row.querySelectorAll("input")) input.value = "";
        }
      }
    });
  }

  // The delivery log refreshes itself while a delivery on it is waiting (data-refresh, in
  // seconds): it fetches the same page and swaps in the new list, so the filters being typed
  // and the scroll position stay. It stops once nothing is waiting, and pauses while the tab
  // is hidden. Without this script the page says to reload.
  const list = document.getElementById("delivery-list");
  const refresh = async () => {
    const current = document.getElementById("delivery-list");
    const seconds = Number(current?.dataset.refresh);
    if (!current || !seconds) return;
    window.setTimeout(async () => {
      if (document.hidden) { refresh(); return; }
      try {
        const res = await fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (!res.ok || res.redirected) return;
        const page = new DOMParser().parseFromString(await res.text(), "text/html");
        const fresh = page.getElementById("delivery-list");
        if (!fresh) return;
        const swapped = document.importNode(fresh, true);
        localTimes(swapped);
        current.replaceWith(swapped);
      } catch {
        // Offline for a moment: try again on the next tick.
      }
      refresh();
    }, seconds * 1000);
  };
  if (list) refresh();

  // Show only the fields that apply (event patterns or cron; the body template).
  const toggles = document.querySelectorAll("[data-show-when]");
  const update = () => {
    for (const el of toggles) {
      const [name, value] = el.dataset.showWhen.split("=");
      const field = document.querySelector(`[name="${name}"]:checked`) || document.querySelector(`select[name="${name}"]`);
      // `name=a|b` shows the element for either value.
      if (field) el.hidden = !value.split("|").includes(field.value);
    }
  };
  document.addEventListener("change", update);
  update();
});
