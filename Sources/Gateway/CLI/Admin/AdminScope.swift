/// The SCOPE argument of `gateway suspend` and `gateway resume`, and what it becomes on the wire.
///
/// Written the way operators name things elsewhere in the CLI: `shop`, `shop/api` (an entry
/// point), `shop#2` (an instance, as `gateway status` names it), `shop@127.0.0.1:9001` (a
/// backend address). No SCOPE at all is the whole gateway.
enum AdminScope: Sendable, Equatable, CustomStringConvertible {
    case gateway
    case deployment(String)
    case entryPoint(deployment: String, entryPoint: String)
    case instance(deployment: String, index: Int)
    case backend(deployment: String, address: String)

    struct ParseError: Error, Equatable, CustomStringConvertible {
        var description: String
    }

    /// Parses SCOPE; `nil` is the whole gateway. The error names the text and the forms accepted.
    static func parse(_ text: String?) -> Result<AdminScope, ParseError> {
        guard let text else { return .success(.gateway) }
        func failure(_ why: String) -> Result<AdminScope, ParseError> {
            .failure(
                ParseError(
                    description: "invalid scope '\(text)': \(why) (expected DEPLOYMENT, DEPLOYMENT/ENTRY_POINT, "
                        + "DEPLOYMENT#N or DEPLOYMENT@HOST:PORT)"
                )
            )
        }
        let separators: Set<Character> = ["/", "#", "@"]
        let splitAt = text.firstIndex { separators.contains($0) }
        let deployment = String(text[..<(splitAt ?? text.endIndex)])
        guard !deployment.isEmpty else { return failure("no deployment name") }
        guard Self.isName(deployment) else {
            return failure("a deployment name has only letters, digits, '_', '.' and '-'")
        }
        guard let splitAt else { return .success(.deployment(deployment)) }
        let rest = String(text[text.index(after: splitAt)...])
        switch text[splitAt] {
        case "/":
            guard !rest.isEmpty else { return failure("no entry point name after '/'") }
            guard Self.isName(rest) else {
                return failure("an entry point name has only letters, digits, '_', '.' and '-'")
            }
            return .success(.entryPoint(deployment: deployment, entryPoint: rest))
        case "#":
            guard let index = Self.instanceIndex(rest) else {
                return failure("expected an instance number after '#'")
            }
            return .success(.instance(deployment: deployment, index: index))
        default:
            switch HostPort.parse(rest) {
            case .success(let address):
                // The form the gateway names backends in (`/stats`), so `LOCALHOST:9001` matches too.
                return .success(.backend(deployment: deployment, address: address.description))
            case .failure(let problem):
                return failure("after '@', \(problem.message)")
            }
        }
    }

    /// `DEPLOYMENT` or `DEPLOYMENT#N`, the argument of `gateway stop` and `gateway start`.
    static func parseTarget(_ text: String) -> Result<AdminScope, ParseError> {
        let failure = ParseError(description: "invalid target '\(text)': expected DEPLOYMENT or DEPLOYMENT#N")
        let separators: Set<Character> = ["/", "@"]
        guard !text.contains(where: { separators.contains($0) }) else { return .failure(failure) }
        switch Self.parse(text) {
        case .success(let scope):
            switch scope {
            case .deployment, .instance: return .success(scope)
            default: return .failure(failure)
            }
        case .failure:
            return .failure(failure)
        }
    }

    /// The query parameters `/suspend` and `/resume` take for this scope, in a fixed order.
    var queryItems: [(name: String, value: String)] {
        switch self {
        case .gateway:
            return []
        case .deployment(let d):
            return [("deployment", d)]
        case .entryPoint(let d, let e):
            return [("deployment", d), ("entry_point", e)]
        case .instance(let d, let n):
            return [("deployment", d), ("instance", String(n))]
        case .backend(let d, let a):
            return [("deployment", d), ("backend", a)]
        }
    }

    /// As the CLI's argument would write it.
    var description: String {
        switch self {
        case .gateway: return "gateway"
        case .deployment(let d): return d
        case .entryPoint(let d, let e): return "\(d)/\(e)"
        case .instance(let d, let n): return "\(d)#\(n)"
        case .backend(let d, let a): return "\(d)@\(a)"
        }
    }

    /// Letters, digits, `_`, `.`, `-`: the config's rule for deployment names.
    static func isName(_ text: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { scalar in
                switch scalar {
                case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "-": return true
                default: return false
                }
            }
    }

    /// A non-negative decimal number of at most 9 digits (no sign, no spaces).
    private static func instanceIndex(_ text: String) -> Int? {
        guard !text.isEmpty, text.count <= 9, text.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) else {
            return nil
        }
        return Int(text)
    }
}
