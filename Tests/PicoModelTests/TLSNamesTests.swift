@testable import PicoModel
import Testing

@Suite("TLSNames")
struct TLSNamesTests {
    @Test func test_aFullyQualifiedNameLosesItsTrailingDot_forSNIAndTheCertificateCheck() {
        #expect(TLSNames.withoutTrailingDot("pico.default.svc.cluster.local.") == "pico.default.svc.cluster.local")
        #expect(TLSNames.withoutTrailingDot("localhost") == "localhost")
        #expect(TLSNames.withoutTrailingDot(".") == ".")
        #expect(TLSNames.withoutTrailingDot("10.0.0.1") == "10.0.0.1")
    }

    @Test func test_sniCarriesDNSNamesOnly_andAddressesAreCheckedAsAddresses() {
        for name in ["localhost", "pico-0.pico.default.svc.cluster.local", "a-b.example"] {
            #expect(TLSNames.isDNSName(name), "\(name)")
            #expect(!TLSNames.isIPAddress(name), "\(name)")
        }
        for address in ["127.0.0.1", "10.0.0.255", "::1", "[fe80::1]", "2001:db8::1"] {
            #expect(TLSNames.isIPAddress(address), "\(address)")
            #expect(!TLSNames.isDNSName(address), "\(address): RFC 6066 forbids an address in SNI")
        }
        for bad in ["", ".", "a..b", "under_score.example", "x y", String(repeating: "a", count: 64) + ".example", String(repeating: "a.", count: 127) + "a", "é.example"] {
            #expect(!TLSNames.isDNSName(bad), "\(bad)")
        }
        #expect(TLSNames.isIPAddress("::ffff:10.0.0.1") && TLSNames.isIPAddress("1:2:3:4:5:6:7:8"))
        for bad in ["256.0.0.1", "1.2.3", "1.2.3.4.5", "01234.1.1.1", ":", "g::1", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::1", "1:2", ":::", "1:::2", "::::"] {
            #expect(!TLSNames.isIPAddress(bad), "\(bad)")
        }
    }
}
