/// What DistillCore called when the encoder ran on OpenBLAS, kept only so that it builds until it passes
/// `threads:` to `BertEncoder` and logs `KernelChoice.host`; then this file goes.
@available(*, deprecated, message: "pass threads: to BertEncoder, and log or show KernelChoice.host")
public enum BLAS {
    /// The threads of encoders created from now on without a count.
    public static var threadCount: Int {
        get { BertEncoder.defaultThreadCount.load(ordering: .relaxed) }
        set { BertEncoder.defaultThreadCount.store(max(1, newValue), ordering: .relaxed) }
    }

    /// The kernel set the encoder runs on ("avx2", "avx512", "portable").
    public static var coreName: String { KernelChoice.host.kernelSet.rawValue }

    /// Nothing to suggest any more: the kernels follow the CPU's features by themselves.
    public static var suggestedCoreType: String? { nil }
}
