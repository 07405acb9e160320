import Foundation

/// Work too heavy for the cooperative pool, which every async test of the process shares (two threads on a
/// two-core machine: a minute of embedding, training or simulation on them made other suites' HTTP deadlines
/// pass). It runs on a thread of its own, and the caller awaits it.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: work()) }.start()
    }
}
