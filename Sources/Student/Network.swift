/// A multilayer perceptron from an embedding to logits: ReLU after every layer but the last.
public protocol StudentNetwork: Sendable {
    /// The embedding's dimension.
    var inputCount: Int { get }
    /// The number of logits: the classes and the rest.
    var outputCount: Int { get }
    /// The logits of one input of `inputCount` floats.
    func logits(_ input: [Float]) -> [Float]
}

/// The network as trained, in float.
public struct FloatNetwork: StudentNetwork, Hashable {
    public struct Layer: Sendable, Hashable {
        public let inputCount: Int
        public let outputCount: Int
        /// Row-major `inputCount` × `outputCount`: the weights out of each input are contiguous, which is the order
        /// in which a batch's forward pass and the weight gradients stream through them.
        public let weights: [Float]
        public let biases: [Float]

        init(inputCount: Int, outputCount: Int, weights: [Float], biases: [Float]) {
            precondition(weights.count == inputCount * outputCount && biases.count == outputCount)
            (self.inputCount, self.outputCount, self.weights, self.biases) = (inputCount, outputCount, weights, biases)
        }
    }

    public let layers: [Layer]

    init(layers: [Layer]) {
        precondition(!layers.isEmpty && zip(layers, layers.dropFirst()).allSatisfy { $0.outputCount == $1.inputCount })
        self.layers = layers
    }

    public var inputCount: Int { layers[0].inputCount }
    public var outputCount: Int { layers[layers.count - 1].outputCount }

    public func logits(_ input: [Float]) -> [Float] {
        precondition(input.count == inputCount, "an input of \(input.count) floats, not \(inputCount)")
        var x = input
        for (number, layer) in layers.enumerated() {
            var z = layer.biases
            x.withUnsafeBufferPointer { x in
                layer.weights.withUnsafeBufferPointer { w in
                    z.withUnsafeMutableBufferPointer { z in
                        multiplyAccumulate(
                            m: 1, n: layer.outputCount, k: layer.inputCount, a: x.baseAddress!,
                            aRowStride: layer.inputCount, aColumnStride: 1, b: w.baseAddress!, c: z.baseAddress!)
                    }
                }
            }
            if number < layers.count - 1 {
                for o in z.indices { z[o] = max(z[o], 0) }
            }
            x = z
        }
        return x
    }
}

/// The served network: int8 weights with one symmetric scale per output (per-output-channel quantization), and
/// an int8 path: each layer's input is quantized to int8 with one scale of its own (dynamic quantization), the
/// products are summed in Int32, and one multiplication per output brings the sum back to float.
public struct QuantizedNetwork: StudentNetwork, Hashable {
    public struct Layer: Sendable, Hashable {
        public let inputCount: Int
        public let outputCount: Int
        /// Row-major `outputCount` × `stride`: each output's weights contiguous for the dot product, zero-padded.
        public let weights: [Int8]
        /// `weights[o, i] · scales[o]` approximates the float weight.
        public let scales: [Float]
        public let biases: [Float]

        /// `inputCount` rounded up to the int8 kernel's 16 lanes.
        public var stride: Int { (inputCount + 15) / 16 * 16 }

        init(inputCount: Int, outputCount: Int, weights: [Int8], scales: [Float], biases: [Float]) {
            (self.inputCount, self.outputCount) = (inputCount, outputCount)
            (self.weights, self.scales, self.biases) = (weights, scales, biases)
            precondition(weights.count == outputCount * stride && scales.count == outputCount && biases.count == outputCount)
        }

        /// Quantizes each output's weights to −127…127 by its largest magnitude (symmetric: zero stays zero).
        init(_ layer: FloatNetwork.Layer) {
            let stride = (layer.inputCount + 15) / 16 * 16
            var weights = [Int8](repeating: 0, count: layer.outputCount * stride)
            var scales = [Float](repeating: 0, count: layer.outputCount)
            for o in 0..<layer.outputCount {
                var largest: Float = 0
                for i in 0..<layer.inputCount { largest = max(largest, abs(layer.weights[i * layer.outputCount + o])) }
                guard largest > 0 else { continue }
                scales[o] = largest / 127
                let inverse = 127 / largest
                for i in 0..<layer.inputCount {
                    weights[o * stride + i] = Int8((layer.weights[i * layer.outputCount + o] * inverse).rounded())
                }
            }
            self.init(
                inputCount: layer.inputCount, outputCount: layer.outputCount, weights: weights, scales: scales,
                biases: layer.biases)
        }
    }

    public let layers: [Layer]

    init(layers: [Layer]) {
        precondition(!layers.isEmpty && zip(layers, layers.dropFirst()).allSatisfy { $0.outputCount == $1.inputCount })
        self.layers = layers
    }

    public init(_ network: FloatNetwork) {
        self.init(layers: network.layers.map(Layer.init))
    }

    public var inputCount: Int { layers[0].inputCount }
    public var outputCount: Int { layers[layers.count - 1].outputCount }

    public func logits(_ input: [Float]) -> [Float] {
        precondition(input.count == inputCount, "an input of \(input.count) floats, not \(inputCount)")
        var x = input
        var q: [Int16] = []
        for (number, layer) in layers.enumerated() {
            let inputScale = Self.quantize(x, into: &q, stride: layer.stride)
            var z = layer.biases
            q.withUnsafeBufferPointer { q in
                layer.weights.withUnsafeBufferPointer { w in
                    for o in 0..<layer.outputCount {
                        let sum = dot(q.baseAddress!, w.baseAddress! + o * layer.stride, count: layer.stride)
                        z[o] += Float(sum) * (inputScale * layer.scales[o])
                    }
                }
            }
            if number < layers.count - 1 {
                for o in z.indices { z[o] = max(z[o], 0) }
            }
            x = z
        }
        return x
    }

    /// `x` as int8 values (−127…127, by its largest magnitude) in 16-bit lanes for `dot`, zero-padded to
    /// `stride`; returns the scale. Adding 1.5·2²³ to a float of magnitude below 2²² rounds it to an integer
    /// (ties to even) held in the low bits of the sum's pattern: no call to the C library's rounding, for which
    /// SSE2 has no instruction, and no conversion check.
    static func quantize(_ x: [Float], into q: inout [Int16], stride: Int) -> Float {
        var largest: Float = 0
        // Written so that a NaN is kept: a non-finite input gives NaN logits, as in float.
        for value in x where !(value.magnitude <= largest) { largest = value.magnitude }
        q = [Int16](repeating: 0, count: stride)
        guard largest.isFinite else { return .nan }
        guard largest > 0 else { return 0 }
        let inverse = 127 / largest
        for i in x.indices {
            q[i] = Int16(truncatingIfNeeded: Int32(bitPattern: (x[i] * inverse + 0x1.8p23).bitPattern) &- 0x4B40_0000)
        }
        return largest / 127
    }
}
