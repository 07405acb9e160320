// swift-tools-version: 6.2
import PackageDescription

// Numeric kernels are unusable unoptimized, and the test suite runs a debug build:
// build these targets with -O in every configuration.
let optimizedAlways: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

// The vector kernels wait on memory; SSE2 (the x86-64 baseline) needs twice the instructions per
// cache line that AVX2 does: 1.47× slower searches (docs/benchmarks.md). distilld therefore needs
// an AVX2 CPU (Intel Haswell, 2013; AMD Zen, 2017) on x86-64; the encoder's own kernels (GELU,
// softmax, LayerNorm) and the student's int8 products (2x faster than SSE2's) use it too.
#if arch(x86_64)
let vectorKernels: [SwiftSetting] = optimizedAlways + [.unsafeFlags(["-target-cpu", "haswell"])]
#else
let vectorKernels = optimizedAlways
#endif

let package = Package(
    name: "distill",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "distilld", targets: ["distilld"]),
        .executable(name: "cachectl", targets: ["cachectl"]),
        .executable(name: "teacher-sim", targets: ["teacher-sim"]),
        .executable(name: "distill-bench", targets: ["distill-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // Already in the graph through Hummingbird; named for NIOHTTPTypes (the request parts a
        // channel handler of ours sees).
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["YAML"]),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // System libraries
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        // Libraries
        .target(name: "DistillAPI"),
        .target(name: "SeededRandom"),
        // Starting and watching distilld, teacher-sim and cachectl: the end-to-end tests and the replay.
        .target(name: "ChildProcess"),
        .target(name: "VectorIndex", dependencies: ["SeededRandom"], swiftSettings: vectorKernels),
        .target(
            name: "Embedding",
            dependencies: ["CBLAS", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: vectorKernels
        ),
        .target(name: "Student", dependencies: ["SeededRandom"], swiftSettings: vectorKernels),
        // Whether a semantic hit may be served under the operator's error bound: mismatch signals,
        // answer equivalence, the learned wrong-hit model. Pure: SemanticCache does the I/O.
        .target(name: "CacheVerification"),
        .target(name: "Storage", dependencies: [.product(name: "GRDB", package: "GRDB.swift")]),
        .target(
            name: "Teacher",
            dependencies: [
                "DistillAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]
        ),
        .target(
            name: "DistillCore",
            dependencies: [
                "DistillAPI", "VectorIndex", "Embedding", "Student", "Storage", "Teacher", "SeededRandom",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "DistillServer",
            dependencies: [
                "DistillCore", "DistillAPI", "Storage", "Embedding",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ]
        ),
        // The stand-in teacher, as a library so that tests can run it in-process over loopback.
        .target(
            name: "TeacherSimulator",
            dependencies: [
                "DistillAPI", "SeededRandom",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // Executables
        .executableTarget(
            name: "distilld",
            dependencies: [
                "DistillAPI", "DistillCore", "DistillServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "cachectl",
            dependencies: [
                "DistillAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "teacher-sim",
            dependencies: [
                "TeacherSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "distill-bench",
            dependencies: [
                "Embedding", "VectorIndex", "Student", "DistillCore", "Storage", "TeacherSimulator", "SeededRandom",
                "ChildProcess", "CacheVerification",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                // replay: a client of distilld over TCP and its Unix socket (http+unix://), admin API included.
                "DistillAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: optimizedAlways
        ),

        // Tests
        .testTarget(name: "DistillAPITests", dependencies: ["DistillAPI", "SeededRandom"]),
        .testTarget(name: "VectorIndexTests", dependencies: ["VectorIndex", "SeededRandom"], swiftSettings: optimizedAlways),
        .testTarget(name: "EmbeddingTests", dependencies: ["Embedding"]),
        .testTarget(name: "StudentTests", dependencies: ["Student", "Embedding", "SeededRandom"]),
        .testTarget(name: "CacheVerificationTests", dependencies: ["CacheVerification", "SeededRandom"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(
            name: "TeacherTests",
            dependencies: ["Teacher", "TeacherSimulator", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "TeacherSimulatorTests",
            dependencies: [
                "TeacherSimulator",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "DistillCoreTests",
            dependencies: [
                "DistillCore", "TeacherSimulator", "Storage", "Student", "Teacher", "Embedding", "VectorIndex", "SeededRandom",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "DistillServerTests",
            dependencies: [
                "DistillServer", "DistillCore", "DistillAPI", "TeacherSimulator",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The replay benchmark's stream generator and report aggregation.
        .testTarget(name: "DistillBenchTests", dependencies: ["distill-bench", "DistillCore", "Storage", "SeededRandom"]),
        // Seeded hostile input for the request parser and the teacher-response decoding.
        .testTarget(
            name: "FuzzTests",
            dependencies: [
                "DistillAPI", "Teacher", "SeededRandom",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Starts the real executables (distilld, teacher-sim, cachectl) as processes.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "DistillAPI", "ChildProcess",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
