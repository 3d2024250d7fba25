@testable import PicoModel
import Testing

@Suite("Token rules")
struct TokenRulesTests {
    /// An unsigned-looking token with `header` and `claims` (JSON text) and `signature` bytes.
    func token(header: String = #"{"alg":"HS256","typ":"JWT"}"#, claims: String, signature: [UInt8] = [1, 2, 3]) -> String {
        "\(Base64URL.encode(header.utf8)).\(Base64URL.encode(claims.utf8)).\(Base64URL.encode(signature))"
    }

    func parsed(_ token: String) -> Result<CompactToken, AuthFailure> { CompactToken.parse(token.utf8) }

    func reason(_ result: Result<CompactToken, AuthFailure>) -> AuthFailure.Reason? {
        if case .failure(let failure) = result { return failure.reason }
        return nil
    }

    func reason(_ result: Result<TokenGrant, AuthFailure>) -> AuthFailure.Reason? {
        if case .failure(let failure) = result { return failure.reason }
        return nil
    }

    @Test func test_base64url_roundTripsEveryLength_andRefusesPaddingForeignBytesAndLooseBits() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(Base64URL.decode(text.utf8) == bytes, "\(length)")
        }
        #expect(Base64URL.encode("hi?>".utf8) == "aGk_Pg")
        for bad in ["aGk_Pg==", "aGk+Pg", "aGk/Pg", "a", "aGk_P", "aGk_Ph", "aG k", "aGk\u{0}"] {
            #expect(Base64URL.decode(bad.utf8) == nil, "\(bad)")
        }
    }

    @Test func test_aTokenSplitsIntoAlgorithmKeyIDClaimsAndTheBytesItsSignatureCovers() throws {
        let text = self.token(header: #"{"alg":"ES256","kid":"key-1"}"#,
                              claims: #"{"exp":1700000000,"nbf":1699990000.5,"aud":["a","b"],"iss":"https://idp","pico.endpoints":["e1","e2"],"other":{"x":1}}"#,
                              signature: [UInt8](repeating: 7, count: 64))
        let token = try self.parsed(text).get()
        #expect(token.algorithm == .es256 && token.keyID == "key-1")
        #expect(token.claims == TokenClaims(expiresAt: 1_700_000_000_000, notBefore: 1_699_990_000_500, audiences: ["a", "b"], issuer: "https://idp", endpoints: ["e1", "e2"]))
        #expect(String(decoding: token.signingInput, as: UTF8.self) == text.split(separator: ".").prefix(2).joined(separator: "."))
        #expect(token.signature == [UInt8](repeating: 7, count: 64))
        // Piko's claim, nested as Piko's issuers write it, and a single audience is a list of one.
        let piko = try self.parsed(self.token(claims: #"{"piko":{"endpoints":["p"]},"aud":"only"}"#)).get()
        #expect(piko.claims.endpoints == ["p"] && piko.claims.audiences == ["only"])
        #expect(try self.parsed(self.token(claims: #"{"pico":{"endpoints":["q"],"other":1}}"#)).get().claims.endpoints == ["q"])
        // A flat name is read too: an endpoint list is never ignored.
        #expect(try self.parsed(self.token(claims: #"{"piko.endpoints":["f"]}"#)).get().claims.endpoints == ["f"])
        #expect(try self.parsed(self.token(claims: #"{"piko":{"endpoints":["a"]},"piko.endpoints":["a"]}"#)).get().claims.endpoints == ["a"])
        #expect(try self.parsed(self.token(claims: #"{"piko":{"tenant":"x"}}"#)).get().claims.endpoints == nil)
    }

    @Test func test_hostileTokensAreRefusedWithAReason_neverParsedPastTheirBounds() {
        let claims = #"{"exp":1}"#
        let cases: [(String, AuthFailure.Reason)] = [
            ("", .malformedToken),
            ("a.b", .malformedToken),
            ("a.b.c.d", .malformedToken),
            ("!!.e30.AQ", .malformedToken),
            (self.token(header: #"{"alg":"none"}"#, claims: claims, signature: []), .unsupportedAlgorithm),
            (self.token(header: #"{"alg":"hs256"}"#, claims: claims), .unsupportedAlgorithm),
            (self.token(header: #"{"alg":"ES512"}"#, claims: claims), .unsupportedAlgorithm),
            (self.token(header: #"{"typ":"JWT"}"#, claims: claims), .malformedToken),
            (self.token(header: #"{"alg":7}"#, claims: claims), .malformedToken),
            (self.token(header: #"{"alg":"HS256","alg":"none"}"#, claims: claims), .malformedToken),
            (self.token(header: #"{"alg":"HS256","crit":["b64"],"b64":false}"#, claims: claims), .malformedToken),
            (self.token(header: #"{"alg":"HS256","kid":"\#(String(repeating: "k", count: 257))"}"#, claims: claims), .malformedToken),
            (self.token(header: #"["alg","HS256"]"#, claims: claims), .malformedToken),
            (self.token(claims: "[]"), .malformedToken),
            (self.token(claims: #"{"exp":1,"exp":99999999999}"#), .malformedToken),
            (self.token(claims: #"{"exp":"tomorrow"}"#), .invalidClaims),
            (self.token(claims: #"{"exp":1e300}"#), .invalidClaims),
            (self.token(claims: #"{"nbf":true}"#), .invalidClaims),
            (self.token(claims: #"{"aud":5}"#), .invalidClaims),
            (self.token(claims: #"{"aud":["a",5]}"#), .invalidClaims),
            (self.token(claims: #"{"iss":["x"]}"#), .invalidClaims),
            (self.token(claims: #"{"pico.endpoints":"e1"}"#), .invalidClaims),
            (self.token(claims: #"{"pico.endpoints":["a"],"piko.endpoints":["b"]}"#), .invalidClaims),
            (self.token(claims: #"{"piko":{"endpoints":["a"]},"pico":{"endpoints":["b"]}}"#), .invalidClaims),
            (self.token(claims: #"{"piko":{"endpoints":["a"]},"piko.endpoints":["b"]}"#), .invalidClaims),
            (self.token(claims: #"{"piko":["a"]}"#), .invalidClaims),
            (self.token(claims: #"{"piko":{"endpoints":"a"}}"#), .invalidClaims),
            (self.token(claims: #"{"piko":{"endpoints":["a"],"endpoints":["b"]}}"#), .malformedToken),
            (self.token(claims: #"{"piko":{},"piko":{"endpoints":["b"]}}"#), .malformedToken),
            (self.token(claims: String(repeating: "[", count: 100_000)), .malformedToken),
            (self.token(claims: #"{"a":"# + String(repeating: "[", count: 9) + String(repeating: "]", count: 9) + "}"), .malformedToken),
            (self.token(header: #"{"alg":"ES256"}"#, claims: claims, signature: [UInt8](repeating: 1, count: 63)), .badSignature),
            (String(repeating: "a", count: CompactToken.maxBytes + 1), .malformedToken),
        ]
        for (text, expected) in cases {
            #expect(self.reason(self.parsed(text)) == expected, "\(text.prefix(120))")
        }
        // Within the bounds, nesting in claims Pico does not read is fine.
        #expect(self.reason(self.parsed(self.token(claims: #"{"a":[[[[1]]]]}"#))) == nil)
    }

    @Test func test_expiryAndNotBefore_atEveryBoundaryMillisecond_withAndWithoutLeeway() throws {
        let claims = TokenClaims(expiresAt: 100_000, notBefore: 50_000)
        let strict = TokenRules()
        #expect(self.reason(strict.check(claims, now: 49_999)) == .notYetValid)
        #expect(self.reason(strict.check(claims, now: 50_000)) == nil)
        #expect(self.reason(strict.check(claims, now: 99_999)) == nil)
        #expect(self.reason(strict.check(claims, now: 100_000)) == .expired)
        #expect(try strict.check(claims, now: 60_000).get().validUntil == 100_000)
        let lenient = TokenRules(leeway: .seconds(5))
        #expect(self.reason(lenient.check(claims, now: 44_999)) == .notYetValid)
        #expect(self.reason(lenient.check(claims, now: 45_000)) == nil)
        #expect(self.reason(lenient.check(claims, now: 104_999)) == nil)
        #expect(self.reason(lenient.check(claims, now: 105_000)) == .expired)
        #expect(try lenient.check(claims, now: 60_000).get().validUntil == 105_000)
        // Every whole second around an exp given in seconds, as PyJWT writes it.
        let seconds = TokenClaims(expiresAt: 1_700_000_000_000)
        for second in Int64(1_699_999_990)...1_700_000_010 {
            let valid = strict.check(seconds, now: second * 1_000)
            #expect((self.reason(valid) == nil) == (second < 1_700_000_000), "\(second)")
        }
        // No exp: never expires; extremes do not trap.
        #expect(try strict.check(TokenClaims(), now: .max).get().validUntil == nil)
        let extreme = TokenRules(leeway: .seconds(86_400))
        #expect(self.reason(extreme.check(TokenClaims(expiresAt: .max, notBefore: .min), now: 0)) == nil)
        #expect(self.reason(extreme.check(TokenClaims(expiresAt: .min, notBefore: .max), now: 0)) != nil)
        #expect(TokenRules(leeway: .seconds(-5)).leeway == .zero && TokenRules(leeway: .seconds(999_999)).leeway == TokenRules.maxLeeway)
    }

    @Test func test_audienceAndIssuer_mustMatchWhenConfigured_andAbsentClaimsFailThen() {
        let rules = TokenRules(audience: "pico", issuer: "https://idp")
        #expect(self.reason(rules.check(TokenClaims(audiences: ["x", "pico"], issuer: "https://idp"), now: 0)) == nil)
        #expect(self.reason(rules.check(TokenClaims(audiences: ["x"], issuer: "https://idp"), now: 0)) == .wrongAudience)
        #expect(self.reason(rules.check(TokenClaims(issuer: "https://idp"), now: 0)) == .wrongAudience)
        #expect(self.reason(rules.check(TokenClaims(audiences: ["pico"], issuer: "https://other"), now: 0)) == .wrongIssuer)
        #expect(self.reason(rules.check(TokenClaims(audiences: ["pico"]), now: 0)) == .wrongIssuer)
        #expect(self.reason(TokenRules().check(TokenClaims(audiences: ["anything"], issuer: "anyone"), now: 0)) == nil)
    }

    @Test func test_anAbsentOrEmptyEndpointListPermitsAny_otherwiseOnlyTheNamedOnes() {
        #expect(TokenGrant(endpoints: nil, validUntil: nil).permits("x"))
        #expect(TokenGrant(endpoints: [], validUntil: nil).permits("x"))
        #expect(TokenGrant(endpoints: ["a", "b"], validUntil: nil).permits("b"))
        #expect(!TokenGrant(endpoints: ["a", "b"], validUntil: nil).permits("c"))
        #expect(!TokenGrant(endpoints: ["a"], validUntil: nil).permits("A"))
    }

    @Test func test_theAlgorithmChoosesTheKindOfKey_andAKidNarrowsTheChoice() throws {
        let configured = [TokenKeyInfo(kind: .hmac), TokenKeyInfo(kind: .rsa), TokenKeyInfo(kind: .ecP256)]
        #expect(try TokenKeys.candidates(algorithm: .hs256, keyID: nil, among: configured).get() == [0])
        #expect(try TokenKeys.candidates(algorithm: .ps256, keyID: "ignored", among: configured).get() == [1])
        #expect(try TokenKeys.candidates(algorithm: .es256, keyID: nil, among: configured).get() == [2])
        // No key of the algorithm's kind: an RSA key never verifies HS256, a P-256 key never ES384.
        #expect(throws: AuthFailure.self) { try TokenKeys.candidates(algorithm: .hs256, keyID: nil, among: [TokenKeyInfo(kind: .rsa)]).get() }
        #expect(throws: AuthFailure.self) { try TokenKeys.candidates(algorithm: .es384, keyID: nil, among: configured).get() }
        #expect(throws: AuthFailure.self) { try TokenKeys.candidates(algorithm: .edDSA, keyID: nil, among: configured).get() }
        let set = [TokenKeyInfo(kind: .rsa, keyID: "old"), TokenKeyInfo(kind: .rsa, keyID: "new", algorithm: .rs256), TokenKeyInfo(kind: .ed25519, keyID: "ed")]
        #expect(try TokenKeys.candidates(algorithm: .rs256, keyID: "new", among: set).get() == [1])
        #expect(try TokenKeys.candidates(algorithm: .rs256, keyID: nil, among: set).get() == [0, 1])
        #expect(try TokenKeys.candidates(algorithm: .ps256, keyID: nil, among: set).get() == [0], "the new key is for RS256 only")
        if case .failure(let failure) = TokenKeys.candidates(algorithm: .rs256, keyID: "rotated", among: set) {
            #expect(failure.reason == .unknownKey)
        } else {
            Issue.record("an unknown kid is refused")
        }
    }

    @Test func test_theBearerTokenComesFromPicosHeaderThenPikosThenAuthorization() {
        func find(_ fields: [(String, String)]) -> Result<BearerCredentials, AuthFailure> {
            var headers = HTTPHeaders()
            for (name, value) in fields { headers.add(name: name, value: value) }
            return BearerCredentials.find(in: headers)
        }
        func reason(_ result: Result<BearerCredentials, AuthFailure>) -> AuthFailure.Reason? {
            if case .failure(let failure) = result { return failure.reason }
            return nil
        }
        let both = try? find([("Authorization", "Bearer upstream-own"), ("X-Pico-Authorization", "Bearer pico")]).get()
        #expect(both?.token == "pico" && both?.headerName == "x-pico-authorization")
        let piko = try? find([("Authorization", "Basic dXNlcg=="), ("x-piko-authorization", "bearer  piko ")]).get()
        #expect(piko?.token == "piko" && piko?.headerName == "x-piko-authorization")
        #expect((try? find([("authorization", "BEARER plain")]).get())?.token == "plain")
        #expect(reason(find([])) == .missingAuthorization)
        #expect(reason(find([("Authorization", "Bearer")])) == .invalidAuthorization)
        #expect(reason(find([("Authorization", "Bearer ")])) == .invalidAuthorization)
        #expect(reason(find([("Authorization", "Basic dXNlcg==")])) == .unsupportedAuthType)
        #expect(reason(find([("Authorization", "Bearer a"), ("Authorization", "Bearer b")])) == .invalidAuthorization)
        #expect(AuthFailure(.missingAuthorization).message == "missing authorization")
        #expect(AuthFailure(.badSignature).message == "invalid token" && AuthFailure(.expired).message == "expired token")
    }
}
