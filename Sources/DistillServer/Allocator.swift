#if canImport(Glibc)
import Glibc
#endif

/// What distilld asks of glibc's allocator, whose malloc.h the Glibc module does not import: the
/// functions are looked up at run time, and do nothing on other C libraries.
public enum Allocator {
    #if canImport(Glibc)
    private static func glibc<Function>(_ name: String, as type: Function.Type) -> Function? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name).map { unsafeBitCast($0, to: type) }
    }
    private static let mallocTrim = glibc("malloc_trim", as: (@convention(c) (Int) -> Int32).self)
    private static let mallopt = glibc("mallopt", as: (@convention(c) (Int32, Int32) -> Int32).self)
    #else
    private static let mallocTrim: ((Int) -> Int32)? = nil
    private static let mallopt: ((Int32, Int32) -> Int32)? = nil
    #endif

    /// Gives freed memory back to the system (`malloc_trim(0)`).
    static func trim() {
        _ = mallocTrim?(0)
    }

    /// At most `count` malloc arenas (`mallopt(M_ARENA_MAX, count)`). glibc gives threads that
    /// contend for malloc arenas of their own, up to 8 per core, and keeps what is freed in each: in
    /// a 10-minute soak distilld's RSS rose 151 → 286 MiB by default and stayed at 161–167 MiB with
    /// two arenas, at the same throughput (docs/benchmarks.md, Soak). Call it before threads start.
    public static func limitArenas(to count: Int32) {
        let arenaMax: Int32 = -8  // M_ARENA_MAX in malloc.h
        _ = mallopt?(arenaMax, count)
    }
}
