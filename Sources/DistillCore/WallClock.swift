import Foundation

/// The time of day as the domain sees it (entry expiry, hit times, answer timestamps, runs),
/// injected so that tests can move it instead of waiting for it.
public protocol WallClock: Sendable {
    var now: Date { get }
}

/// The system's clock.
public struct SystemClock: WallClock {
    public init() {}
    public var now: Date { Date() }
}
