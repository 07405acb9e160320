import Foundation

/// One parameter tensor in training, with its gradient and Adam's moment estimates.
final class Parameter {
    let count: Int
    let value: UnsafeMutablePointer<Float>
    let gradient: UnsafeMutablePointer<Float>
    private let firstMoment: UnsafeMutablePointer<Float>
    private let secondMoment: UnsafeMutablePointer<Float>

    init(_ initial: [Float]) {
        count = initial.count
        value = .allocate(capacity: count)
        value.initialize(from: initial, count: count)
        gradient = .allocate(capacity: count)
        firstMoment = .allocate(capacity: count)
        secondMoment = .allocate(capacity: count)
        for buffer in [gradient, firstMoment, secondMoment] { buffer.initialize(repeating: 0, count: count) }
    }

    deinit {
        for buffer in [value, gradient, firstMoment, secondMoment] { buffer.deallocate() }
    }

    var values: [Float] { Array(UnsafeBufferPointer(start: value, count: count)) }

    func assign(_ values: [Float]) { value.update(from: values, count: count) }

    /// One AdamW step (Loshchilov and Hutter 2019: the decay is applied to the weight, not to the gradient),
    /// with β₁ 0.9, β₂ 0.999, ε 1e-8; `step` counts from 1.
    func adamStep(learningRate: Float, weightDecay: Float, step: Int) {
        let firstCorrection = 1 / (1 - Float(pow(0.9, Double(step))))
        let secondCorrection = 1 / (1 - Float(pow(0.999, Double(step))))
        for p in 0..<count {
            let g = gradient[p]
            firstMoment[p] = 0.9 * firstMoment[p] + 0.1 * g
            secondMoment[p] = 0.999 * secondMoment[p] + 0.001 * (g * g)
            let direction = (firstMoment[p] * firstCorrection) / ((secondMoment[p] * secondCorrection).squareRoot() + 1e-8)
            value[p] -= learningRate * (direction + weightDecay * value[p])
        }
    }
}

/// A dense layer in training, with its activations and gradients for one mini-batch.
final class TrainingLayer {
    let inputCount: Int
    let outputCount: Int
    let weights: Parameter
    let biases: Parameter
    /// Batch × outputs: after ReLU and dropout for a hidden layer, the logits for the last.
    let output: UnsafeMutablePointer<Float>
    /// Batch × outputs: the loss's gradient with respect to the layer's pre-activations.
    let outputGradient: UnsafeMutablePointer<Float>

    init(inputCount: Int, outputCount: Int, batchSize: Int, initialWeights: [Float]) {
        (self.inputCount, self.outputCount) = (inputCount, outputCount)
        weights = Parameter(initialWeights)
        biases = Parameter([Float](repeating: 0, count: outputCount))
        output = .allocate(capacity: batchSize * outputCount)
        output.initialize(repeating: 0, count: batchSize * outputCount)
        outputGradient = .allocate(capacity: batchSize * outputCount)
        outputGradient.initialize(repeating: 0, count: batchSize * outputCount)
    }

    deinit {
        output.deallocate()
        outputGradient.deallocate()
    }

    var snapshot: FloatNetwork.Layer {
        FloatNetwork.Layer(inputCount: inputCount, outputCount: outputCount, weights: weights.values, biases: biases.values)
    }

    func restore(_ layer: FloatNetwork.Layer) {
        weights.assign(layer.weights)
        biases.assign(layer.biases)
    }
}
