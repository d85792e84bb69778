// Repeat a refresh until the view goes away (or the callback says stop), one at a time:
// the next call is scheduled when the previous one has finished, never stacked.

export function every(ms, fn, signal) {
  let timer = null;
  const tick = async () => {
    if (signal.aborted) return;
    let again = true;
    try {
      again = (await fn()) !== false;
    } catch (err) {
      if (err.name === "AbortError") return;
      console.warn("refresh failed", err);
    }
    if (again && !signal.aborted) timer = setTimeout(tick, document.hidden ? ms * 4 : ms);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  timer = setTimeout(tick, ms);
}

/** Run async tasks with at most `limit` in flight. */
export async function pool(items, limit, task) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
