import Glibc

/// A failed system call: which one, and `errno`'s text.
public struct SocketError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The call or step that failed.
    public var operation: String
    /// The `errno` value (0 when the failure is not a system error).
    public var code: Int32

    /// Captures `errno` for `operation`.
    public init(_ operation: String, code: Int32 = errno) {
        self.operation = operation
        self.code = code
    }

    public var description: String {
        self.code == 0 ? self.operation : "\(self.operation): \(String(cString: strerror(self.code)))"
    }
}
