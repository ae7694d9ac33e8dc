import type { Registry } from 'prom-client';

/**
 * The value of one series of a metric in `registry`: `series` is the metric's name for a counter,
 * or `<name>_sum` / `<name>_count` for a histogram; `labels` must match exactly. 0 when the
 * series has no value yet.
 */
export async function metricValue(registry: Registry, metric: string, series = metric, labels: Record<string, string> = {}): Promise<number> {
  const found = registry.getSingleMetric(metric);
  if (!found) throw new Error(`no metric ${metric} in the registry`);
  const { values } = await found.get();
  const wanted = JSON.stringify(Object.entries(labels).sort());
  // Histogram values carry the series name (`_sum`, `_count`, `_bucket`); a counter's do not.
  const seriesOf = (v: (typeof values)[number]) => (v as { metricName?: string }).metricName ?? metric;
  const hit = values.find((v) => seriesOf(v) === series && JSON.stringify(Object.entries(v.labels).sort()) === wanted);
  return hit?.value ?? 0;
}
