// A confusion matrix as a table shaded by each cell's share of its row (the true class).
import { h } from "../dom.js";

export function confusionMatrix(matrix, classes) {
  const labels = classes && classes.length === matrix.length ? classes : matrix.map((_, i) => String(i));
  return h(
    "div",
    { class: "scroll-x" },
    h(
      "table",
      {
        class: "matrix",
        "aria-label": "Confusion matrix: rows are the true class, columns the predicted one",
      },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col", title: "true \\ predicted" }, "t\\p"),
          labels.map((l) => h("th", { scope: "col" }, l)),
        ),
      ),
      h(
        "tbody",
        {},
        matrix.map((row, i) => {
          const total = row.reduce((a, b) => a + b, 0) || 1;
          return h(
            "tr",
            {},
            h("th", { scope: "row" }, labels[i]),
            row.map((v, j) => {
              const share = v / total;
              const tint = i === j ? "var(--ok)" : "var(--bad)";
              return h(
                "td",
                {
                  title: `true ${labels[i]}, predicted ${labels[j]}: ${v}`,
                  style: {
                    background: v
                      ? `color-mix(in srgb, ${tint} ${Math.round(12 + share * 70)}%, transparent)`
                      : "",
                  },
                },
                String(v),
              );
            }),
          );
        }),
      ),
    ),
  );
}
