"""What an operator of the gateway sees, as one picture: the series Prometheus scraped
from a gateway's admin listener between START and END (Unix seconds), drawn into OUT.png.

    operator-picture.py PROMETHEUS_URL START END OUT.png

Three panels over the same time axis: logins per second by method and outcome
(`auth_attempts_total`), with the limiter's lockout refusals; the p99 decision latency
(`auth_decision_seconds`, from its buckets); and readiness (`auth_ready`) with each
dependency's state (`auth_dependency_up`). Needs matplotlib (the test venv has it).
Prints the file written and how many series each panel drew; exits 1 when a panel had
no data at all.
"""

import json
import sys
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STEP = 1


def query_range(base, promql, start, end):
    params = urllib.parse.urlencode(
        {"query": promql, "start": start, "end": end, "step": STEP}
    )
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as r:
        answer = json.load(r)
    if answer.get("status") != "success":
        raise SystemExit(f"operator-picture: {promql}: {answer}")
    return answer["data"]["result"]


def series(result, start):
    for s in result:
        xs = [float(t) - start for t, _ in s["values"]]
        ys = [float(v) for _, v in s["values"]]
        yield s["metric"], xs, ys


def main(argv):
    if len(argv) != 5:
        raise SystemExit(__doc__)
    base, start, end, out = argv[1].rstrip("/"), float(argv[2]), float(argv[3]), argv[4]
    fig, (logins, latency, ready) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    drawn = {}

    # Over 10 s: a busy instance can miss a scrape or two, and a rate needs two samples.
    rate = "rate(%s[10s])"
    result = query_range(
        base,
        "sum by (method, outcome) (" + rate % "auth_attempts_total" + ")",
        start,
        end,
    )
    n = 0
    for metric, xs, ys in series(result, start):
        logins.plot(xs, ys, label=f"{metric.get('method', '?')} {metric.get('outcome', '?')}")
        n += 1
    result = query_range(
        base, "sum(" + rate % "auth_limiter_refusals_total" + ")", start, end
    )
    for _, xs, ys in series(result, start):
        logins.plot(xs, ys, "k--", label="refused by the limiter")
        n += 1
    drawn["logins"] = n
    logins.set_ylabel("attempts per second")
    logins.set_title("Logins by method and outcome")
    logins.legend(loc="upper right", fontsize="small")

    result = query_range(
        base,
        # Over 30 s: a quantile needs decisions in its window, and a quiet moment has none.
        "histogram_quantile(0.99, sum by (le, method) ("
        + "rate(auth_decision_seconds_bucket[30s])"
        + "))",
        start,
        end,
    )
    n = 0
    for metric, xs, ys in series(result, start):
        points = [(x, y * 1000) for x, y in zip(xs, ys) if y == y]  # drop NaN
        if points:
            latency.plot(*zip(*points), label=metric.get("method", "?"))
            n += 1
    drawn["latency"] = n
    if not n:
        print(f"latency: {len(result)} series, all without a value: {json.dumps(result)[:400]}")
        up = query_range(base, "up", start, end)
        print(f"scrapes in the range: {json.dumps(up)[:800]}")
    latency.set_ylabel("p99 decision (ms)")
    latency.set_title("Decision latency, p99 over the last 30 s")
    if n:
        latency.legend(loc="upper right", fontsize="small")

    n = 0
    for metric, xs, ys in series(query_range(base, "auth_ready", start, end), start):
        ready.step(xs, ys, where="post", color="black", linewidth=2, label="ready")
        n += 1
    result = query_range(base, "auth_dependency_up", start, end)
    for i, (metric, xs, ys) in enumerate(series(result, start)):
        # Each dependency a little below the last, so the lines do not hide each other.
        offset = -0.04 * (i + 1)
        ready.step(
            xs,
            [y + offset for y in ys],
            where="post",
            label=metric.get("dependency", "?"),
        )
        n += 1
    drawn["readiness"] = n
    ready.set_ylim(-0.5, 1.3)
    ready.set_yticks([0, 1], ["down", "up"])
    ready.set_title("Readiness and dependencies")
    ready.legend(loc="lower left", fontsize="small")
    ready.set_xlabel("seconds")

    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"wrote {out}: " + ", ".join(f"{k} {v} series" for k, v in drawn.items()))
    if any(v == 0 for v in drawn.values()):
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
