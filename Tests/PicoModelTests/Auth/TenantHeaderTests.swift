import Testing
@testable import PicoModel

/// The tenant an agent names on the upstream port, read as hostile input.
@Suite struct TenantHeaderTests {
    @Test func test_eitherName_bothAlike_orAMessageSayingWhatIsWrong() {
        #expect(TenantHeader.find(in: ["Host": "x"]) == .none)
        #expect(TenantHeader.find(in: ["X-Pico-Tenant-Id": " blue "]) == .tenant("blue"))
        #expect(TenantHeader.find(in: ["x-piko-tenant-id": "blue"]) == .tenant("blue"))
        #expect(TenantHeader.find(in: ["x-pico-tenant-id": "blue", "x-piko-tenant-id": "blue"]) == .tenant("blue"))
        #expect(TenantHeader.find(in: ["x-pico-tenant-id": "blue", "x-piko-tenant-id": "red"])
            == .malformed("x-pico-tenant-id and x-piko-tenant-id name different tenants"))
        var twice = HTTPHeaders()
        twice.add(name: "x-pico-tenant-id", value: "blue")
        twice.add(name: "X-PICO-TENANT-ID", value: "red")
        #expect(TenantHeader.find(in: twice) == .malformed("x-pico-tenant-id given twice with different tenants"))
        for bad in ["", "a b", "../etc", "ä", String(repeating: "t", count: 65)] {
            #expect(TenantHeader.find(in: ["x-pico-tenant-id": bad]) == .malformed("tenant id must be \(EndpointClaim.tenantRule)"), "\(bad)")
        }
    }
}
