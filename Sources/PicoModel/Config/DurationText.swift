/// Go-style duration strings, as Piko's configuration and our scenario files write them:
/// a sequence of decimal numbers with units `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, e.g. `300ms`,
/// `1m30s`, `1.5s`, `-2s`. `0` alone is zero. Pure and exact to the nanosecond.
public enum DurationText {
    /// Parses `text`; nil when it is not a valid duration or does not fit in `Int64` nanoseconds.
    public static func parse(_ text: String) -> Duration? {
        var characters = Substring(text)
        guard !characters.isEmpty else { return nil }
        var negative = false
        if characters.first == "-" || characters.first == "+" {
            negative = characters.first == "-"
            characters = characters.dropFirst()
        }
        if characters == "0" { return .zero }
        guard !characters.isEmpty else { return nil }
        var total: Int64 = 0
        while !characters.isEmpty {
            let whole = characters.prefix { $0.isASCII && $0.isNumber }
            characters = characters.dropFirst(whole.count)
            var fraction: Substring = ""
            if characters.first == "." {
                characters = characters.dropFirst()
                fraction = characters.prefix { $0.isASCII && $0.isNumber }
                characters = characters.dropFirst(fraction.count)
            }
            guard !whole.isEmpty || !fraction.isEmpty else { return nil }
            let unitText = characters.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            characters = characters.dropFirst(unitText.count)
            guard let unit = self.nanosecondsPerUnit[String(unitText)] else { return nil }
            guard let value = self.scale(whole: whole, fraction: fraction, unit: unit) else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(value)
            guard !overflow else { return nil }
            total = sum
        }
        return .nanoseconds(negative ? -total : total)
    }

    /// Formats a duration the way Go prints it (`1m30s`, `1.5s`, `300ms`, `0s`).
    public static func format(_ duration: Duration) -> String {
        var nanoseconds = duration.nanosecondsClamped
        if nanoseconds == 0 { return "0s" }
        let sign = nanoseconds < 0 ? "-" : ""
        nanoseconds = nanoseconds.magnitude > UInt64(Int64.max) ? Int64.max : abs(nanoseconds)
        if nanoseconds < 1_000 { return "\(sign)\(nanoseconds)ns" }
        if nanoseconds < 1_000_000 { return sign + self.decimal(nanoseconds, per: 1_000) + "µs" }
        if nanoseconds < 1_000_000_000 { return sign + self.decimal(nanoseconds, per: 1_000_000) + "ms" }
        var text = sign
        let hours = nanoseconds / 3_600_000_000_000
        let minutes = (nanoseconds / 60_000_000_000) % 60
        let rest = nanoseconds % 60_000_000_000
        if hours > 0 { text += "\(hours)h" }
        if hours > 0 || minutes > 0 { text += "\(minutes)m" }
        return text + self.decimal(rest, per: 1_000_000_000) + "s"
    }

    static let nanosecondsPerUnit: [String: Int64] = [
        "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
        "m": 60_000_000_000, "h": 3_600_000_000_000,
    ]

    static func scale(whole: Substring, fraction: Substring, unit: Int64) -> Int64? {
        var value: Int64 = 0
        if !whole.isEmpty {
            guard let number = Int64(whole) else { return nil }
            let (product, overflow) = number.multipliedReportingOverflow(by: unit)
            guard !overflow else { return nil }
            value = product
        }
        var scale = unit
        for digit in fraction {
            scale /= 10
            guard scale > 0 else { break }
            let (sum, overflow) = value.addingReportingOverflow(Int64(digit.wholeNumberValue ?? 0) * scale)
            guard !overflow else { return nil }
            value = sum
        }
        return value
    }

    static func decimal(_ value: Int64, per unit: Int64) -> String {
        let whole = value / unit
        var remainder = value % unit
        guard remainder != 0 else { return "\(whole)" }
        var digits = ""
        var scale = unit / 10
        while remainder != 0, scale > 0 {
            digits.append(Character(String(remainder / scale)))
            remainder %= scale
            scale /= 10
        }
        return "\(whole).\(digits)"
    }
}
