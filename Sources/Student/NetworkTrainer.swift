import Foundation
import SeededRandom

/// Trains a `FloatNetwork` by mini-batch AdamW on the distillation loss, with early stopping on a holdout.
///
/// Per example, with student logits s, teacher label y and (when known) the teacher's distribution t:
/// `α·T²·KL(t_T ‖ softmax(s/T)) + (1−α)·CE(softmax(s), y)`, where t_T ∝ t^(1/T) is t at temperature T (the same
/// as softmax(logits/T) of the teacher's logits, which the logged probabilities stand for). Its gradient with
/// respect to s is `α·T·(softmax(s/T) − t_T) + (1−α)·(softmax(s) − onehot(y))`. An example without a
/// distribution has a hard label only and its loss is `CE(softmax(s), y)`: the KL term of a one-hot teacher
/// would only be the same cross-entropy at another temperature.
///
/// One thread, no shared thread team, and every random draw (initialization, shuffles, dropout) from one seeded generator:
/// the same examples and configuration give bit-identical weights.
final class NetworkTrainer {
    private let configuration: TrainingConfiguration
    private let dimension: Int
    let layers: [TrainingLayer]
    /// Batch × dimension: the current mini-batch's inputs.
    private let batchInput: UnsafeMutablePointer<Float>
    private var generator: SplitMix64

    init(dimension: Int, outputCount: Int, configuration: TrainingConfiguration) {
        self.configuration = configuration
        self.dimension = dimension
        generator = SplitMix64(seed: configuration.seed)
        let widths = [dimension] + configuration.hiddenWidths + [outputCount]
        var layers: [TrainingLayer] = []
        for (inputCount, outputCount) in zip(widths, widths.dropFirst()) {
            // He initialization for ReLU layers, LeCun's for the output layer.
            let isOutput = layers.count == widths.count - 2
            let deviation = ((isOutput ? 1 : 2) / Double(inputCount)).squareRoot()
            var weights: [Float] = []
            weights.reserveCapacity(inputCount * outputCount)
            for _ in 0..<inputCount * outputCount { weights.append(Float(generator.nextGaussian() * deviation)) }
            layers.append(
                TrainingLayer(
                    inputCount: inputCount, outputCount: outputCount, batchSize: configuration.batchSize,
                    initialWeights: weights))
        }
        self.layers = layers
        batchInput = .allocate(capacity: configuration.batchSize * dimension)
        batchInput.initialize(repeating: 0, count: configuration.batchSize * dimension)
    }

    deinit { batchInput.deallocate() }

    struct Outcome {
        var network: FloatNetwork
        var epochs: Int
        var bestEpoch: Int
    }

    /// Trains on `inputs` (row-major, one row of `dimension` per target) until the holdout's cross-entropy
    /// against the teacher's labels has not improved for `patience` epochs, and returns the best epoch's weights.
    func fit(
        inputs: [Float], targets: [TrainingTarget], holdoutInputs: [Float], holdoutLabels: [Int],
        shouldStop: () -> Bool
    ) throws(StudentTrainingError) -> Outcome {
        let tempered = targets.map { self.tempered($0.distribution) }
        var order = Array(targets.indices)
        var best = (loss: Double.infinity, epoch: 0, layers: layers.map(\.snapshot))
        var epoch = 0
        var step = 0
        while epoch < configuration.maxEpochs && epoch - best.epoch < configuration.patience {
            if shouldStop() { throw .cancelled }
            epoch += 1
            shuffle(&order)
            var start = 0
            while start < order.count {
                let rows = min(configuration.batchSize, order.count - start)
                computeGradients(examples: order[start..<start + rows], inputs: inputs, targets: targets, tempered: tempered)
                step += 1
                for layer in layers {
                    layer.weights.adamStep(
                        learningRate: configuration.learningRate, weightDecay: configuration.weightDecay, step: step)
                    layer.biases.adamStep(learningRate: configuration.learningRate, weightDecay: 0, step: step)
                }
                start += rows
            }
            let loss = crossEntropy(inputs: holdoutInputs, labels: holdoutLabels)
            if loss < best.loss { best = (loss, epoch, layers.map(\.snapshot)) }
        }
        return Outcome(network: FloatNetwork(layers: best.layers), epochs: epoch, bestEpoch: best.epoch)
    }

    /// Fisher–Yates with the seeded generator (the standard library's shuffle may change between releases).
    private func shuffle(_ order: inout [Int]) {
        var i = order.count - 1
        while i > 0 {
            order.swapAt(i, Int(generator.next() % UInt64(i + 1)))
            i -= 1
        }
    }

    /// The teacher's distribution at temperature T: t_T ∝ t^(1/T).
    func tempered(_ distribution: [ClassProbability]) -> [ClassProbability] {
        let powers = distribution.map { pow(Double($0.probability), 1 / Double(configuration.distillationTemperature)) }
        let total = powers.reduce(0, +)
        return zip(distribution, powers).map { ClassProbability(classIndex: $0.classIndex, probability: Float($1 / total)) }
    }

    /// Sets every parameter's gradient to that of the mean loss over `examples`, and returns that loss.
    @discardableResult
    func computeGradients(
        examples: ArraySlice<Int>, inputs: [Float], targets: [TrainingTarget], tempered: [[ClassProbability]]
    ) -> Double {
        inputs.withUnsafeBufferPointer { inputs in
            for (r, example) in examples.enumerated() {
                (batchInput + r * dimension).update(from: inputs.baseAddress! + example * dimension, count: dimension)
            }
        }
        forward(rows: examples.count, training: true)
        let last = layers[layers.count - 1]
        var loss = 0.0
        for (r, example) in examples.enumerated() {
            loss += lossGradient(
                logits: last.output + r * last.outputCount, gradient: last.outputGradient + r * last.outputCount,
                count: last.outputCount, label: targets[example].label, teacher: tempered[example],
                scale: 1 / Float(examples.count))
        }
        backward(rows: examples.count)
        return loss / Double(examples.count)
    }

    /// The first `rows` rows of `batchInput` through every layer; in training, with dropout after hidden layers.
    private func forward(rows: Int, training: Bool) {
        var input = UnsafePointer(batchInput)
        let dropout = training ? configuration.dropout : 0
        let keepScale = 1 / (1 - dropout)
        for (number, layer) in layers.enumerated() {
            for r in 0..<rows { (layer.output + r * layer.outputCount).update(from: layer.biases.value, count: layer.outputCount) }
            multiplyAccumulate(
                m: rows, n: layer.outputCount, k: layer.inputCount, a: input, aRowStride: layer.inputCount,
                aColumnStride: 1, b: layer.weights.value, c: layer.output)
            if number < layers.count - 1 {
                for p in 0..<rows * layer.outputCount {
                    let value = max(layer.output[p], 0)
                    layer.output[p] = dropout > 0 ? (generator.nextUnit() < Double(dropout) ? 0 : value * keepScale) : value
                }
            }
            input = UnsafePointer(layer.output)
        }
    }

    /// Writes the loss's gradient with respect to one example's logits, times `scale`, and returns the loss.
    private func lossGradient(
        logits: UnsafeMutablePointer<Float>, gradient: UnsafeMutablePointer<Float>, count: Int, label: Int,
        teacher: [ClassProbability], scale: Float
    ) -> Double {
        let alpha = teacher.isEmpty ? 0 : configuration.alpha
        let temperature = configuration.distillationTemperature
        var largest = logits[0]
        for c in 1..<count { largest = max(largest, logits[c]) }
        var total: Float = 0
        for c in 0..<count {
            gradient[c] = exp(logits[c] - largest)
            total += gradient[c]
        }
        let hard = (1 - alpha) * scale / total
        for c in 0..<count { gradient[c] *= hard }
        gradient[label] -= (1 - alpha) * scale
        var loss = Double(1 - alpha) * (Double(log(total)) - Double(logits[label] - largest))
        guard alpha > 0 else { return loss }
        var temperedTotal: Float = 0
        for c in 0..<count { temperedTotal += exp((logits[c] - largest) / temperature) }
        let soft = alpha * temperature * scale
        for c in 0..<count { gradient[c] += soft * exp((logits[c] - largest) / temperature) / temperedTotal }
        for target in teacher where target.probability > 0 {
            gradient[target.classIndex] -= soft * target.probability
            // T²·t·(log t − log s_T), with log s_T = (z − max)/T − log Σ exp((z − max)/T).
            let logStudent = (logits[target.classIndex] - largest) / temperature - log(temperedTotal)
            loss += Double(alpha * temperature * temperature * target.probability * (log(target.probability) - logStudent))
        }
        return loss
    }

    /// Back-propagates the last layer's `outputGradient` into every layer's parameter gradients.
    private func backward(rows: Int) {
        let dropout = configuration.dropout
        let keepScale = 1 / (1 - dropout)
        for number in layers.indices.reversed() {
            let layer = layers[number]
            let input = number == 0 ? UnsafePointer(batchInput) : UnsafePointer(layers[number - 1].output)
            // ∂W = inputᵀ · ∂Z, ∂b = the column sums of ∂Z.
            layer.weights.gradient.update(repeating: 0, count: layer.weights.count)
            multiplyAccumulate(
                m: layer.inputCount, n: layer.outputCount, k: rows, a: input, aRowStride: 1,
                aColumnStride: layer.inputCount, b: layer.outputGradient, c: layer.weights.gradient)
            layer.biases.gradient.update(repeating: 0, count: layer.outputCount)
            for r in 0..<rows {
                for o in 0..<layer.outputCount { layer.biases.gradient[o] += layer.outputGradient[r * layer.outputCount + o] }
            }
            guard number > 0 else { continue }
            // ∂input = ∂Z · Wᵀ, then through dropout and ReLU: only units that were kept and positive pass it.
            let previous = layers[number - 1]
            multiplyTransposed(
                m: rows, n: layer.inputCount, k: layer.outputCount, a: layer.outputGradient, b: layer.weights.value,
                c: previous.outputGradient)
            for p in 0..<rows * previous.outputCount {
                previous.outputGradient[p] = previous.output[p] > 0 ? previous.outputGradient[p] * keepScale : 0
            }
        }
    }

    /// Mean cross-entropy of the current weights against `labels`, without dropout.
    private func crossEntropy(inputs: [Float], labels: [Int]) -> Double {
        var total = 0.0
        var start = 0
        while start < labels.count {
            let rows = min(configuration.batchSize, labels.count - start)
            inputs.withUnsafeBufferPointer { inputs in
                batchInput.update(from: inputs.baseAddress! + start * dimension, count: rows * dimension)
            }
            forward(rows: rows, training: false)
            let last = layers[layers.count - 1]
            for r in 0..<rows {
                let logits = UnsafeBufferPointer(start: last.output + r * last.outputCount, count: last.outputCount)
                total += logSumExp(logits) - Double(logits[labels[start + r]])
            }
            start += rows
        }
        return total / Double(labels.count)
    }
}

/// log Σ exp(x), shifted by the maximum, in double.
func logSumExp(_ x: UnsafeBufferPointer<Float>) -> Double {
    let largest = Double(x.max()!)
    return largest + log(x.reduce(0) { $0 + exp(Double($1) - largest) })
}
