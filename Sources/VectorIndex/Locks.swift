#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// pthread locks rather than `Synchronization.Mutex`: on Linux that Mutex is a futex in an
// uninstrumented module, so ThreadSanitizer cannot see its ordering and reports every access it
// protects as a race. ThreadSanitizer intercepts pthread locks. Each lock lives in its own
// allocation, since a pthread lock must not move.

/// A pthread readers-writer lock.
final class ReadWriteLock: @unchecked Sendable {
    private let handle: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        handle = .allocate(capacity: 1)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        #if canImport(Glibc)
        // glibc prefers readers by default: a steady stream of searches would starve the writer.
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        #endif
        let status = pthread_rwlock_init(handle, &attributes)
        precondition(status == 0, "pthread_rwlock_init failed: \(status)")
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        pthread_rwlock_destroy(handle)
        handle.deallocate()
    }

    func withReadLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        pthread_rwlock_rdlock(handle)
        defer { pthread_rwlock_unlock(handle) }
        return try body()
    }

    func withWriteLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        pthread_rwlock_wrlock(handle)
        defer { pthread_rwlock_unlock(handle) }
        return try body()
    }
}

/// A pthread mutex.
final class Lock: @unchecked Sendable {
    private let handle: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        handle = .allocate(capacity: 1)
        let status = pthread_mutex_init(handle, nil)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
    }

    deinit {
        pthread_mutex_destroy(handle)
        handle.deallocate()
    }

    func withLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        pthread_mutex_lock(handle)
        defer { pthread_mutex_unlock(handle) }
        return try body()
    }
}

/// A first-come, first-served mutex: each locker takes a ticket and waits for its turn. A plain
/// mutex lets the thread that just unlocked take it again before a woken waiter runs, so a
/// repair that unlocks between chunks would still starve the inserts queued behind it.
final class TicketLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let turn: UnsafeMutablePointer<pthread_cond_t>
    private var nextTicket = 0  // guarded by `mutex`
    private var serving = 0  // guarded by `mutex`

    init() {
        mutex = .allocate(capacity: 1)
        turn = .allocate(capacity: 1)
        precondition(pthread_mutex_init(mutex, nil) == 0 && pthread_cond_init(turn, nil) == 0)
    }

    deinit {
        pthread_cond_destroy(turn)
        pthread_mutex_destroy(mutex)
        turn.deallocate()
        mutex.deallocate()
    }

    func withLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        let ticket = nextTicket
        nextTicket += 1
        while serving != ticket { pthread_cond_wait(turn, mutex) }
        pthread_mutex_unlock(mutex)
        defer {
            pthread_mutex_lock(mutex)
            serving += 1
            pthread_cond_broadcast(turn)
            pthread_mutex_unlock(mutex)
        }
        return try body()
    }
}
