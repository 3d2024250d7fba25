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
        self.trimmingScalars(in: characters)
    }
}
