import CoreMetrics
import NIOConcurrencyHelpers

/// The label set of one metric: typed values (sides, decisions, reasons as small enums), rendered to
/// strings only when a series is created. The type is the declaration of the label names, so the
/// catalog and the README list the labels the code actually emits.
protocol MetricLabels: Hashable, Sendable {
    /// The label names, in the order every series of the metric carries them.
    static var names: [String] { get }
    /// The label values, in the order of ``names``.
    var values: [String] { get }
}

extension MetricLabels {
    /// The swift-metrics dimensions of this label set.
    var dimensions: [(String, String)] { Array(zip(Self.names, self.values)) }
}

/// One declared metric, whatever its type: what the catalog (and so the README test) is built from.
protocol MetricFamily: Sendable {
    var descriptor: GatewayMetrics.Descriptor { get }
}

/// The swift-metrics objects of one metric, one per label set, each made the first time its label set
/// is recorded and kept for the gateway's lifetime (reloads share them): the factory's lookup and
/// registration runs once per series, never per event (STYLE P15, like Hummingbird's `MetricsCache`).
///
/// Made lazily rather than for every combination up front so that `/metrics` shows exactly the series
/// that were recorded (as before), and so that open label sets (close codes, upstream members, TLS
/// failure classes) need no enumeration. Every recorded event is a connection-level one (a handful per
/// connection, never per frame), so one short lock per event is the whole cost.
final class MetricSeries<Labels: MetricLabels, Handle: Sendable>: Sendable {
    let name: String
    private let make: @Sendable (String, [(String, String)]) -> Handle
    private let series = NIOLockedValueBox<[Labels: Handle]>([:])

    init(name: String, make: @escaping @Sendable (String, [(String, String)]) -> Handle) {
        self.name = name
        self.make = make
    }

    /// The object of the series `labels`, made on first use.
    func callAsFunction(_ labels: Labels) -> Handle {
        self.series.withLockedValue { series in
            if let handle = series[labels] { return handle }
            let handle = self.make(self.name, labels.dimensions)
            series[labels] = handle
            return handle
        }
    }
}

/// A counter declared once: name, help and typed labels.
struct CounterFamily<Labels: MetricLabels>: MetricFamily {
    let descriptor: GatewayMetrics.Descriptor
    private let series: MetricSeries<Labels, Counter>

    init(_ name: String, help: String, factory: any MetricsFactory) {
        self.descriptor = .init(name: name, kind: .counter, labels: Labels.names, help: help)
        self.series = MetricSeries(name: name) { Counter(label: $0, dimensions: $1, factory: factory) }
    }

    func increment(_ labels: Labels, by amount: Int64 = 1) {
        self.series(labels).increment(by: amount)
    }

    /// The series `labels` itself, for a caller that adds to it often (a relay's live counters, issue #14):
    /// it keeps the handle and never takes the family's lock again.
    func counter(_ labels: Labels) -> Counter {
        self.series(labels)
    }
}

/// A gauge declared once (a swift-metrics `Meter`, a Prometheus gauge).
struct GaugeFamily<Labels: MetricLabels>: MetricFamily {
    let descriptor: GatewayMetrics.Descriptor
    private let series: MetricSeries<Labels, Meter>

    init(_ name: String, help: String, factory: any MetricsFactory) {
        self.descriptor = .init(name: name, kind: .gauge, labels: Labels.names, help: help)
        self.series = MetricSeries(name: name) { Meter(label: $0, dimensions: $1, factory: factory) }
    }

    /// Moves the gauge by `delta`. A meter only moves by non-negative amounts (a negative increment
    /// would be dropped), so a negative `delta` is a decrement.
    func add(_ labels: Labels, _ delta: Double) {
        let meter = self.series(labels)
        if delta < 0 { meter.decrement(by: -delta) } else { meter.increment(by: delta) }
    }
}

/// A histogram declared once (an aggregating swift-metrics `Recorder`); its buckets are set on the
/// Prometheus factory by name (`GatewayService.metricsFactory`).
struct HistogramFamily<Labels: MetricLabels>: MetricFamily {
    let descriptor: GatewayMetrics.Descriptor
    private let series: MetricSeries<Labels, Recorder>

    init(_ name: String, help: String, factory: any MetricsFactory) {
        self.descriptor = .init(name: name, kind: .histogram, labels: Labels.names, help: help)
        self.series = MetricSeries(name: name) { Recorder(label: $0, dimensions: $1, aggregate: true, factory: factory) }
    }

    func record(_ labels: Labels, _ value: Double) {
        self.series(labels).record(value)
    }
}
