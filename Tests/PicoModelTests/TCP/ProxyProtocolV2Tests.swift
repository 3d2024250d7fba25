@testable import PicoModel
import Testing

@Suite("PROXY protocol v2")
struct ProxyProtocolV2Tests {
    static let signature = ProxyProtocolV2.signature

    @Test func test_headers_forIPv4_IPv6_mixedFamilies_andUnknownAddresses() {
        let v4 = ProxyProtocolV2.header(source: Address(host: "192.0.2.7", port: 51_000), destination: Address(host: "10.0.0.1", port: 8000))
        #expect(v4 == Self.signature + [0x21, 0x11, 0, 12, 192, 0, 2, 7, 10, 0, 0, 1, 0xC7, 0x38, 0x1F, 0x40])
        let v6 = ProxyProtocolV2.header(source: Address(host: "2001:db8::1", port: 1), destination: Address(host: "[::1]", port: 2))
        #expect(v6.count == 16 + 36)
        #expect(Array(v6[12..<16]) == [0x21, 0x21, 0, 36])
        #expect(Array(v6[16..<32]) == [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1])
        #expect(Array(v6[48..<52]) == [0, 1, 0, 2])
        // An IPv4 client of an IPv6 socket: both as IPv6, the client IPv4-mapped.
        let mixed = ProxyProtocolV2.header(source: Address(host: "192.0.2.7", port: 1), destination: Address(host: "::1", port: 2))
        #expect(Array(mixed[12..<16]) == [0x21, 0x21, 0, 36])
        #expect(Array(mixed[16..<32]) == [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, 192, 0, 2, 7])
        // No address, or a name: LOCAL, so the service uses the connection's own.
        #expect(ProxyProtocolV2.header(source: nil, destination: Address(host: "10.0.0.1", port: 1)) == Self.signature + [0x20, 0, 0, 0])
        #expect(ProxyProtocolV2.header(source: Address(host: "client.example", port: 1), destination: Address(host: "10.0.0.1", port: 1)) == Self.signature + [0x20, 0, 0, 0])
        for header in [v4, v6, mixed] { #expect(ProxyProtocolV2.read(header) == .header(length: header.count)) }
    }

    @Test func test_reading_isStrictAndBounded_whateverArrives() {
        let v4 = ProxyProtocolV2.header(source: Address(host: "192.0.2.7", port: 1), destination: Address(host: "10.0.0.1", port: 2))
        for cut in 0..<v4.count { #expect(ProxyProtocolV2.read(v4.prefix(cut)) == .needMore, "\(cut) bytes") }
        #expect(ProxyProtocolV2.read(v4 + Array("GET /".utf8)) == .header(length: 28))
        #expect(ProxyProtocolV2.read(Array("GET / HTTP/1.1\r\n".utf8)) == .invalid("no PROXY protocol v2 signature (byte 0)"))
        var version = v4
        version[12] = 0x11
        #expect(ProxyProtocolV2.read(version) == .invalid("PROXY protocol version 1, not 2 (byte 12)"))
        var family = v4
        family[13] = 0x31
        #expect(ProxyProtocolV2.read(family) == .invalid("unsupported PROXY protocol family 49 (byte 13)"))
        var short = v4
        short[15] = 4
        #expect(ProxyProtocolV2.read(short) == .invalid("PROXY protocol address length 4 (bytes 14-15)"))
        var huge = v4
        (huge[14], huge[15]) = (0xFF, 0xFF)
        #expect(ProxyProtocolV2.read(huge) == .invalid("PROXY protocol address length 65535 (bytes 14-15)"), "never waits for 64 KiB")
    }

    @Test func test_theAgentsCheck_holdsTheHeaderUntilTheServiceAccepted_andRefusesAStreamWithoutOne() {
        let header = ProxyProtocolV2.header(source: Address(host: "192.0.2.7", port: 1), destination: Address(host: "10.0.0.1", port: 2))
        var early = ProxyHeaderCheck()
        #expect(early.received(header.prefix(5), serviceAccepted: false) == .wait)
        #expect(early.received(header.dropFirst(5), serviceAccepted: false) == .wait, "whole, but the service has not accepted")
        #expect(early.serviceAccepted() == .pass(header))
        #expect(early.isPassed && early.received([1], serviceAccepted: true) == .wait, "after it, bytes are not checked")
        var late = ProxyHeaderCheck()
        #expect(late.serviceAccepted() == .wait)
        #expect(late.received(header + [7, 8], serviceAccepted: true) == .pass(header + [7, 8]), "the client's bytes follow once accepted")
        var hasty = ProxyHeaderCheck()
        #expect(hasty.received(header + [7], serviceAccepted: false) == .refuse("bytes after the PROXY protocol header before the service accepted"))
        var none = ProxyHeaderCheck()
        #expect(none.received(Array("SSH-2.0-".utf8), serviceAccepted: true) == .refuse("no PROXY protocol v2 signature (byte 0)"))
        #expect(none.serviceAccepted() == .wait && none.received(header, serviceAccepted: true) == .wait, "refused for good")
    }

    @Test func test_ipAddressText_parsesOnlyWhatTheRFCsAllow() {
        #expect(IPAddressBytes.parse("127.0.0.1") == [127, 0, 0, 1])
        #expect(IPAddressBytes.parse("::") == [UInt8](repeating: 0, count: 16))
        #expect(IPAddressBytes.parse("::ffff:1.2.3.4") == [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, 1, 2, 3, 4])
        #expect(IPAddressBytes.parse("1:2:3:4:5:6:7:8") == [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8])
        for bad in ["", "1.2.3", "1.2.3.256", "01234.1.1.1", "1::2::3", ":::", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "[::1", "1:2:3:4:5:6:7::8:9", "host"] {
            #expect(IPAddressBytes.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func test_theEndsOfARoute_areTheSocketsOwn_unlessAMemberForwardedIt() {
        var head = HTTPRequestHead(method: "GET", target: "/_pico/v1/tcp/db", headers: [
            TCPRoute.forwardedClientField: "198.51.100.9:4242", TCPRoute.forwardedServerField: "[2001:db8::2]:8000",
        ])
        let peer = Address(host: "10.0.0.2", port: 40_000)
        let local = Address(host: "10.0.0.3", port: 8000)
        let direct = TCPRoute.connectionAddresses(of: head, arrivedFromPeer: false, socketPeer: peer, socketLocal: local)
        #expect(direct.client == peer && direct.server == local, "anyone else's fields are not believed")
        let forwarded = TCPRoute.connectionAddresses(of: head, arrivedFromPeer: true, socketPeer: peer, socketLocal: local)
        #expect(forwarded.client == Address(host: "198.51.100.9", port: 4242) && forwarded.server == Address(host: "2001:db8::2", port: 8000))
        head.headers.remove(TCPRoute.forwardedClientField)
        #expect(TCPRoute.connectionAddresses(of: head, arrivedFromPeer: true, socketPeer: peer, socketLocal: local).client == nil)
    }
}
