/// RFC 6455 §5.3 masking: byte `i` of a payload is XORed with byte `(i + phase) % 4` of the key.
/// Done eight bytes at a time, since every byte a client sends and a server receives passes here.
public enum WebSocketMask {
    /// XORs `buffer` in place with `key` (4 bytes), starting at key byte `phase % 4`.
    public static func apply(_ key: [UInt8], phase: Int, to buffer: UnsafeMutableRawBufferPointer) {
        precondition(key.count == 4, "a masking key is 4 bytes")
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { bytes in
            for index in 0..<8 { bytes[index] = key[(phase + index) & 3] }
        }
        let count = buffer.count
        var index = 0
        while index + 8 <= count {
            let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            base.storeBytes(of: word ^ pattern, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < count {
            base.storeBytes(of: base.load(fromByteOffset: index, as: UInt8.self) ^ key[(phase + index) & 3], toByteOffset: index, as: UInt8.self)
            index += 1
        }
    }
}
