import NIOHTTP1

/// The JSON body of `GET /headers`: what the backend received, so a test can see what a proxy
/// in front of it added, rewrote or removed.
///
/// Written by hand (a few lines) so that key order is stable and follows the request: `_method`,
/// `_uri`, then each header name (lower-cased) in order of first appearance, with all its values.
enum DemoHeadersJSON {
    static func encode(_ head: HTTPRequestHead) -> String {
        var order: [String] = []
        var values: [String: [String]] = [:]
        for (name, value) in head.headers {
            let key = name.lowercased()
            if values[key] == nil { order.append(key) }
            values[key, default: []].append(value)
        }
        var members = [
            "\(quote("_method")):\(quote(head.method.rawValue))",
            "\(quote("_uri")):\(quote(head.uri))",
        ]
        for key in order {
            let list = values[key, default: []].map(quote).joined(separator: ",")
            members.append("\(quote(key)):[\(list)]")
        }
        return "{" + members.joined(separator: ",") + "}\n"
    }

    static func quote(_ string: String) -> String {
        var result = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
