// The live tail of a job's log, all ranks or one (?rank=N), read from a byte offset on.
import { api, path } from "../api.js";
import { h, replace, errorBox } from "../dom.js";
import { every } from "../poll.js";

const KEEP = 2_000_000; // characters kept on screen; older text is dropped from the top

export function logTail(jobName, { signal, ranks = 0 }) {
  const pre = h("pre", { class: "logs", tabindex: "0", "aria-label": "Job log" });
  const state = h("span", { class: "muted small", "aria-live": "polite" });
  const problem = h("div");
  const choose = h("select", { name: "rank", "aria-label": "Rank" }, h("option", { value: "" }, "All ranks"));
  // One process writes plain lines; several write "[rankN] ..." lines, which ?rank=N keeps.
  const fillRanks = (n) => {
    choose.hidden = n < 2;
    for (let r = choose.options.length - 1; r < n; r++)
      choose.append(h("option", { value: String(r) }, `rank ${r}`));
  };
  fillRanks(ranks);
  if (!ranks) {
    api(path("jobs", jobName), { signal }).then(
      (job) => fillRanks(job.nodes * job.processes_per_node),
      () => {},
    );
  }

  let stream = null;
  const follow = () => {
    if (stream) stream.abort();
    stream = new AbortController();
    const mine = stream;
    signal.addEventListener("abort", () => mine.abort());
    const rank = choose.value;
    let offset = 0;
    pre.textContent = "";
    replace(problem);
    state.textContent = "following…";
    const read = async () => {
      const chunk = await api(path("jobs", jobName, "logs"), {
        query: { offset, rank },
        signal: mine.signal,
      });
      offset = chunk.offset;
      if (chunk.text) {
        const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
        let text = pre.textContent + chunk.text;
        if (text.length > KEEP) text = text.slice(text.length - KEEP);
        pre.textContent = text;
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      }
      if (chunk.complete) {
        state.textContent = pre.textContent
          ? "the job has ended; this is the whole log"
          : "the job has ended; its log is empty";
        return false;
      }
      return true;
    };
    read().then(
      (more) => {
        if (more) every(1000, read, mine.signal);
      },
      (err) => {
        if (err.name !== "AbortError") replace(problem, errorBox(err));
      },
    );
  };
  choose.addEventListener("change", follow);
  follow();
  return h("div", { class: "log-tail" }, h("div", { class: "toolbar" }, choose, state), problem, pre);
}
