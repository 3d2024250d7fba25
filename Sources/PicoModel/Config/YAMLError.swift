/// A YAML document (or a value in it) that Pico cannot accept, with where it happened.
/// `description` reads `file:line:column: message`, fit for a terminal and a log line.
public struct YAMLError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file name given to the reader (or `<input>`).
    public var file: String
    /// 1-based line.
    public var line: Int
    /// 1-based column.
    public var column: Int
    /// What is wrong, naming the key when there is one.
    public var message: String

    /// Creates an error.
    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "\(self.file):\(self.line):\(self.column): \(self.message)" }
}
