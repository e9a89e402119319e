/// The admin listener's HTML: the live status page and its sign-in form.
enum StatusPage {
    static func page(user: String, level: String, csrfToken: String) -> String {
        """
        <!doctype html><html><head><meta charset="utf-8"><meta name="gateway-csrf" content="\(escape(csrfToken))">\
        <title>gateway</title></head><body><p>Signed in as \(escape(user)) (\(escape(level))).</p></body></html>
        """
    }

    static func signIn(message: String?) -> String {
        """
        <!doctype html><html><head><meta charset="utf-8"><title>gateway: sign in</title></head><body>\
        \(message.map { "<p>\(escape($0))</p>" } ?? "")<form method="post" action="/session">\
        <input type="password" name="token" id="token"><button id="sign-in" type="submit">Sign in</button></form></body></html>
        """
    }

    static func escape(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }
}
