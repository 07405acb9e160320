import DistillAPI
import Foundation
import Testing

@Suite struct ChatRequestTests {
    @Test func parsesAMinimalRequestAndKeepsUnknownFields() throws {
        let request = try ChatRequest.parse(
            Data(#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"x_vendor":{"k":1}}"#.utf8))
        #expect(request.model == "m")
        #expect(request.messages.map(\.role) == ["system", "user"])
        #expect(request.lastUserMessage?.text == "hi")
        #expect(request.body["x_vendor"] == ["k": 1])
        #expect(!request.stream)
        #expect(request.choiceCount == 1)
    }

    @Test func joinsTextPartsAndAllowsToolOnlyAssistantTurns() throws {
        let request = try ChatRequest.parse(
            Data(
                #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]},{"role":"assistant","content":null,"tool_calls":[]},{"role":"user","content":"c"}]}"#
                    .utf8))
        #expect(request.messages[0].text == "a\nb")
        #expect(request.messages[1].text == "")
        #expect(request.lastUserMessage?.text == "c")
    }

    /// Every malformed request is a 400 naming what is wrong.
    @Test(arguments: [
        (#"{"model":"m","messages":[{"role":"user","content":"x"}"#, "invalid_json", nil),
        (#"[1,2]"#, "invalid_type", nil),
        (#"{"messages":[{"role":"user","content":"x"}]}"#, "missing_required_parameter", "model"),
        (#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#, "invalid_type", "model"),
        (#"{"model":"m"}"#, "missing_required_parameter", "messages"),
        (#"{"model":"m","messages":{"role":"user"}}"#, "invalid_type", "messages"),
        (#"{"model":"m","messages":[]}"#, "invalid_value", "messages"),
        (#"{"model":"m","messages":["hi"]}"#, "invalid_type", "messages[0]"),
        (#"{"model":"m","messages":[{"content":"x"}]}"#, "invalid_type", "messages[0].role"),
        (#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#, "invalid_value", "messages[0].role"),
        (#"{"model":"m","messages":[{"role":"user","content":""}]}"#, "empty_content", "messages[0].content"),
        (#"{"model":"m","messages":[{"role":"user","content":"  \n "}]}"#, "empty_content", "messages[0].content"),
        (#"{"model":"m","messages":[{"role":"user"}]}"#, "missing_required_parameter", "messages[0].content"),
        (#"{"model":"m","messages":[{"role":"user","content":42}]}"#, "invalid_type", "messages[0].content"),
        (#"{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}"#, "invalid_type", "messages[0].content[0].type"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#, "invalid_type", "stream"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#, "invalid_value", "temperature"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":0}"#, "invalid_value", "n"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1.5}"#, "invalid_value", "max_tokens"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]}"#, "invalid_value", "stop"),
        // SQLite TEXT ends at a NUL: such a prompt would be logged cut short.
        (#"{"model":"m","messages":[{"role":"user","content":"a\u0000b"}]}"#, "invalid_value", "messages[0].content"),
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"\u0000"}]}]}"#, "invalid_value", "messages[0].content"),
        (#"{"model":"m\u0000","messages":[{"role":"user","content":"x"}]}"#, "invalid_value", "model"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"x":[[[[]]]],}"#, "invalid_json", nil),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}],"x":"# + String(repeating: "[", count: 200) + "}", "nesting_too_deep", nil),
    ] as [(String, String, String?)])
    func rejects(body: String, code: String, param: String?) {
        #expect {
            _ = try ChatRequest.parse(Data(body.utf8))
        } throws: { error in
            guard let error = error as? APIError else { return false }
            return error.status == 400 && error.code == code && error.param == param
                && error.type == "invalid_request_error"
        }
    }

    @Test func rejectsInvalidUTF8WithItsOwnCode() {
        var body = Data(#"{"model":"m","messages":[{"role":"user","content":""#.utf8)
        body.append(contentsOf: [0xC3, 0x28])
        body.append(contentsOf: Data(#""}]}"#.utf8))
        #expect(throws: APIError.invalidRequest("The request body is not valid UTF-8.", code: "invalid_encoding")) {
            try ChatRequest.parse(body)
        }
    }

    @Test func errorBodyHasOpenAIsShapeWithNullsPresent() throws {
        let error = APIError.invalidRequest("bad", code: "invalid_value")
        let object = try JSONValue.parse(JSONEncoder().encode(error.body))
        #expect(object == ["error": ["message": "bad", "type": "invalid_request_error", "param": nil, "code": "invalid_value"]])
    }
}
