import CBLAS

/// The process-wide OpenBLAS settings that decide the encoder's speed.
public enum BLAS {
    /// Threads OpenBLAS uses for one product. Process-wide.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// The kernel family OpenBLAS chose for this CPU (e.g. "Haswell"); `OPENBLAS_CORETYPE` overrides it at start-up.
    public static var coreName: String { String(cString: openblas_get_corename()) }
}
