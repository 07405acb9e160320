import SystemPackage
import Yams

/// The YAML config file's shape, checked before its values are read: swift-configuration reads a
/// value of the wrong shape (`cache: 5`, a list where a number belongs) as absent, which would
/// leave the default in force without a word.
enum ConfigFile {
    /// The dotted keys the file sets; throws on anything but sections of known keys with single
    /// values (lists where the key takes one).
    static func keys(of path: String, known: Set<String>, lists: Set<String>) throws(ConfigError) -> Set<String> {
        let text = try read(path)
        let document: Node?
        do {
            document = try Yams.compose(yaml: text)
        } catch {
            throw .invalidFile(path: path, reason: "not valid YAML: \(error)".replacing("\n", with: " "))
        }
        guard let document, document.null == nil else {
            throw .invalidFile(
                path: path,
                reason: "the file sets nothing; name at least one setting, or start distilld without --config for the defaults")
        }
        guard let sections = document.mapping else {
            throw .invalidFile(path: path, reason: "the file must hold sections of keys (e.g. \"teacher:\"), not \(describe(document))")
        }
        var found: Set<String> = []
        var unknown: [String] = []
        func visit(_ mapping: Node.Mapping, prefix: String) throws(ConfigError) {
            for (keyNode, value) in mapping {
                let key = prefix + (keyNode.string ?? "\(keyNode)")
                let isSection = known.contains { $0.hasPrefix(key + ".") }
                if isSection {
                    if let mapping = value.mapping {
                        try visit(mapping, prefix: key + ".")
                    } else if value.null == nil {
                        let example = known.filter { $0.hasPrefix(key + ".") }.min()!
                        throw .invalidValue(
                            key: key, value: describe(value), expected: "a section of keys (e.g. \(example))", source: .file(path))
                    }
                } else if known.contains(key) {
                    guard value.scalar != nil || (value.sequence != nil && lists.contains(key)) else {
                        throw .invalidValue(
                            key: key, value: describe(value), expected: lists.contains(key) ? "a list" : "a single value",
                            source: .file(path))
                    }
                    found.insert(key)
                } else {
                    unknown.append(key)
                }
            }
        }
        try visit(sections, prefix: "")
        guard unknown.isEmpty else { throw .unknownKeys(unknown.sorted(), file: path) }
        return found
    }

    /// The file as text; errors as the system words them, without Foundation's error dump.
    private static func read(_ path: String) throws(ConfigError) -> String {
        var bytes: [UInt8] = []
        do {
            let descriptor = try FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec)
            try descriptor.closeAfter {
                var chunk = [UInt8](repeating: 0, count: 64 << 10)
                while case let count = try chunk.withUnsafeMutableBytes({ try descriptor.read(into: $0) }), count > 0 {
                    bytes += chunk[..<count]
                }
            }
        } catch {
            throw .unreadableFile(path: path, reason: (error as? Errno)?.description.lowercased() ?? "\(error)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .invalidFile(path: path, reason: "the file is not UTF-8 text")
        }
        return text
    }

    /// A node as an error message shows it: a value as written, a section or list by its kind.
    private static func describe(_ node: Node) -> String {
        if let scalar = node.scalar { return scalar.string }
        return node.mapping != nil ? "a section" : "a list"
    }
}
