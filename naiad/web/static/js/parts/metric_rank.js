// Which metrics say how good a run is: validation accuracy before training loss, and
// counters (epoch, step) and system figures never, so tables and the compare page open
// on the figures a person looks for first.

const COUNTER =
  /^(epochs?|steps?|global_step|iters?|iterations?|batch(es)?|samples?|examples?|tokens?|lr|learning_rate|time|elapsed|duration)$/i;
const QUALITY = /(acc|accuracy|f1|auc|precision|recall|map|iou|bleu|rouge|score|r2)$/i;
const LOSS = /(loss|error|err|mse|mae|rmse|nll|perplexity|ppl)$/i;
const HELD_OUT = /^(val|valid|validation|eval|test|dev)([/_.\-]|$)/i;
const TRAINING = /^(train|training)([/_.\-]|$)/i;

/** The last part of a key (`val/accuracy` -> `accuracy`). */
function leaf(key) {
  return key.split(/[/.:]/).pop();
}

/** Whether a metric only counts progress (epoch, step, lr): never an objective. */
export function isCounter(key) {
  return COUNTER.test(leaf(key)) || key.startsWith("system/");
}

function rank(key) {
  const name = leaf(key);
  const kind = QUALITY.test(name) ? 0 : LOSS.test(name) ? 1 : 2;
  const split = HELD_OUT.test(key) ? 0 : TRAINING.test(key) ? 2 : 1;
  return kind === 2 ? 10 + split : split * 2 + kind;
}

/** The keys that are not counters, best objective first (then alphabetical). */
export function rankMetrics(keys) {
  return [...keys]
    .filter((k) => !isCounter(k))
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** The metric to optimise by default: held-out accuracy-like, then loss-like; else the
 * first key that is not a counter; null when every key is one. */
export function defaultObjective(keys) {
  return rankMetrics(keys)[0] ?? null;
}
