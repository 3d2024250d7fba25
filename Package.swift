// swift-tools-version:6.0
import PackageDescription

// Pico uses the Swift toolchain only: no package dependency may ever be added here.
let package = Package(
    name: "Pico",
    products: [
        .library(name: "PicoModel", targets: ["PicoModel"])
    ],
    targets: [
        .target(
            name: "PicoModel",
            path: "Sources/PicoModel"
        ),
        .testTarget(
            name: "PicoModelTests",
            dependencies: ["PicoModel"],
            path: "Tests/PicoModelTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
