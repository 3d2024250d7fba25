@testable import PicoRuntime
import Testing

@Suite("Bounded metric labels and the access log's secrets")
struct BoundedLabelsTests {
    @Test func test_requestCounts_keepStandardMethodsAndRegisteredStatuses_andFoldTheRest() {
        var counts = RequestCounts()
        for method in ["GET", "PUT", "POST", "HEAD", "PATCH", "TRACE", "DELETE", "OPTIONS", "CONNECT"] {
            counts.record(method: method, status: 200)
        }
        for index in 0..<10_000 { counts.record(method: "M\(index)", status: 100 + index % 900) }
        counts.record(method: "get", status: 499)
        #expect(counts.count(method: "GET", status: "200") == 1)
        #expect(counts.count(method: "CONNECT", status: "200") == 1)
        #expect(counts.count(method: "OTHER", status: "499") == 1 + 11)
        #expect(counts.count(method: "OTHER", status: "599") == 0)
        #expect(counts.count(method: "OTHER", status: "5xx") > 0)
        #expect(counts.count(method: "OTHER", status: "other") == 4_400)
        let rows = counts.nonZero
        #expect(rows.count <= RequestCounts.methodLabels.count * RequestCounts.statusLabels.count)
        #expect(rows.reduce(0) { $0 + $1.count } == 10_010)
        #expect(RequestCounts.statusSlot(-1) == RequestCounts.statusSlot(1_000_000))
    }

    @Test func test_boundedCounts_keepAtMost64Names_andEveryCount() {
        var counts = BoundedCounts()
        for index in 0..<1_000 { counts.add(2, to: "node-\(index)") }
        #expect(counts.named.count <= BoundedCounts.limit)
        #expect(counts.series.reduce(0) { $0 + $1.1 } == 2_000)
        #expect(counts.series.last?.0 == BoundedCounts.overflowLabel)
        var total = BoundedCounts()
        for _ in 0..<8 { total.add(counts) }
        #expect(total.named.count <= BoundedCounts.limit)
        #expect(total.series.reduce(0) { $0 + $1.1 } == 16_000)
    }

    @Test func test_headerFilter_leavesOutSecretsByDefault_unlessAllowed() {
        for name in ["Authorization", "proxy-authorization", "COOKIE", "Set-Cookie", "X-Pico-Authorization"] {
            #expect(!HeaderLogFilter.all.shows(name))
            #expect(!HeaderLogFilter.block(["x-trace"]).shows(name))
            #expect(HeaderLogFilter.allow([name.lowercased()]).shows(name))
        }
        for name in ["Host", "X-Trace", "Cookies", "authorisation", "set_cookie", "x-pico-authorizatio", ""] {
            #expect(HeaderLogFilter.all.shows(name))
        }
    }
}
