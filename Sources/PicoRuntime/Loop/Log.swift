import Glibc
import PicoModel
import Synchronization

/// Log severities, in increasing order.
public enum LogLevel: String, Hashable, Sendable, CaseIterable, Comparable {
    case debug
    case info
    case warn
    case error

    private var rank: Int {
        switch self {
        case .debug: 0
        case .info: 1
        case .warn: 2
        case .error: 3
        }
    }

    public static func < (left: LogLevel, right: LogLevel) -> Bool { left.rank < right.rank }
}

/// JSON log lines on stderr: `{"level", "ts", "subsystem", "msg", …fields}`, one per line.
public struct Logger: Sendable {
    /// Lines below this level are dropped.
    public var level: LogLevel
    /// The `subsystem` field.
    public var subsystem: String
    /// The configured level, before `verboseSubsystems` lowered it.
    public let baseLevel: LogLevel
    /// Subsystems (and their dotted children: `proxy` covers `proxy.access`) logged at every level.
    public let verboseSubsystems: [String]

    /// Creates a logger; `subsystem` and its children log at `debug` when `verboseSubsystems`
    /// names them.
    public init(level: LogLevel, subsystem: String, verboseSubsystems: [String] = []) {
        self.baseLevel = level
        self.verboseSubsystems = verboseSubsystems
        self.subsystem = subsystem
        let verbose = verboseSubsystems.contains { subsystem == $0 || subsystem.hasPrefix($0 + ".") }
        self.level = verbose ? .debug : level
    }

    /// The same logger for another subsystem.
    public func child(_ subsystem: String) -> Logger {
        Logger(level: self.baseLevel, subsystem: subsystem, verboseSubsystems: self.verboseSubsystems)
    }

    /// True when a line at `level` would be written (check before building costly fields).
    public func enabled(_ level: LogLevel) -> Bool { level >= self.level }

    /// Writes one line when `level` is enabled. Field values are strings, numbers or booleans.
    public func log(_ level: LogLevel, _ message: String, _ fields: [(String, LogValue)] = []) {
        guard level >= self.level else { return }
        var line = "{\"level\":\"\(level.rawValue)\",\"ts\":\"\(Self.timestamp())\",\"subsystem\":\(JSONText.quote(self.subsystem)),\"msg\":\(JSONText.quote(message))"
        for (key, value) in fields { line += ",\(JSONText.quote(key)):\(value.json)" }
        line += "}\n"
        Self.stderrLock.withLock { _ in
            _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        }
    }

    public func debug(_ message: String, _ fields: [(String, LogValue)] = []) { self.log(.debug, message, fields) }
    public func info(_ message: String, _ fields: [(String, LogValue)] = []) { self.log(.info, message, fields) }
    public func warn(_ message: String, _ fields: [(String, LogValue)] = []) { self.log(.warn, message, fields) }
    public func error(_ message: String, _ fields: [(String, LogValue)] = []) { self.log(.error, message, fields) }

    private static let stderrLock = Mutex<Void>(())

    /// UTC time as `2006-01-02T15:04:05.999Z` (now, or the given wall-clock milliseconds).
    static func timestamp(milliseconds: Int64 = MonotonicClock.wallMilliseconds()) -> String {
        var seconds = time_t(milliseconds / 1_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(milliseconds % 1_000)
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(parts.tm_year + 1_900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }
}

/// A log field value.
public enum LogValue: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case object([(String, LogValue)])

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }

    var json: String {
        switch self {
        case .string(let text): return JSONText.quote(text)
        case .int(let value): return String(value)
        case .double(let value): return value.isFinite ? String(value) : "null"
        case .bool(let value): return value ? "true" : "false"
        case .object(let fields): return "{" + fields.map { "\(JSONText.quote($0.0)):\($0.1.json)" }.joined(separator: ",") + "}"
        }
    }
}
