# Reads one h2load run's output and prints one line:
#   rps total succeeded failed errored timeout s2xx s3xx s4xx s5xx
# with "-" for anything the output did not have (h2load could not connect, was killed, ...).
#
# The lines it reads (nghttp2 1.52):
#   finished in 3.01s, 34498.00 req/s, 2.24MB/s
#   requests: 68996 total, 68996 started, 68996 done, 68996 succeeded, 0 failed, 0 errored, 0 timeout
#   status codes: 68996 2xx, 0 3xx, 0 4xx, 0 5xx
# Values are found by the word after them, not by position, so a reordered line still parses.
function after(label,    i, word) {
    for (i = 2; i <= NF; i++) {
        word = $i
        sub(/[,;]$/, "", word)
        if (word == label) return $(i - 1)
    }
    return "-"
}
BEGIN { rps = total = succeeded = failed = errored = timeout = s2 = s3 = s4 = s5 = "-" }
/^finished in / { rps = after("req/s") }
/^requests: / {
    total = after("total"); succeeded = after("succeeded"); failed = after("failed")
    errored = after("errored"); timeout = after("timeout")
}
/^status codes: / { s2 = after("2xx"); s3 = after("3xx"); s4 = after("4xx"); s5 = after("5xx") }
END { print rps, total, succeeded, failed, errored, timeout, s2, s3, s4, s5 }
