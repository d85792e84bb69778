// A table over a server-paged list of any length: only the rows on screen exist in the
// page, and the pages under them are fetched (offset/limit) as the person scrolls.
import { h, replace } from "../dom.js";

const OVERSCAN = 8;

export class VirtualTable {
  /**
   * columns: [{id, label, width, cell(item) -> Node|string, sort: bool, filter: bool,
   *            className, title}]
   * fetchPage(offset, limit, signal) -> {items, total}
   */
  constructor({
    columns,
    fetchPage,
    signal,
    pageSize = 200,
    rowHeight = 34,
    sort = null,
    filters = {},
    onSort,
    onFilter,
    onLoaded,
    onError,
    rowClass,
  }) {
    Object.assign(this, {
      columns,
      fetchPage,
      signal,
      pageSize,
      rowHeight,
      sort,
      filters,
      onSort,
      onFilter,
      onLoaded,
      onError,
      rowClass,
    });
    this.pages = new Map();
    this.total = null;
    this.generation = 0;
    this.window = [-1, -1];
    this.tbody = h("tbody");
    this.thead = h("thead");
    this.colgroup = h("colgroup");
    this.el = h(
      "div",
      { class: "vtable", tabindex: "0", role: "region", "aria-label": "Runs" },
      h("table", {}, this.colgroup, this.thead, this.tbody),
    );
    let frame = 0;
    this.el.addEventListener(
      "scroll",
      () => {
        if (!frame)
          frame = requestAnimationFrame(() => {
            frame = 0;
            this.render();
          });
      },
      { passive: true },
    );
    this.resize = new ResizeObserver(() => this.render(true));
    this.resize.observe(this.el);
    signal.addEventListener("abort", () => this.resize.disconnect());
    this.renderHead();
  }

  setColumns(columns) {
    this.columns = columns;
    this.renderHead();
    this.render(true);
  }

  renderHead() {
    replace(
      this.colgroup,
      this.columns.map((c) => h("col", { style: { width: `${c.width || 140}px` } })),
    );
    const sortState = (c) => (this.sort && this.sort.key === c.id ? this.sort.dir : null);
    const head = h(
      "tr",
      {},
      this.columns.map((c) => {
        const dir = sortState(c);
        const aria = dir === "ASC" ? "ascending" : dir === "DESC" ? "descending" : null;
        const label = c.header ? c.header() : c.label;
        const content = c.sort
          ? h(
              "button",
              {
                type: "button",
                class: "sort",
                title: c.title || `Sort by ${c.id}`,
                onclick: () => this.onSort && this.onSort(c),
              },
              h("span", {}, label, c.kind ? h("span", { class: "kind" }, ` ${c.kind}`) : null),
              h("span", { "aria-hidden": "true" }, dir === "ASC" ? "▲" : dir === "DESC" ? "▼" : ""),
            )
          : label;
        return h(
          "th",
          { scope: "col", "aria-sort": aria, class: c.className || null, dataset: { col: c.id } },
          content,
        );
      }),
    );
    const filters = h(
      "tr",
      { class: "filters" },
      this.columns.map((c) =>
        h(
          "th",
          {},
          c.filter
            ? h("input", {
                type: "search",
                value: this.filters[c.id] || "",
                placeholder: c.placeholder || "filter",
                "aria-label": `Filter ${c.label}${c.kind ? " " + c.kind : ""}`,
                dataset: { col: c.id },
                onchange: (e) => this.onFilter && this.onFilter(c, e.target.value),
              })
            : null,
        ),
      ),
    );
    replace(this.thead, head, filters);
  }

  /** Forget every page (the query changed) and start from the top. */
  reset() {
    this.generation += 1;
    this.pages.clear();
    this.total = null;
    this.el.scrollTop = 0;
    this.render(true);
  }

  page(index) {
    if (this.pages.has(index)) return this.pages.get(index);
    const generation = this.generation;
    const pending = this.fetchPage(index * this.pageSize, this.pageSize, this.signal).then(
      (page) => {
        if (generation !== this.generation) return;
        this.pages.set(index, page.items);
        const first = this.total === null;
        this.total = page.total;
        if (this.onLoaded) this.onLoaded(page, first);
        this.render(true);
      },
      (err) => {
        if (generation !== this.generation || err.name === "AbortError") return;
        this.pages.delete(index);
        if (this.onError) this.onError(err);
      },
    );
    this.pages.set(index, pending);
    return pending;
  }

  item(i) {
    const items = this.pages.get(Math.floor(i / this.pageSize));
    return Array.isArray(items) ? items[i % this.pageSize] : undefined;
  }

  render(force = false) {
    const headH = this.thead.offsetHeight || 60;
    const top = Math.max(0, this.el.scrollTop - headH);
    const height = this.el.clientHeight || 600;
    const total = this.total === null ? this.pageSize : this.total;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - OVERSCAN);
    const last = Math.min(total, Math.ceil((top + height) / this.rowHeight) + OVERSCAN);
    if (this.total === null) this.page(0);
    for (
      let p = Math.floor(first / this.pageSize);
      p <= Math.floor(Math.max(first, last - 1) / this.pageSize);
      p++
    ) {
      if (this.total === null && p > 0) break;
      this.page(p);
    }
    if (!force && first === this.window[0] && last === this.window[1]) return;
    this.window = [first, last];
    const span = this.columns.length;
    const rows = [
      h(
        "tr",
        { class: "spacer", "aria-hidden": "true" },
        h("td", { colspan: span, style: { height: `${first * this.rowHeight}px` } }),
      ),
    ];
    if (this.total === 0) {
      rows.push(h("tr", {}, h("td", { colspan: span, class: "loading" }, "No runs match.")));
    }
    for (let i = first; i < last && this.total !== 0; i++) {
      const item = this.item(i);
      if (!item) {
        if (this.total === null && i > 0) break;
        rows.push(h("tr", { dataset: { index: i } }, h("td", { colspan: span, class: "loading" }, "…")));
        continue;
      }
      rows.push(
        h(
          "tr",
          { dataset: { index: i, id: item.id }, class: this.rowClass ? this.rowClass(item) : null },
          this.columns.map((c) => {
            const value = c.cell(item);
            return h(
              "td",
              { class: c.className || null, title: typeof value === "string" ? value : null },
              value,
            );
          }),
        ),
      );
    }
    const after = Math.max(0, (this.total || 0) - last);
    rows.push(
      h(
        "tr",
        { class: "spacer", "aria-hidden": "true" },
        h("td", { colspan: span, style: { height: `${after * this.rowHeight}px` } }),
      ),
    );
    replace(this.tbody, rows);
    const sample = this.tbody.querySelector("tr[data-id]");
    if (sample && !this.measured) {
      this.measured = true; // rows are as tall as the stylesheet makes them, not a guess
      const real = sample.getBoundingClientRect().height;
      if (real && Math.abs(real - this.rowHeight) > 0.5) {
        this.rowHeight = real;
        this.render(true);
      }
    }
  }
}
