/// Why a model directory could not be loaded.
public enum ModelLoadError: Error, Equatable, CustomStringConvertible {
    case fileNotFound(path: String)
    case unreadable(path: String, reason: String)
    case invalidVocabulary(path: String, reason: String)
    case invalidConfiguration(path: String, reason: String)
    /// A well-formed file describing a model this implementation does not run.
    case unsupported(path: String, reason: String)
    case weights(SafetensorsError)

    public var description: String {
        switch self {
        case .fileNotFound(let path): "model file not found: \(path)"
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .invalidVocabulary(let path, let reason): "invalid vocabulary \(path): \(reason)"
        case .invalidConfiguration(let path, let reason): "invalid model configuration \(path): \(reason)"
        case .unsupported(let path, let reason): "unsupported model \(path): \(reason)"
        case .weights(let error): error.description
        }
    }
}
