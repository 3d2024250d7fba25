import PicoModel

/// A scenario file's bytes, before the YAML reader sees them: they must be UTF-8 text no larger
/// than the reader's limit. Pure: the caller reads the file.
public enum ScenarioSource {
    /// `bytes` as text; a `YAMLError` at the line and column of the first byte that is not part
    /// of a UTF-8 character, or when there are more than `YAMLReader.maxBytes`.
    public static func text(_ bytes: [UInt8], file: String) throws(YAMLError) -> String {
        guard bytes.count <= YAMLReader.maxBytes else {
            throw YAMLError(file: file, line: 1, column: 1, message: "the file is larger than \(YAMLReader.maxBytes / 1_048_576) MiB, too large for a scenario file")
        }
        var line = 1
        var column = 1
        var offset = 0
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                offset += encoded.count
                if encoded.count == 1, encoded.first == UInt8(ascii: "\n") {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
            case .error:
                let byte = String(bytes[offset], radix: 16, uppercase: true)
                throw YAMLError(
                    file: file, line: line, column: column,
                    message: "the file is not UTF-8 text (byte 0x\(byte.count == 1 ? "0" + byte : byte) here); save it as UTF-8")
            case .emptyInput:
                return String(decoding: bytes, as: UTF8.self)
            }
        }
    }
}
