import Testing

@testable import DistillCore

@Suite struct DistillerScheduleTests {
    func due(trained: Bool, serving: Bool, failedAt: Int? = nil) -> Int {
        Distiller.untrainedAnswersDue(trained: trained, serving: serving, failedAt: failedAt, minRows: 500, minNewRows: 400)
    }

    @Test func aFirstTrainingWaitsForMinRows() {
        #expect(due(trained: false, serving: false) == 500)
    }

    @Test func aScopeNoStudentServesIsRetriedTwiceAsSoon() {
        #expect(due(trained: true, serving: true) == 400)
        #expect(due(trained: true, serving: false) == 200)
    }

    @Test func aFailedRunWaitsForMinNewRowsMoreThanItFailedAt() {
        #expect(due(trained: true, serving: false, failedAt: 250) == 650)
        #expect(due(trained: false, serving: false, failedAt: 500) == 900)
    }
}
