@testable import PicoModel
import Testing

@Suite("Typed YAML fields and durations")
struct YAMLFieldsTests {
    @Test func test_durations_parseAndFormatLikeGo() {
        #expect(DurationText.parse("300ms") == .milliseconds(300))
        #expect(DurationText.parse("1m30s") == .seconds(90))
        #expect(DurationText.parse("1.5s") == .milliseconds(1_500))
        #expect(DurationText.parse("2h45m") == .seconds(9_900))
        #expect(DurationText.parse("250us") == .microseconds(250))
        #expect(DurationText.parse("250µs") == .microseconds(250))
        #expect(DurationText.parse("-2s") == .seconds(-2))
        #expect(DurationText.parse("0") == .zero)
        // The last ones overflow Int64 nanoseconds in the fraction (they trapped before).
        for bad in ["", "5", "s", "1x", "1.s.", "--1s", "99999999999h", "1e3s", "9223372036.999999999s", "2562047h47m16.999999999s"] {
            #expect(DurationText.parse(bad) == nil, "\(bad)")
        }
        #expect(DurationText.format(.seconds(90)) == "1m30s")
        #expect(DurationText.format(.milliseconds(1_500)) == "1.5s")
        #expect(DurationText.format(.milliseconds(300)) == "300ms")
        #expect(DurationText.format(.zero) == "0s")
        #expect(DurationText.format(.seconds(3_600)) == "1h0m0s")
    }

    @Test func test_fields_readTypedValues_andNameKeyAndLineOnErrors() throws {
        let document = try YAMLReader.parse("spec:\n  pods: 3\n  seed: 42\n  loss: 10%\n  grace: 1m\n  on: true\n  names: [a, b]\n", file: "s.yaml")
        var root = try YAMLFields(document, path: "", file: "s.yaml")
        var spec = try #require(try root.mapping("spec"))
        #expect(try spec.int("pods", in: 1...100) == 3)
        #expect(try spec.uint64("seed") == 42)
        #expect(try spec.fraction("loss") == 0.1)
        #expect(try spec.duration("grace") == .seconds(60))
        #expect(try spec.bool("on") == true)
        #expect(try spec.strings("names") == ["a", "b"])
        #expect(try spec.int("absent") == nil)
        try spec.finish()
        try root.finish()
    }

    @Test func test_fields_errors() throws {
        func failure(_ text: String, _ read: (inout YAMLFields) throws(YAMLError) -> Void) -> String {
            do {
                var fields = try YAMLFields(try YAMLReader.parse(text, file: "f.yaml"), path: "spec", file: "f.yaml")
                try read(&fields)
                try fields.finish()
                return "no error"
            } catch {
                return error.description
            }
        }
        #expect(failure("pods: three\n") { (f: inout YAMLFields) throws(YAMLError) in _ = try f.int("pods") } == "f.yaml:1:7: spec.pods: expected an integer, got 'three'")
        #expect(failure("pods: 0\n") { (f: inout YAMLFields) throws(YAMLError) in _ = try f.int("pods", in: 1...9) } == "f.yaml:1:7: spec.pods: must be in 1...9, got 0")
        #expect(failure("grace: soon\n") { (f: inout YAMLFields) throws(YAMLError) in _ = try f.duration("grace") }.hasPrefix("f.yaml:1:8: spec.grace: expected a duration"))
        #expect(failure("on: yes\n") { (f: inout YAMLFields) throws(YAMLError) in _ = try f.bool("on") } == "f.yaml:1:5: spec.on: expected true or false, got 'yes'")
        #expect(failure("loss: 120%\n") { (f: inout YAMLFields) throws(YAMLError) in _ = try f.fraction("loss") }.contains("0% to 100%"))
        #expect(failure("pods: 3\npdos: 4\n") { (f: inout YAMLFields) throws(YAMLError) in _ = try f.int("pods") } == "f.yaml:2:1: unknown key 'spec.pdos'")
        #expect(failure("- a\n") { (_: inout YAMLFields) throws(YAMLError) in } == "f.yaml:1:1: spec: expected a mapping")
        #expect(failure("x: 1\n") { (f: inout YAMLFields) throws(YAMLError) in _ = try f.requiredString("name"); _ = try f.int("x") } == "f.yaml:1:1: spec.name: is required")
    }
}
