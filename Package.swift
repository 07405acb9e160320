// swift-tools-version: 6.2
import PackageDescription

// Numeric kernels are unusable unoptimized, and the test suite runs a debug build:
// build these targets with -O in every configuration.
let optimizedAlways: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

// Every Swift target is compiled for the architecture's baseline (SSE2 on x86-64), so that the binaries run on
// any x86-64 CPU: the work that profits from wider instructions is in CPUKernels, compiled for each instruction
// set and chosen at run time from the CPU's features (issue 19).

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
        // Already in the graph through swift-configuration; named for FilePath (the config file's path).
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // The store shared by several nodes (issue 21): PostgreSQL's client on SwiftNIO.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Matrix and vector kernels compiled for several instruction sets, chosen at run time from the
        // CPU's features. Optimized in every configuration, like the Swift kernels.
        .target(name: "CPUKernels", cSettings: [.unsafeFlags(["-O3"])]),

        // Libraries
        .target(name: "DistillAPI"),
        // One typed client of distilld's public and admin APIs, over TCP and the Unix socket:
        // cachectl, distill-bench and the end-to-end tests all speak to the daemon through it.
        .target(
            name: "DistillClient",
            dependencies: [
                "DistillAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(name: "SeededRandom"),
        // Starting and watching distilld, teacher-sim and cachectl: the end-to-end tests and the replay.
        .target(name: "ChildProcess"),
        .target(name: "VectorIndex", dependencies: ["SeededRandom", "CPUKernels"], swiftSettings: optimizedAlways),
        .target(
            name: "Embedding",
            dependencies: ["CPUKernels", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: optimizedAlways
        ),
        // Whether a semantic hit may be served under the operator's error bound: mismatch signals,
        // answer equivalence, the learned wrong-hit model. Pure: SemanticCache does the I/O.
        .target(name: "CacheVerification"),
        .target(
            name: "Student", dependencies: ["SeededRandom", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: optimizedAlways),
        // The store protocol and its records; SQLiteStore is the embedded implementation.
        .target(name: "Storage"),
        .target(name: "SQLiteStore", dependencies: ["Storage", .product(name: "GRDB", package: "GRDB.swift")]),
        // The store of several nodes: PostgreSQL, with a change feed and the leader's advisory lock.
        .target(
            name: "PostgresStore",
            dependencies: [
                "Storage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Teacher",
            dependencies: [
                "DistillAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The domain: the request path, the cache, the students, re-distillation. No HTTP.
        .target(
            name: "DistillCore",
            dependencies: [
                "DistillAPI", "VectorIndex", "Embedding", "Student", "Storage", "Teacher", "CacheVerification",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The application: configuration, composition root, metrics, the HTTP routes.
        .target(
            name: "DistillServer",
            dependencies: [
                "DistillCore", "DistillAPI", "Storage", "SQLiteStore", "PostgresStore", "Embedding", "Teacher", "SeededRandom",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Yams", package: "Yams"),
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
                "DistillAPI", "DistillServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "cachectl",
            dependencies: [
                "DistillAPI", "DistillClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
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
                "Embedding", "VectorIndex", "Student", "Storage", "SQLiteStore", "TeacherSimulator", "SeededRandom",
                "ChildProcess", "CacheVerification",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                // replay: a client of distilld over TCP and its Unix socket, admin API included.
                "DistillAPI", "DistillClient",
                // The replay sizes its HTTP client's connection pool to its concurrency; soak and
                // chaos set teacher-sim's faults.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                // soak and chaos check distilld's store as a crash left it (integrity_check on a
                // copy) and read it beside the daemon, read-only.
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: optimizedAlways
        ),

        // Tests
        .testTarget(name: "DistillAPITests", dependencies: ["DistillAPI", "SeededRandom"]),
        // Against a small Hummingbird app served in-process over loopback and a Unix socket.
        .testTarget(
            name: "DistillClientTests",
            dependencies: [
                "DistillClient", "DistillAPI",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "VectorIndexTests", dependencies: ["VectorIndex", "CPUKernels", "SeededRandom"], swiftSettings: optimizedAlways),
        .testTarget(name: "EmbeddingTests", dependencies: ["Embedding", "CPUKernels", "SeededRandom"]),
        // What several test targets share: `onOwnThread`, for work too heavy for the cooperative pool.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "StudentTests", dependencies: ["Student", "Embedding", "SeededRandom", "TestSupport"]),
        .testTarget(name: "CacheVerificationTests", dependencies: ["CacheVerification", "SeededRandom", "TestSupport"]),
        // The behaviour every store shares, run against each one by its own test target.
        .target(name: "StoreConformance", dependencies: ["Storage"], path: "Tests/StoreConformance"),
        .testTarget(
            name: "SQLiteStoreTests",
            dependencies: ["SQLiteStore", "Storage", "StoreConformance", .product(name: "GRDB", package: "GRDB.swift")]),
        // Start a real PostgreSQL server (initdb into a scratch directory) of their own.
        .testTarget(
            name: "PostgresStoreTests",
            dependencies: [
                "PostgresStore", "SQLiteStore", "Storage", "StoreConformance", "ChildProcess",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
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
                "DistillCore", "DistillAPI", "TeacherSimulator", "Storage", "SQLiteStore", "Student", "Teacher", "Embedding",
                "VectorIndex", "SeededRandom",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "DistillServerTests",
            dependencies: [
                "DistillServer", "DistillCore", "DistillAPI", "TeacherSimulator", "Embedding", "Storage", "SQLiteStore",
                "Student", "SeededRandom", "CacheVerification",
                // ClusterTests: nodes on a scratch PostgreSQL server.
                "ChildProcess",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The replay benchmark's stream generator and report aggregation.
        .testTarget(
            name: "DistillBenchTests",
            dependencies: ["distill-bench", "DistillCore", "Storage", "Student", "Embedding", "TeacherSimulator", "SeededRandom"]),
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
                "DistillAPI", "DistillClient", "ChildProcess",
                // teacher-sim's own endpoints (/sim/…), and RawHTTP's bytes no client would send.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
