/**
 * An OpenTelemetry SDK set-up for the example: a tracer provider and a meter provider, exporting
 * to the console (`exporters: "console"`, for a look by eye) or to memory (`"memory"`, for the
 * test). A real service would export over OTLP instead; the instrumentation does not change.
 */
import {
  AggregationTemporality,
  ConsoleMetricExporter,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  ConsoleSpanExporter,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { instrumentLocking } from "./instrumentation";

export interface Telemetry {
  tracerProvider: BasicTracerProvider;
  meterProvider: MeterProvider;
  /** The in-memory exporters (`exporters: "memory"` only). */
  spans?: InMemorySpanExporter;
  metrics?: InMemoryMetricExporter;
  /** Exports what is pending now (metrics are otherwise exported every `exportIntervalMillis`). */
  flush(): Promise<void>;
  /** Unsubscribes from the channels and shuts the providers down. */
  shutdown(): Promise<void>;
}

export function startTelemetry(options: { exporters: "console" | "memory" }): Telemetry {
  const memory = options.exporters === "memory";
  const spans = memory ? new InMemorySpanExporter() : undefined;
  const metrics = memory ? new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE) : undefined;
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(spans ?? new ConsoleSpanExporter())],
  });
  const reader = new PeriodicExportingMetricReader({
    exporter: metrics ?? new ConsoleMetricExporter(),
    exportIntervalMillis: 60_000,
  });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const uninstrument = instrumentLocking(
    tracerProvider.getTracer("typeorm-locking"),
    meterProvider.getMeter("typeorm-locking"),
  );
  return {
    tracerProvider,
    meterProvider,
    spans,
    metrics,
    flush: async () => {
      await tracerProvider.forceFlush();
      await reader.forceFlush();
    },
    shutdown: async () => {
      uninstrument();
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
    },
  };
}
