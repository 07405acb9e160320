import CPUKernels
import Foundation

/// What a CPU can run, as cpuid and xgetbv report it: an instruction set counts only when the OS also saves
/// its registers. Never inferred from the model number, which no table keeps up with.
public struct CPUFeatures: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let avx = CPUFeatures(rawValue: UInt32(CPU_FEATURE_AVX))
    public static let avx2 = CPUFeatures(rawValue: UInt32(CPU_FEATURE_AVX2))
    public static let fma = CPUFeatures(rawValue: UInt32(CPU_FEATURE_FMA))
    public static let avx512f = CPUFeatures(rawValue: UInt32(CPU_FEATURE_AVX512F))
    public static let avx512dq = CPUFeatures(rawValue: UInt32(CPU_FEATURE_AVX512DQ))
    public static let avx512bw = CPUFeatures(rawValue: UInt32(CPU_FEATURE_AVX512BW))
    public static let avx512vl = CPUFeatures(rawValue: UInt32(CPU_FEATURE_AVX512VL))
    public static let avx512vnni = CPUFeatures(rawValue: UInt32(CPU_FEATURE_AVX512VNNI))
    public static let avxvnni = CPUFeatures(rawValue: UInt32(CPU_FEATURE_AVXVNNI))
    public static let avx512bf16 = CPUFeatures(rawValue: UInt32(CPU_FEATURE_AVX512BF16))
    public static let bmi1 = CPUFeatures(rawValue: UInt32(CPU_FEATURE_BMI1))
    public static let bmi2 = CPUFeatures(rawValue: UInt32(CPU_FEATURE_BMI2))
    public static let f16c = CPUFeatures(rawValue: UInt32(CPU_FEATURE_F16C))
    public static let movbe = CPUFeatures(rawValue: UInt32(CPU_FEATURE_MOVBE))
    public static let lzcnt = CPUFeatures(rawValue: UInt32(CPU_FEATURE_LZCNT))

    private static let names: [(CPUFeatures, String)] = [
        (.avx, "avx"), (.avx2, "avx2"), (.fma, "fma"), (.bmi1, "bmi1"), (.bmi2, "bmi2"), (.f16c, "f16c"),
        (.movbe, "movbe"), (.lzcnt, "lzcnt"), (.avx512f, "avx512f"), (.avx512dq, "avx512dq"), (.avx512bw, "avx512bw"),
        (.avx512vl, "avx512vl"), (.avx512vnni, "avx512vnni"), (.avxvnni, "avxvnni"), (.avx512bf16, "avx512bf16"),
    ]

    /// This machine's features (empty on other architectures than x86-64).
    public static let host = CPUFeatures(rawValue: cpu_features_detect())

    /// Lower-case feature names, e.g. "avx avx2 fma …", or "none".
    public var description: String {
        let present = Self.names.filter { contains($0.0) }.map(\.1)
        return present.isEmpty ? "none" : present.joined(separator: " ")
    }
}

/// The instruction set the encoder's products and the index's similarity kernels run on.
public enum KernelSet: String, Sendable, CaseIterable, CustomStringConvertible {
    /// AVX-512 F/DQ/BW/VL: Intel Skylake-SP (2017) and later servers, AMD Zen 4 (2022) and later.
    case avx512
    /// AVX2 and FMA: Intel Haswell (2013), AMD Zen (2017) and later.
    case avx2
    /// The build's baseline (SSE2 on x86-64); the only set on other architectures.
    case portable

    /// The best set that CPUs with these features run and this binary contains.
    public init(features: CPUFeatures) {
        self.init(kernel_set_for_features(features.rawValue))
    }

    init(_ id: kernel_set_id) {
        switch id {
        case KERNEL_SET_AVX512: self = .avx512
        case KERNEL_SET_AVX2: self = .avx2
        default: self = .portable
        }
    }

    var id: kernel_set_id {
        switch self {
        case .avx512: KERNEL_SET_AVX512
        case .avx2: KERNEL_SET_AVX2
        case .portable: KERNEL_SET_PORTABLE
        }
    }

    /// Whether this binary contains the set (the x86 sets exist only in x86-64 builds).
    public var isCompiled: Bool { kernel_set_compiled(id) != 0 }

    /// Whether CPUs with these features run this set: it is compiled and no wider than their best.
    public func runs(on features: CPUFeatures) -> Bool {
        isCompiled && id.rawValue <= KernelSet(features: features).id.rawValue
    }

    public var description: String { rawValue }
}

/// Which kernels this process runs, and why: what start-up logs, `cachectl status` and `/metrics` show.
public struct KernelChoice: Sendable, Equatable, CustomStringConvertible {
    public let kernelSet: KernelSet
    public let features: CPUFeatures
    /// The CPU's brand string (cpuid), e.g. "AMD EPYC 7B13 64-Core Processor"; "unknown" where none.
    public let cpuModel: String
    /// Whether `DISTILL_KERNELS` chose the set rather than the CPU's features.
    public let forced: Bool

    /// The choice for a CPU with these features; injectable, so that the choice for any CPU can be tested here.
    public init(features: CPUFeatures, cpuModel: String, forcing kernelSet: KernelSet? = nil) {
        let best = KernelSet(features: features)
        self.kernelSet = kernelSet ?? best
        self.features = features
        self.cpuModel = cpuModel
        self.forced = kernelSet.map { $0 != best } ?? false
    }

    /// This process's choice: the CPU's best set, or the one `DISTILL_KERNELS` names (see `checkOverride`).
    /// VectorIndex reads the same choice (`kernel_set_selected`).
    public static let host = KernelChoice(
        features: .host, cpuModel: hostCPUModel(), forcing: KernelSet(kernel_set_selected()))

    /// The environment variable that forces a kernel set, to compare sets or to test the portable path on a
    /// CPU that has wider ones.
    public static let overrideVariable = "DISTILL_KERNELS"

    /// Refuses a `DISTILL_KERNELS` that names no set or one this CPU cannot run, which the kernels would ignore.
    public static func checkOverride(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, features: CPUFeatures = .host
    ) throws(KernelOverrideError) {
        guard let value = environment[overrideVariable] else { return }
        guard let set = KernelSet(rawValue: value) else { throw .unknownSet(value) }
        guard set.runs(on: features) else { throw .unsupported(set, features) }
    }

    /// e.g. "avx2 kernels on AMD EPYC 7B13 (cpu features: avx avx2 fma …)", with "forced by DISTILL_KERNELS"
    /// when it was.
    public var description: String {
        "\(kernelSet) kernels\(forced ? " (forced by \(Self.overrideVariable))" : "") on \(cpuModel) (cpu features: \(features))"
    }

    private static func hostCPUModel() -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        cpu_brand(&buffer, buffer.count)
        let brand = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return brand.isEmpty ? "unknown" : brand
    }
}

/// A `DISTILL_KERNELS` value this process cannot honour.
public enum KernelOverrideError: Error, Equatable, CustomStringConvertible {
    case unknownSet(String)
    case unsupported(KernelSet, CPUFeatures)

    public var description: String {
        switch self {
        case .unknownSet(let value):
            "\(KernelChoice.overrideVariable)=\(value) names no kernel set (avx512, avx2 or portable)"
        case .unsupported(let set, let features):
            "\(KernelChoice.overrideVariable)=\(set): this CPU cannot run the \(set) kernels (cpu features: \(features))"
        }
    }
}
