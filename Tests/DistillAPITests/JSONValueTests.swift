import DistillAPI
import Foundation
import Testing

@Suite struct JSONValueTests {
    @Test func parsesEveryKindAndKeepsIntegersExact() throws {
        let value = try JSONValue.parse(Data(#"{"a":null,"b":true,"c":9007199254740993,"d":0.25,"e":"x","f":[1,"2"]}"#.utf8))
        #expect(value["a"] == .null)
        #expect(value["b"] == .bool(true))
        #expect(value["c"] == .integer(9_007_199_254_740_993))
        #expect(value["d"] == .number(0.25))
        #expect(value["e"] == .string("x"))
        #expect(value["f"] == .array([.integer(1), .string("2")]))
    }

    @Test func encodesWithSortedKeysSoEqualValuesGiveEqualBytes() {
        let a: JSONValue = ["z": 1, "a": ["y": true, "b": nil]]
        let b: JSONValue = ["a": ["b": nil, "y": true], "z": 1]
        #expect(a.encoded() == b.encoded())
        #expect(a.encodedString == #"{"a":{"b":null,"y":true},"z":1}"#)
    }

    @Test func roundTripsThroughItsEncoding() throws {
        let value: JSONValue = ["text": "naïve café 🙂\n\"quoted\"", "n": -3, "x": 1.5e-7, "list": [[], [:]]]
        #expect(try JSONValue.parse(value.encoded()) == value)
    }

    @Test func rejectsInvalidUTF8BeforeParsing() {
        #expect(throws: JSONParseError.invalidUTF8) {
            try JSONValue.parse(Data([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D]))
        }
    }

    @Test func rejectsMalformedJSON() {
        for text in ["{", "{\"a\":}", "[1 2]", "nul", "", "[1,]", "{\"a\":1,}", "01", "1.", "-", "1e400", "\"\\ud800\"", "\"a\u{1}\"", "[1] 2"] {
            #expect(throws: JSONParseError.self) { try JSONValue.parse(Data(text.utf8)) }
        }
    }

    @Test func saysWhereTheJSONBreaks() {
        #expect(throws: JSONParseError.malformed("expected ',' or ']' in an array at byte 3")) {
            try JSONValue.parse(Data("[1 2]".utf8))
        }
    }

    @Test func keepsTheFirstOfARepeatedKeyAsFoundationsDecoderDid() throws {
        #expect(try JSONValue.parse(Data(#"{"a":1,"a":2}"#.utf8)) == ["a": 1])
    }

    @Test func numbersKeepTheFormsTheDecoderGaveThem() throws {
        let value = try JSONValue.parse(Data("[2.0,1e2,-0,9223372036854775808,0.5,9007199254740993.0]".utf8))
        #expect(value == [2, 100, 0, .number(9_223_372_036_854_775_808), 0.5, 9_007_199_254_740_993])
    }

    @Test func numericAccessorsConvertOnlyExactly() {
        #expect(JSONValue.number(2.0).intValue == 2)
        #expect(JSONValue.number(2.5).intValue == nil)
        #expect(JSONValue.integer(3).doubleValue == 3)
        #expect(JSONValue.string("3").intValue == nil)
    }
}
