import Glibc
import PicoModel
import Synchronization

/// One loop's share of the node's metrics: updated by its own loop, read by the admin route on
/// the control loop (the lock is uncontended except while a scrape copies it).
final class ServerMetrics: Sendable {
    private let values = Mutex(MetricValues())

    /// Applies `change` to this loop's figures.
    func update(_ change: (inout MetricValues) -> Void) {
        self.values.withLock { change(&$0) }
    }

    /// A copy of this loop's figures.
    var snapshot: MetricValues { self.values.withLock { $0 } }
}

/// The node's Prometheus metrics, with Piko's names under `pico_`; label sets are kept sorted so
/// the exposition is stable.
struct MetricValues: Sendable {
    static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    static let sizeBuckets: [Double] = [0, 256, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304]

    struct Histogram: Sendable {
        var buckets: [UInt64]
        var sum: Double = 0
        var count: UInt64 = 0
        init(bounds: Int) { self.buckets = Array(repeating: 0, count: bounds) }
        mutating func add(_ other: Histogram) {
            for index in self.buckets.indices { self.buckets[index] += other.buckets[index] }
            self.sum += other.sum
            self.count += other.count
        }
        mutating func observe(_ value: Double, bounds: [Double]) {
            for (index, bound) in bounds.enumerated() where value <= bound { self.buckets[index] += 1 }
            self.sum += value
            self.count += 1
        }
    }

    /// Requests by (method, status), in a fixed table.
    var requests = RequestCounts()
    var latency = Histogram(bounds: MetricValues.latencyBuckets.count)
    var requestSizes = Histogram(bounds: MetricValues.sizeBuckets.count)
    var responseSizes = Histogram(bounds: MetricValues.sizeBuckets.count)
    var inFlight = 0
    var upstreamsConnected = 0
    var upstreamRequests: UInt64 = 0
    /// TCP route connections opened on a local tunnel (each also counts as an upstream request).
    var tcpRouteStreams: UInt64 = 0
    /// Requests forwarded to another node, by its node ID (at most `BoundedCounts.limit` IDs).
    var remoteRequests = BoundedCounts()
    /// Forwarded requests sent to another holder after the first one failed before answering.
    var forwardRetries: UInt64 = 0
    /// Client connections handed to another loop (to the loop of the tunnel their request uses).
    var connectionMoves: UInt64 = 0
    /// Requests that waited for routing to learn a holder of their endpoint.
    var requestsWaited: UInt64 = 0
    /// Refused tokens, by port and reason.
    var authFailures = AuthFailureCounts()

    /// Adds another loop's figures.
    mutating func add(_ other: MetricValues) {
        self.requests.add(other.requests)
        self.latency.add(other.latency)
        self.requestSizes.add(other.requestSizes)
        self.responseSizes.add(other.responseSizes)
        self.inFlight += other.inFlight
        self.upstreamsConnected += other.upstreamsConnected
        self.upstreamRequests += other.upstreamRequests
        self.tcpRouteStreams += other.tcpRouteStreams
        self.connectionMoves += other.connectionMoves
        self.forwardRetries += other.forwardRetries
        self.requestsWaited += other.requestsWaited
        self.remoteRequests.add(other.remoteRequests)
        self.authFailures.add(other.authFailures)
    }

    /// Records one finished proxied request.
    mutating func recordRequest(method: String, status: Int, seconds: Double, requestBytes: Int, responseBytes: Int) {
        self.requests.record(method: method, status: status)
        self.latency.observe(seconds, bounds: Self.latencyBuckets)
        self.requestSizes.observe(Double(requestBytes), bounds: Self.sizeBuckets)
        self.responseSizes.observe(Double(responseBytes), bounds: Self.sizeBuckets)
    }

    /// The text exposition format (version 0.0.4).
    func exposition(registeredEndpoints: Int, openDescriptors: Int) -> String {
        var out = PrometheusText()
        out.family("pico_proxy_requests_total", "counter", "Proxied requests by method and status.")
        for row in self.requests.nonZero {
            out.sample("pico_proxy_requests_total", [("method", row.method), ("status", row.status)], row.count)
        }
        func histogram(_ name: String, _ help: String, _ value: Histogram, _ bounds: [Double]) {
            out.family(name, "histogram", help)
            for (index, bound) in bounds.enumerated() { out.sample("\(name)_bucket", [("le", Self.format(bound))], value.buckets[index]) }
            out.sample("\(name)_bucket", [("le", "+Inf")], value.count)
            out.sample("\(name)_sum", [], Self.format(value.sum))
            out.sample("\(name)_count", [], value.count)
        }
        histogram("pico_proxy_request_latency_seconds", "Time from request head to response end.", self.latency, Self.latencyBuckets)
        histogram("pico_proxy_request_size_bytes", "Request body sizes.", self.requestSizes, Self.sizeBuckets)
        histogram("pico_proxy_response_size_bytes", "Response body sizes.", self.responseSizes, Self.sizeBuckets)
        out.family("pico_proxy_requests_in_flight", "gauge", "Requests being proxied.")
        out.sample("pico_proxy_requests_in_flight", [], self.inFlight)
        out.family("pico_upstreams_connected_upstreams", "gauge", "Tunnels connected to this node.")
        out.sample("pico_upstreams_connected_upstreams", [], self.upstreamsConnected)
        out.family("pico_upstreams_registered_endpoints", "gauge", "Endpoints with at least one tunnel on this node.")
        out.sample("pico_upstreams_registered_endpoints", [], registeredEndpoints)
        out.family("pico_upstreams_upstream_requests_total", "counter", "Requests sent to a local tunnel.")
        out.sample("pico_upstreams_upstream_requests_total", [], self.upstreamRequests)
        out.family("pico_proxy_tcp_connections_total", "counter", "TCP route connections opened on a local tunnel (`/_pico/v1/tcp/<endpoint>`).")
        out.sample("pico_proxy_tcp_connections_total", [], self.tcpRouteStreams)
        out.family("pico_upstreams_remote_requests_total", "counter", "Requests forwarded to the node holding the endpoint, by node ID.")
        for (node, count) in self.remoteRequests.series {
            out.sample("pico_upstreams_remote_requests_total", [("node_id", node)], count)
        }
        out.family("pico_upstreams_forward_retries_total", "counter", "Forwards tried on another node after one failed before the node answered.")
        out.sample("pico_upstreams_forward_retries_total", [], self.forwardRetries)
        out.family("pico_proxy_requests_waited_total", "counter", "Requests that waited (up to proxy.upstream_wait) for the cluster to learn a holder of their endpoint.")
        out.sample("pico_proxy_requests_waited_total", [], self.requestsWaited)
        out.family("pico_proxy_connection_moves_total", "counter", "Client connections moved to the event loop of the tunnel their request uses.")
        out.sample("pico_proxy_connection_moves_total", [], self.connectionMoves)
        out.family("pico_auth_failures_total", "counter", "Requests and agents refused for their token (401), by port and reason.")
        for row in self.authFailures.nonZero {
            out.sample("pico_auth_failures_total", [("port", row.port), ("reason", row.reason)], row.count)
        }
        let process = ProcessFigures.read()
        out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        out.sample("process_resident_memory_bytes", [], process.residentBytes)
        out.family("process_open_fds", "gauge", "Number of open file descriptors.")
        out.sample("process_open_fds", [], openDescriptors)
        out.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
        out.sample("process_cpu_seconds_total", [], Self.format(process.cpuSeconds))
        return out.text
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

/// Resident memory, CPU time and open descriptors of this process, from `/proc` and `getrusage`.
public enum ProcessFigures {
    /// Resident bytes and CPU seconds.
    public static func read() -> (residentBytes: Int, cpuSeconds: Double) {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return (self.residentBytes(), cpu)
    }

    /// Current resident set size from `/proc/self/statm`.
    public static func residentBytes() -> Int {
        guard let text = self.readSmallFile("/proc/self/statm") else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Entries in `/proc/self/fd`.
    public static func openDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while readdir(directory) != nil { count += 1 }
        return max(0, count - 3)  // ".", ".." and the directory's own descriptor
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let count = Glibc.read(fd, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}
