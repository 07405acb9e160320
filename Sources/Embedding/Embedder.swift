/// Who produced a vector: two models' vectors must never be compared or stored together.
public struct EmbeddingModelIdentity: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A human-readable model name, e.g. "all-MiniLM-L6-v2".
    public var name: String
    /// Lower-case hex SHA-256 of the weights file the model was loaded from.
    public var weightsSHA256: String
    /// Length of every vector the model produces.
    public var dimension: Int

    public init(name: String, weightsSHA256: String, dimension: Int) {
        self.name = name
        self.weightsSHA256 = weightsSHA256
        self.dimension = dimension
    }

    /// What stored vectors and models are tagged with: `name@sha256`.
    public var key: String { "\(name)@\(weightsSHA256)" }

    public var description: String { "\(name)@\(weightsSHA256.prefix(12)) (\(dimension)d)" }
}

/// Turns texts into L2-normalized sentence vectors. The rest of the system sees only this.
public protocol Embedder: Sendable {
    var identity: EmbeddingModelIdentity { get }
    /// One normalized vector of `identity.dimension` floats per text, in order.
    func embed(_ texts: [String]) async throws -> [[Float]]
    /// Whether the model's window holds all of `text`: a longer text's vector stands for its
    /// beginning only, so two texts that differ after the window get the same vector.
    func seesWhole(_ text: String) -> Bool
}
