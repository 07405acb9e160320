import SeededRandom
/// Deterministic synthetic unit vectors for tests and benchmarks, shaped like sentence
/// embeddings: points of Gaussian clusters in a low-dimensional latent space, projected up by a
/// fixed random matrix, plus isotropic noise, normalized. Most variance lies in few directions,
/// and a point's nearest neighbours are mostly, not only, in its own cluster.
///
/// Only integer and float arithmetic is used (Gaussians are Irwin–Hall sums of uniforms, no libm),
/// so every platform generates the same bits for the same seed.
public struct ClusteredVectors: Sendable {
    public let dimension: Int
    public let latentDimension: Int
    public let clusters: Int
    /// Standard deviation of a point around its cluster centre, relative to the centres' spread.
    public let spread: Float
    /// Standard deviation of the per-coordinate noise, relative to the projected signal.
    public let noise: Float
    private let centers: [Float]  // clusters × latentDimension
    private let projection: [Float]  // latentDimension × dimension
    private let seed: UInt64

    public init(
        dimension: Int, latentDimension: Int = 32, clusters: Int = 256,
        spread: Float = 0.6, noise: Float = 1.0, seed: UInt64 = 42
    ) {
        precondition(dimension > 0 && latentDimension > 0 && clusters > 0)
        self.dimension = dimension
        self.latentDimension = latentDimension
        self.clusters = clusters
        self.spread = spread
        self.noise = noise
        self.seed = seed
        var generator = SplitMix64(seed: seed)
        centers = (0..<(clusters * latentDimension)).map { _ in Self.gaussian(&generator) }
        // Columns scaled so that a unit-variance latent point projects to unit-variance coordinates.
        let scale = 1 / Float(latentDimension).squareRoot()
        projection = (0..<(latentDimension * dimension)).map { _ in Self.gaussian(&generator) * scale }
    }

    /// `count` unit vectors, row-major. Different `stream`s are independent samples of the same
    /// distribution: one for the data set, another for held-out queries.
    public func generate(count: Int, stream: UInt64) -> [Float] {
        var generator = SplitMix64(seed: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
        var output = [Float](repeating: 0, count: count * dimension)
        var latent = [Float](repeating: 0, count: latentDimension)
        let signalScale = 1 / (1 + spread * spread).squareRoot()
        output.withUnsafeMutableBufferPointer { output in
            for row in 0..<count {
                let cluster = Int(generator.next() % UInt64(clusters))
                for j in 0..<latentDimension {
                    latent[j] = centers[cluster * latentDimension + j] + spread * Self.gaussian(&generator)
                }
                let x = output.baseAddress! + row * dimension
                for i in 0..<dimension { x[i] = noise * Self.gaussian(&generator) }
                for j in 0..<latentDimension {
                    let weight = latent[j] * signalScale
                    let column = j * dimension
                    for i in 0..<dimension { x[i] += weight * projection[column + i] }
                }
                var norm: Float = 0
                for i in 0..<dimension { norm += x[i] * x[i] }
                let inverse = 1 / norm.squareRoot()
                for i in 0..<dimension { x[i] *= inverse }
            }
        }
        return output
    }

    /// Approximately standard normal: the centred sum of four uniforms (Irwin–Hall), rescaled.
    private static func gaussian(_ generator: inout SplitMix64) -> Float {
        let bits = generator.next()
        var sum: Float = 0
        for shift in stride(from: 0, to: 64, by: 16) { sum += Float((bits >> UInt64(shift)) & 0xFFFF) }
        return (sum / 65536 - 2) * Float(3).squareRoot()
    }
}
