/// The Prometheus text exposition format (version 0.0.4), built one family and sample at a time;
/// label values are escaped.
struct PrometheusText {
    private(set) var text = ""

    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    mutating func family(_ name: String, _ type: String, _ help: String) {
        self.text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    /// One sample line.
    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: some CustomStringConvertible) {
        self.text += name
        if !labels.isEmpty {
            self.text += "{" + labels.map { "\($0.0)=\"\($0.1.prometheusEscaped)\"" }.joined(separator: ",") + "}"
        }
        self.text += " \(value)\n"
    }
}

extension String {
    /// A label value escaped for the exposition format: backslash, double quote and line feed.
    var prometheusEscaped: String {
        self.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"").replacingAll("\n", with: "\\n")
    }
}
