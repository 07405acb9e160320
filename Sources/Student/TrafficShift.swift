/// A recurring teacher answer that is none of the serving student's classes: a class the teacher started giving.
public struct NewAnswerClass: Sendable, Hashable {
    /// The text the teacher gave most often.
    public var answer: String
    /// How many times it was given.
    public var count: Int

    public init(answer: String, count: Int) {
        (self.answer, self.count) = (answer, count)
    }
}

extension AnswerClasses {
    /// The answers among `recent` teacher answers (oldest first) that would be classes of a training on them —
    /// canonically the same answer `minSupport` times or more — and are none of these: in order of first appearance.
    public func newClasses(in recent: some Sequence<String>, minSupport: Int) -> [NewAnswerClass] {
        let recurring = AnswerClasses(answers: recent, minSupport: minSupport)
        return zip(recurring.answers, recurring.supports).filter { index(of: $0.0) == nil }
            .map { NewAnswerClass(answer: $0, count: $1) }
    }
}

/// Why a scope's student is due for training before its regular step.
public enum ShiftReason: Sendable, Hashable, CustomStringConvertible {
    /// Novel requests come more often than in-distribution traffic allows, and this many were turned away.
    case novelTraffic(abstentions: Int)
    /// The teacher gives answers that are none of the student's classes.
    case newClasses([NewAnswerClass])

    public var description: String {
        switch self {
        case .novelTraffic(let abstentions):
            "novel requests come more often than in-distribution traffic allows (\(abstentions) turned away)"
        case .newClasses(let classes):
            "the teacher gave \(classes.count) new answer\(classes.count == 1 ? "" : "s") "
                + "\(classes.reduce(0) { $0 + $1.count }) times"
        }
    }
}

/// When a scope's traffic has moved away from what its serving student learned. Until then the student serves
/// as trained; once a shift is suspected it abstains on borderline requests too and audits are raised
/// (`AuditPolicy`); once it is due, the distiller trains it before the regular step, so that the new intents are
/// learned from the teacher's answers to them.
///
/// By design, in-distribution traffic is novel for 1 − `TrainingConfiguration.noveltyCoverage` (1%) of the
/// requests the student is confident on, so novel requests alone are no shift. The evidence is a sequential test
/// (`noveltyTest()`) over those requests, success being "not novel": it alarms less than once per 10,000 of them
/// while novel ones stay at 1%, and within a few dozen once they are a large share (at 20%, after at most 35 on
/// average; break-even at 2.8%).
public struct ShiftRule: Sendable, Hashable {
    /// The test over the requests a version is confident on.
    public var novelty = SequentialTest.Configuration(target: 0.99, margin: 0.05, falseAlarmEvery: 10_000)
    /// Once the novelty test has alarmed, the novel requests turned away that make the scope due: enough new
    /// answers to learn from.
    public var novelAbstentions = 50
    /// Teacher answers of new classes (`AnswerClasses.newClasses`) since the training, in all, that make it due.
    public var newClassAnswers = 30

    public init() {}

    /// A version's novelty test, fed `!prediction.novel` for every request it is confident on.
    public func noveltyTest() -> SequentialTest { SequentialTest(novelty) }

    /// Why the scope is due now, or nil when only the regular step applies. `novelAbstentions`: the version's
    /// confident requests turned away as novel; `newClasses`: of the teacher answers logged since its training.
    public func dueSooner(novelty: SequentialTest, novelAbstentions: Int, newClasses: [NewAnswerClass]) -> ShiftReason? {
        if novelty.alarmed && novelAbstentions >= self.novelAbstentions { return .novelTraffic(abstentions: novelAbstentions) }
        if newClasses.reduce(0, { $0 + $1.count }) >= newClassAnswers { return .newClasses(newClasses) }
        return nil
    }

    /// Whether a shift is suspected: the novelty test has alarmed, the teacher gives a new class, or the audits'
    /// test is halfway to suspending the student.
    public func suspected(novelty: SequentialTest, audits: SequentialTest, newClasses: [NewAnswerClass]) -> Bool {
        novelty.alarmed || !newClasses.isEmpty || audits.progress >= 0.5
    }
}
