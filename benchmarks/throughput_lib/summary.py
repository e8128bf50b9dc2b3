"""The figures of a measurement: per-round ratios and their quartiles, the GEMM fractions,
and issue #17's goals."""

from __future__ import annotations

from throughput_lib.common import (GOALS, MEMORY_GOAL, PRECISION, REFERENCE, TORCH, quartiles,
                                   round_ratios)


def summarize(args, impls, rates, result) -> None:
    """Per-round ratios and their quartiles, the GEMM fractions, and the goals."""
    gemm = {"gemm": result["gemm"].get("per_round", []),
            "tf_gemm": result.get("gemm_tensorflow", {}).get("per_round", [])}
    for model in args.models:
        entries = result["models"].setdefault(model, {})
        flops = result.get("flops", {}).get(model)
        references = {}
        if REFERENCE in impls:
            references[REFERENCE] = rates[(model, REFERENCE)]
        torches = [rates[(model, i)] for i in TORCH if i in impls]
        if torches:  # the faster torch of each round
            references["torch"] = [max((r for r in rs if r), default=None) for rs in zip(*torches)]
        for impl in impls:
            if f"{model}/{impl}" in result["skipped"]:
                continue
            e = entries.setdefault(impl, {})
            rs = rates[(model, impl)]
            e["precision"] = PRECISION.get(impl, "float32")
            e["rates"] = rs
            e["rate"] = quartiles([r for r in rs if r])
            for ref, ref_rates in references.items():
                ratio = round_ratios(rs, ref_rates)
                e[f"vs_{ref}"] = {**(quartiles(ratio) or {}), "per_round": ratio}
            for name, peaks in gemm.items():
                if flops and peaks:
                    frac = round_ratios([r * flops / 1e9 if r else None for r in rs], peaks)
                    e[f"{name}_fraction"] = {**(quartiles(frac) or {}), "per_round": frac}
        if flops:
            entries["_flops_per_example"] = flops
    goals = []
    for model, impl, against, target, text in GOALS:
        e = result["models"].get(model, {}).get(impl, {})
        q = e.get("gemm_fraction" if against == "gemm" else f"vs_{against}")
        if not q or "median" not in q:
            goals.append({"goal": text, "target": target, "measured": None,
                          "status": "not measured"})
            continue
        goals.append({"goal": text, "target": target, "measured": q["median"], "q1": q["q1"],
                      "q3": q["q3"], "met": q["median"] >= target,
                      "status": goal_status(q, target)})
    for model in args.models:
        zoo = result["models"].get(model, {}).get("zoo", {})
        ref = result["models"].get(model, {}).get(REFERENCE, {}).get("peak_rss_mb")
        if zoo.get("peak_rss_mb") and ref:
            ratio, limit = zoo["peak_rss_mb"] / ref, 1 + MEMORY_GOAL
            goals.append({
                "goal": f"{model} memory: zoo's peak RSS <= the plain TF1 loop's + 5%",
                "target": limit, "measured": ratio, "met": ratio <= limit,
                "steps_only": zoo["steps_rss_mb"] / ref if zoo.get("steps_rss_mb") else None,
                "status": "met" if ratio <= limit else
                          f"missed: {zoo['peak_rss_mb'] - ref * limit:,.0f} MB over"})
    result["goals"] = goals


def goal_status(q: dict, target: float) -> str:
    """Whether the median of per-round ratios meets ``target``, and how its IQR lies."""
    if q["median"] >= target:
        return "met" if q["q1"] >= target else "met by the median; the IQR reaches below"
    short = 1 - q["median"] / target
    return f"missed by {short:.0%}" + (" (the IQR reaches it)" if q["q3"] >= target else "")
