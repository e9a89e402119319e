import Foundation
import Supervisor

/// One thing that happened, as `/events` streams it and the status page lists it: a sequence
/// number, the time, a type (`instance`, `suspend`, `roll`, `reload`, `upgrade`, `audit`,
/// `gateway`), a line for people, and fields for programs.
struct GatewayEvent: Sendable, Encodable, Equatable {
    var seq: Int
    var time: Date
    var type: String
    var message: String
    var fields: [String: EventValue]

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Flat: the fields sit beside `seq`, `time`, `type` and `message`.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (name, value) in fields where !["seq", "time", "type", "message"].contains(name) {
            try container.encode(value, forKey: Key(name))
        }
        try container.encode(seq, forKey: Key("seq"))
        try container.encode(Self.timestamp(time), forKey: Key("time"))
        try container.encode(type, forKey: Key("type"))
        try container.encode(message, forKey: Key("message"))
    }

    /// RFC 3339 in UTC with milliseconds (the instances' log lines use the same).
    static func timestamp(_ date: Date) -> String {
        OutputLog.timestamp(date.timeIntervalSince1970)
    }
}

/// A field's value in an event or an audit line.
enum EventValue: Sendable, Encodable, Equatable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case object([String: EventValue])
    case null

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    static func optional(_ value: Int32?) -> EventValue { value.map { .int(Int($0)) } ?? .null }
    static func optional(_ value: String?) -> EventValue { value.map { .string($0) } ?? .null }
}
