/// The few text helpers the runtime's folders share (the runtime does not import Foundation).
extension String {
    /// This text with every `target` character replaced by `replacement`.
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
    }

    /// This text without the leading and trailing characters that are in `characters`.
    func trimmingCharacters(in characters: String) -> String {
        // By Unicode scalar: as Characters, "\r\n" is one, and a lone "\n" would not match it.
        let trimmed = Set(characters.unicodeScalars)
        var scalars = self.unicodeScalars[...]
        while let first = scalars.first, trimmed.contains(first) { scalars.removeFirst() }
        while let last = scalars.last, trimmed.contains(last) { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
