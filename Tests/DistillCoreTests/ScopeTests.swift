import DistillAPI
import DistillCore
import Foundation
import Testing

@Suite struct ScopeTests {
    func scope(_ fields: String, question: String = "where is my card?", system: String = "You classify.", tenant: String = "t1") throws -> Scope {
        let body = #"{"model":"m","messages":[{"role":"system","content":"\#(system)"},{"role":"user","content":"\#(question)"}]\#(fields)}"#
        return Scope(of: try ChatRequest.parse(Data(body.utf8)), tenant: tenant)
    }

    @Test func theLastUserMessageAndSamplingDoNotChangeTheScope() throws {
        let base = try scope("")
        #expect(base.key.count == 64)
        #expect(try scope("", question: "card not here") == base)
        #expect(try scope(#","temperature":0.2,"top_p":0.9,"seed":3,"stream":true,"user":"u1","n":2"#) == base)
    }

    @Test func everythingElseDoes() throws {
        let base = try scope("")
        let others = [
            try scope("", tenant: "t2"),
            try scope("", system: "You translate."),
            try scope(#","max_tokens":5"#),
            try scope(#","response_format":{"type":"json_object"}"#),
            try scope(#","stop":["\n"]"#),
            try scope(#","tools":[{"type":"function","function":{"name":"f"}}]"#),
            try scope(#","some_vendor_field":1"#),
        ]
        #expect(Set(others + [base]).count == others.count + 1)
    }

    @Test func earlierTurnsAreContext() throws {
        func conversation(_ earlier: String) throws -> Scope {
            let body = #"{"model":"m","messages":[{"role":"user","content":"\#(earlier)"},{"role":"assistant","content":"ok"},{"role":"user","content":"and then?"}]}"#
            return Scope(of: try ChatRequest.parse(Data(body.utf8)), tenant: "t")
        }
        #expect(try conversation("first") != conversation("second"))
    }

    @Test func theModelIsPartOfTheScope() throws {
        let a = Scope(of: try ChatRequest.parse(Data(#"{"model":"a","messages":[{"role":"user","content":"q"}]}"#.utf8)), tenant: "t")
        let b = Scope(of: try ChatRequest.parse(Data(#"{"model":"b","messages":[{"role":"user","content":"q"}]}"#.utf8)), tenant: "t")
        #expect(a != b)
    }
}
