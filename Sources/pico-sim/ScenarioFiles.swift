import Foundation
import PicoModel
import PicoSim

/// The scenario files named on the command line, read and decoded, every one before any runs.
enum ScenarioFiles {
    /// Every file decoded, in order, or one message per file that cannot be used (naming the
    /// file, and the line and key where there is one).
    static func load(_ paths: [String], seed: UInt64?) -> Result<[Scenario], Problems> {
        var scenarios: [Scenario] = []
        var problems: [String] = []
        for path in paths {
            do {
                let text = try ScenarioSource.text(try self.bytes(of: path), file: path)
                scenarios.append(try ScenarioDecoder.decode(text, file: path, seed: seed))
            } catch let error as YAMLError {
                problems.append(error.description)
            } catch {
                problems.append("cannot read \(path): \(error)")
            }
        }
        return problems.isEmpty ? .success(scenarios) : .failure(Problems(messages: problems))
    }

    /// Why a file was not read, in words an operator reads without the code.
    struct Unreadable: Error, CustomStringConvertible {
        var description: String
    }

    /// What `load` found wrong, one message per file.
    struct Problems: Error {
        var messages: [String]
    }

    /// The file's bytes, at most one past the YAML reader's limit (a device such as /dev/zero
    /// ends there), so the limit is reported instead of memory filling up.
    static func bytes(of path: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw Unreadable(description: "no such file") }
        guard !isDirectory.boolValue else { throw Unreadable(description: "it is a directory; name a scenario file (.yaml) in it") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw Unreadable(description: FileManager.default.isReadableFile(atPath: path) ? "it cannot be opened" : "permission denied")
        }
        defer { try? handle.close() }
        let data = try handle.read(upToCount: YAMLReader.maxBytes + 1) ?? Data()
        return [UInt8](data)
    }
}
