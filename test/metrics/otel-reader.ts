/** A real OpenTelemetry SDK reader for the exporter tests. */
import assert from 'node:assert/strict';
import { AggregationTemporality, InMemoryMetricExporter, MetricReader, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';

/** Collects on demand (no export interval, so no timer) and hands each collection to a real in-memory exporter. */
export class OnDemandReader extends MetricReader {
  readonly exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);

  async exportNow(): Promise<MetricData[]> {
    const { resourceMetrics, errors } = await this.collect();
    assert.deepEqual(errors, []);
    this.exporter.reset();
    await new Promise<void>((resolve) => {
      this.exporter.export(resourceMetrics, () => { resolve(); });
    });
    const exported: ResourceMetrics[] = this.exporter.getMetrics();
    return exported.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
  }

  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }

  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}
