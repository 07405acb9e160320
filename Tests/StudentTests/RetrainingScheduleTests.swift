import Testing

@testable import Student

@Suite struct RetrainingScheduleTests {
    func due(trained: Bool, trainedOn: Int? = nil, serving: Bool, failedAt: Int? = nil) -> Int {
        RetrainingSchedule.untrainedAnswersDue(
            trained: trained, trainedOn: trainedOn, serving: serving, failedAt: failedAt, minRows: 500, minNewRows: 400)
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

    @Test func aLargeLogWaitsForATenthOfWhatItLastTrainedOn() {
        #expect(due(trained: true, trainedOn: 3_000, serving: true) == 400)
        #expect(due(trained: true, trainedOn: 20_000, serving: true) == 2_000)
        #expect(due(trained: true, trainedOn: 20_000, serving: false) == 1_000)
        #expect(due(trained: true, trainedOn: 20_000, serving: true, failedAt: 2_500) == 4_500)
    }
}
