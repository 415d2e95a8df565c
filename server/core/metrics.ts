import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one app instance (its own registry: tests run several apps in one process). */
export class Metrics {
  readonly registry = new Registry();
  readonly messagesSent = new Counter({ name: 'parley_messages_sent_total', help: 'Messages committed', registers: [this.registry] });
  readonly wakeLatency = new Histogram({
    name: 'parley_wakeup_latency_seconds',
    help: 'From publishing a wake-up to a node receiving it',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: 'parley_http_requests_total',
    help: 'HTTP requests by route and status class',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });

  readonly streamReads = new Counter({
    name: 'parley_stream_reads_total',
    help: 'Poll and BOSH answers by where their events came from: carried by wake-ups, or read from the database',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  constructor(parked: () => number, defaults = true, deadlocks: () => number = () => 0) {
    new Counter({
      name: 'parley_db_deadlocks_total',
      help: 'Deadlocks PostgreSQL reported to this node (none is expected: every write locks rows in one order)',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(deadlocks());
      },
    });
    new Gauge({
      name: 'parley_parked_requests',
      help: 'Requests parked on this node',
      registers: [this.registry],
      collect() {
        this.set(parked());
      },
    });
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }
}
