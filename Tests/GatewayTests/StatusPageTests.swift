import Testing

@testable import Gateway

/// The status page's documents without a browser: what the server interpolates is escaped, the
/// sign-in form has the fields the server reads, and nothing is fetched from elsewhere.
struct StatusPageTests {
    @Test func interpolatedValuesAreEscaped() {
        #expect(StatusPage.escape(#"<a href="x">'&'</a>"#) == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
        let page = StatusPage.page(user: "<script>alert(1)</script>", level: .viewer, csrfToken: #""><img src=x>"#)
        #expect(page.contains(#"<meta name="gateway-csrf" content="&quot;&gt;&lt;img src=x&gt;">"#))
        #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!page.contains("<script>alert"))
        let form = StatusPage.signIn(message: "token <wrong>")
        #expect(form.contains("token &lt;wrong&gt;"))
    }

    @Test func onlyOperatorsAndAdminsGetActions() {
        #expect(StatusPage.page(user: "v", level: .viewer, csrfToken: "t").contains(#"data-can-act="false""#))
        #expect(StatusPage.page(user: "o", level: .operator, csrfToken: "t").contains(#"data-can-act="true""#))
        #expect(StatusPage.page(user: "a", level: .admin, csrfToken: "t").contains(#"data-can-act="true""#))
    }

    @Test func theSignInFormPostsTheTokenToSession() {
        let form = StatusPage.signIn(message: nil)
        #expect(form.contains(#"<form method="post" action="/session""#))
        #expect(form.contains(#"<input type="password" name="token" id="token""#))
        #expect(form.contains(#"<button type="submit" id="sign-in">"#))
        #expect(!form.contains("role=\"alert\""))
        #expect(StatusPage.signIn(message: "expired").contains("role=\"alert\""))
    }

    @Test func bothDocumentsAreSelfContained() {
        for document in [StatusPage.page(user: "u", level: .admin, csrfToken: "t"), StatusPage.signIn(message: "m")] {
            #expect(document.hasPrefix("<!doctype html>"))
            #expect(!document.contains("://"), "a URL to somewhere else")
            #expect(!document.contains(" src="), "an external script or image")
        }
    }
}
