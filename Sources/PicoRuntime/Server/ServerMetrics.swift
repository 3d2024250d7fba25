import Glibc
import PicoModel

/// The node's Prometheus metrics, with Piko's names under `pico_`. Loop-confined; label sets are
/// kept sorted so the exposition is stable.
final class ServerMetrics {
    static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    static let sizeBuckets: [Double] = [0, 256, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304]

    struct Histogram {
        var buckets: [UInt64]
        var sum: Double = 0
        var count: UInt64 = 0
        init(bounds: Int) { self.buckets = Array(repeating: 0, count: bounds) }
        mutating func observe(_ value: Double, bounds: [Double]) {
            for (index, bound) in bounds.enumerated() where value <= bound { self.buckets[index] += 1 }
            self.sum += value
            self.count += 1
        }
    }

    /// Requests by (method, status).
    var requests: [String: [Int: UInt64]] = [:]
    var latency = Histogram(bounds: ServerMetrics.latencyBuckets.count)
    var requestSizes = Histogram(bounds: ServerMetrics.sizeBuckets.count)
    var responseSizes = Histogram(bounds: ServerMetrics.sizeBuckets.count)
    var inFlight = 0
    var upstreamsConnected = 0
    var upstreamRequests: UInt64 = 0

    /// Records one finished proxied request.
    func recordRequest(method: String, status: Int, seconds: Double, requestBytes: Int, responseBytes: Int) {
        self.requests[method, default: [:]][status, default: 0] += 1
        self.latency.observe(seconds, bounds: Self.latencyBuckets)
        self.requestSizes.observe(Double(requestBytes), bounds: Self.sizeBuckets)
        self.responseSizes.observe(Double(responseBytes), bounds: Self.sizeBuckets)
    }

    /// The text exposition format (version 0.0.4).
    func exposition(registeredEndpoints: Int, openDescriptors: Int) -> String {
        var text = ""
        func header(_ name: String, _ type: String, _ help: String) { text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        header("pico_proxy_requests_total", "counter", "Proxied requests by method and status.")
        for method in self.requests.keys.sorted() {
            for (status, count) in self.requests[method]!.sorted(by: { $0.key < $1.key }) {
                text += "pico_proxy_requests_total{method=\"\(method.prometheusEscaped)\",status=\"\(status)\"} \(count)\n"
            }
        }
        func histogram(_ name: String, _ help: String, _ value: Histogram, _ bounds: [Double]) {
            header(name, "histogram", help)
            for (index, bound) in bounds.enumerated() { text += "\(name)_bucket{le=\"\(Self.format(bound))\"} \(value.buckets[index])\n" }
            text += "\(name)_bucket{le=\"+Inf\"} \(value.count)\n\(name)_sum \(Self.format(value.sum))\n\(name)_count \(value.count)\n"
        }
        histogram("pico_proxy_request_latency_seconds", "Time from request head to response end.", self.latency, Self.latencyBuckets)
        histogram("pico_proxy_request_size_bytes", "Request body sizes.", self.requestSizes, Self.sizeBuckets)
        histogram("pico_proxy_response_size_bytes", "Response body sizes.", self.responseSizes, Self.sizeBuckets)
        header("pico_proxy_requests_in_flight", "gauge", "Requests being proxied.")
        text += "pico_proxy_requests_in_flight \(self.inFlight)\n"
        header("pico_upstreams_connected_upstreams", "gauge", "Tunnels connected to this node.")
        text += "pico_upstreams_connected_upstreams \(self.upstreamsConnected)\n"
        header("pico_upstreams_registered_endpoints", "gauge", "Endpoints with at least one tunnel on this node.")
        text += "pico_upstreams_registered_endpoints \(registeredEndpoints)\n"
        header("pico_upstreams_upstream_requests_total", "counter", "Requests sent to a local tunnel.")
        text += "pico_upstreams_upstream_requests_total \(self.upstreamRequests)\n"
        let process = ProcessFigures.read()
        header("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        text += "process_resident_memory_bytes \(process.residentBytes)\n"
        header("process_open_fds", "gauge", "Number of open file descriptors.")
        text += "process_open_fds \(openDescriptors)\n"
        header("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
        text += "process_cpu_seconds_total \(Self.format(process.cpuSeconds))\n"
        return text
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

extension String {
    var prometheusEscaped: String {
        self.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"").replacingAll("\n", with: "\\n")
    }

    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
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
