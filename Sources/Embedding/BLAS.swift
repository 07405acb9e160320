import CBLAS
import Foundation

/// The process-wide OpenBLAS settings that decide the encoder's speed.
public enum BLAS {
    /// Threads OpenBLAS uses for one product. Process-wide: set it at start-up, before products run.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// The kernel family OpenBLAS chose for this CPU (e.g. "Haswell"); `OPENBLAS_CORETYPE` overrides it at start-up.
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// "SkylakeX" when OpenBLAS runs its AVX2 kernels on a CPU with AVX-512 (OpenBLAS 0.3.21, Debian 12's,
    /// does not recognize AMD Zen 5): setting `OPENBLAS_CORETYPE=SkylakeX` in the environment of the process
    /// raises batch throughput about 1.5× there (docs/benchmarks.md). Nil when there is nothing to suggest (or
    /// not on Linux).
    public static var suggestedCoreType: String? {
        guard ["Haswell", "Zen"].contains(coreName),
            let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return nil }
        let present = Set(flags.split(separator: " ").map(String.init))
        return ["avx512f", "avx512dq", "avx512bw", "avx512vl"].allSatisfy(present.contains) ? "SkylakeX" : nil
    }
}
