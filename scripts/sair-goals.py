#!/usr/bin/env python3
"""Checks the SAIR policy's goals (issue 6) against a `sair eval` results.json.

usage: scripts/sair-goals.py OUT/results.json [POLICY]

Per scenario it takes the median over seeds of P99, cost per 1k requests, SLO-violation rate
and bottleneck accuracy, then reports: whether POLICY (default `sair`) is Pareto-dominated by
any baseline on (P99, cost); its P99 against HPA's; its cost against Static's; its SLO-violation
rate where some baseline achieves <= 1%; its bottleneck detection. Prints a markdown table.
"""
import json
import statistics
import sys
from collections import defaultdict

BASELINES = ["static", "hpa", "vpa", "threshold", "kpa"]


def main():
    path = sys.argv[1]
    pol = sys.argv[2] if len(sys.argv) > 2 else "sair"
    runs = json.load(open(path))
    by = defaultdict(list)
    for r in runs:
        by[(r["scenario"], r["policy"])].append(r)
    scenarios = sorted({r["scenario"] for r in runs})

    def med(sc, p, key):
        vals = [r[key] for r in by[(sc, p)] if r[key] is not None]
        return statistics.median(vals) if vals else None

    print(f"| scenario | {pol} P99 ms | HPA P99 ms | P99 vs HPA | {pol} cost/1k | Static cost/1k | cost vs Static | {pol} SLO viol | best baseline viol | dominated by | bottleneck |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    checks = defaultdict(list)
    p99_ratios = []
    for sc in scenarios:
        if not by[(sc, pol)]:
            continue
        p, c, v, b = (med(sc, pol, k) for k in ("p99_ms", "cost_per_1k", "slo_violation_rate", "bottleneck_accuracy"))
        hp, sc_cost = med(sc, "hpa", "p99_ms"), med(sc, "static", "cost_per_1k")
        dom = [
            bl for bl in BASELINES
            if by[(sc, bl)]
            and med(sc, bl, "p99_ms") <= p and med(sc, bl, "cost_per_1k") <= c
            and (med(sc, bl, "p99_ms") < p or med(sc, bl, "cost_per_1k") < c)
        ]
        best_v = min(med(sc, bl, "slo_violation_rate") for bl in BASELINES if by[(sc, bl)])
        r_p = 1 - p / hp if hp else float("nan")
        r_c = 1 - c / sc_cost if sc_cost else float("nan")
        p99_ratios.append(r_p)
        checks["not dominated"].append(not dom)
        checks["P99 >= 35% below HPA"].append(r_p >= 0.35)
        checks["cost >= 30% below Static"].append(r_c >= 0.30)
        if best_v <= 0.01:
            checks["SLO viol <= 1% where a baseline is"].append(v <= 0.01)
        checks["bottleneck >= 90%"].append(b is not None and b >= 0.90)
        print(f"| {sc} | {p:.1f} | {hp:.1f} | {r_p:+.0%} | {c:.5f} | {sc_cost:.5f} | {r_c:+.0%} | {v:.2%} | {best_v:.2%} | {', '.join(dom) or '—'} | {b:.0%} |")
    print()
    print(f"Median over scenarios of P99 reduction against HPA: {statistics.median(p99_ratios):+.0%}")
    for k, v in checks.items():
        print(f"- {k}: {sum(v)}/{len(v)} scenarios")


if __name__ == "__main__":
    main()
