// swift-tools-version:6.0
import PackageDescription

// Pico uses the Swift toolchain only: no package dependency may ever be added here.

// The model and the simulator are compiled with optimization in debug builds too: the test suite
// replays every shipped scenario in process (and the debug `pico-sim` in a child process), which
// took seven CPU-minutes unoptimized. Preconditions and overflow checks stay (only -Ounchecked
// drops them); the model has no `assert`.
let optimizedEvenInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]
let package = Package(
    name: "Pico",
    products: [
        .library(name: "PicoModel", targets: ["PicoModel"]),
        .library(name: "PicoSim", targets: ["PicoSim"]),
        .executable(name: "pico-sim", targets: ["pico-sim"]),
        .executable(name: "pico", targets: ["pico"]),
    ],
    targets: [
        .target(
            name: "PicoModel",
            path: "Sources/PicoModel",
            swiftSettings: optimizedEvenInDebug
        ),
        .target(
            name: "PicoSim",
            dependencies: ["PicoModel"],
            path: "Sources/PicoSim",
            swiftSettings: optimizedEvenInDebug
        ),
        .systemLibrary(
            name: "CEpoll",
            path: "Sources/CEpoll"
        ),
        // The system's OpenSSL (Debian's libssl-dev), for TLS: a module map and macro wrappers only.
        .systemLibrary(
            name: "COpenSSL",
            path: "Sources/COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "PicoRuntime",
            dependencies: ["PicoModel", "CEpoll", "COpenSSL"],
            path: "Sources/PicoRuntime"
        ),
        .executableTarget(
            name: "pico",
            dependencies: ["PicoRuntime", "PicoModel"],
            path: "Sources/pico"
        ),
        .executableTarget(
            name: "pico-sim",
            dependencies: ["PicoSim", "PicoModel"],
            path: "Sources/pico-sim"
        ),
        .testTarget(
            name: "PicoSimTests",
            dependencies: ["PicoSim", "PicoModel"],
            path: "Tests/PicoSimTests"
        ),
        .testTarget(
            name: "PicoRuntimeTests",
            dependencies: ["PicoRuntime", "PicoModel"],
            path: "Tests/PicoRuntimeTests"
        ),
        .testTarget(
            name: "PicoModelTests",
            dependencies: ["PicoModel"],
            path: "Tests/PicoModelTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
