import CEpoll
import Glibc

/// Fresh WebSocket masking keys for a client's frames (RFC 6455 §5.3: unpredictable), from the
/// system's random source, drawn 256 bytes per system call.
struct MaskingKeys {
    private var bytes: [UInt8] = []
    private var used = 0
    private var fallback = SystemRandomNumberGenerator()

    /// The next 4-byte key.
    mutating func next() -> [UInt8] {
        if self.used + 4 > self.bytes.count {
            if self.bytes.isEmpty { self.bytes = [UInt8](repeating: 0, count: 256) }
            let filled = self.bytes.withUnsafeMutableBytes { getrandom($0.baseAddress, $0.count, 0) }
            if filled != self.bytes.count {
                // getrandom cannot fail for 256 bytes once the pool is ready; fall back anyway.
                for index in self.bytes.indices { self.bytes[index] = UInt8.random(in: 0...255, using: &self.fallback) }
            }
            self.used = 0
        }
        defer { self.used += 4 }
        return Array(self.bytes[self.used..<self.used + 4])
    }
}
