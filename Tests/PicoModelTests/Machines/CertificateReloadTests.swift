import PicoModel
import Testing

@Suite struct CertificateReloadTests {
    @Test func aPeriodicCheckLoadsNewFilesOnlyOnceTheyHoldStill() {
        var reload = CertificateReload(inUse: 1)
        var loads = false
        loads = reload.check(1, trigger: .periodic)
        #expect(!loads)
        // The certificate was replaced, its key not yet: wait.
        loads = reload.check(2, trigger: .periodic)
        #expect(!loads)
        // The key followed: still moving, wait again.
        loads = reload.check(3, trigger: .periodic)
        #expect(!loads)
        #expect(reload.state == .settling(inUse: 1, seen: 3))
        // Unchanged since the last check: load.
        loads = reload.check(3, trigger: .periodic)
        #expect(loads)
        reload.loaded(3)
        #expect(reload.state == .steady(inUse: 3))
        loads = reload.check(3, trigger: .periodic)
        #expect(!loads)
    }

    @Test func filesChangedBackEndTheWaitWithoutALoad() {
        var reload = CertificateReload(inUse: 1)
        var loads = false
        loads = reload.check(2, trigger: .periodic)
        #expect(!loads)
        loads = reload.check(1, trigger: .periodic)
        #expect(!loads)
        #expect(reload.state == .steady(inUse: 1))
        loads = reload.check(1, trigger: .periodic)
        #expect(!loads)
    }

    @Test func brokenFilesAreTriedOnceAndTheOldCertificateStays() {
        var reload = CertificateReload(inUse: 1)
        var loads = false
        _ = reload.check(2, trigger: .periodic)
        loads = reload.check(2, trigger: .periodic)
        #expect(loads)
        reload.failed(2)
        #expect(reload.state == .refused(inUse: 1, broken: 2))
        #expect(reload.inUse == 1)
        // The same broken contents are not tried again, however many checks pass.
        for _ in 0..<5 { loads = reload.check(2, trigger: .periodic)
 #expect(!loads) }
        // Mended contents settle and load.
        loads = reload.check(4, trigger: .periodic)
        #expect(!loads)
        loads = reload.check(4, trigger: .periodic)
        #expect(loads)
        reload.loaded(4)
        #expect(reload.inUse == 4)
    }

    @Test func brokenFilesReplacedByTheOnesInUseAreSteadyAgain() {
        var reload = CertificateReload(inUse: 1)
        var loads = false
        _ = reload.check(2, trigger: .periodic)
        _ = reload.check(2, trigger: .periodic)
        reload.failed(2)
        loads = reload.check(1, trigger: .periodic)
        #expect(!loads)
        #expect(reload.state == .steady(inUse: 1))
    }

    @Test func aSignalLoadsAtOnceEvenUnchangedOrRefusedFiles() {
        var reload = CertificateReload(inUse: 1)
        var loads = false
        loads = reload.check(1, trigger: .signal)
        #expect(loads)
        loads = reload.check(2, trigger: .signal)
        #expect(loads)
        reload.failed(2)
        loads = reload.check(2, trigger: .signal)
        #expect(loads)
    }

    @Test func theFingerprintSeesContentsLengthsAndUnreadableFiles() {
        let a: [UInt8] = Array("-----BEGIN CERTIFICATE-----".utf8)
        let b: [UInt8] = Array("-----BEGIN PRIVATE KEY-----".utf8)
        let base = CertificateReload.fingerprint([a, b])
        #expect(base == CertificateReload.fingerprint([a, b]))
        #expect(base != CertificateReload.fingerprint([b, a]))
        // Bytes moved from one file to the next.
        #expect(CertificateReload.fingerprint([[1, 2], [3]]) != CertificateReload.fingerprint([[1], [2, 3]]))
        #expect(CertificateReload.fingerprint([a, nil]) != CertificateReload.fingerprint([a, []]))
        #expect(base != CertificateReload.fingerprint([a, b + [10]]))
    }
}
