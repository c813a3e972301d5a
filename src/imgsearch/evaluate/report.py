"""Plain-text tables of evaluation results, for a terminal. Returns strings; prints nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imgsearch.evaluate.ann import AnnRecall
from imgsearch.evaluate.metrics import AT_K_FAMILIES
from imgsearch.evaluate.runner import Comparison, EvalRun, QueryOutcome

# The per-query table shows a few headline metrics; --json carries all of them.
_PER_QUERY_METRICS = ("recall@{k}", "ndcg@{k}", "mrr")


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Left-align the first column, right-align the rest."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _summary(run: EvalRun) -> str:
    return (f"{run.label}: {len(run.outcomes)} queries, {len(run.scored)} scored, "
            f"{len(run.errors)} error(s)")


def format_run(run: EvalRun, *, per_query: bool = False) -> str:
    """A metric × K table of the overall means, then errors (and per-query rows)."""
    overall = run.overall
    parts = [_summary(run)]
    if overall:
        rows = [["metric", *(f"@{k}" for k in run.ks)]]
        for family in AT_K_FAMILIES:
            rows.append([family, *(f"{overall[f'{family}@{k}']:.4f}" for k in run.ks)])
        rows.append(["mrr", f"{overall['mrr']:.4f}", *([""] * (len(run.ks) - 1))])
        parts.append(_table(rows))
    if per_query:
        parts.append(format_per_query(run.outcomes, run.ks))
    else:
        parts.extend(_error_line(o) for o in run.errors)
    return "\n\n".join(p for p in parts if p)


def _error_line(outcome: QueryOutcome) -> str:
    q = outcome.qrels
    where = f"line {q.line}" if q.id is None else f"{q.id} (line {q.line})"
    return f"error: {where}, {q.describe()}: {outcome.error}"


def format_per_query(outcomes: Sequence[QueryOutcome], ks: Sequence[int]) -> str:
    """One row per query with recall@K, nDCG@K (K = 10 when measured) and MRR."""
    k = 10 if 10 in ks else max(ks)
    names = [n.format(k=k) for n in _PER_QUERY_METRICS]
    rows = [["query", "line", *names]]
    errors = []
    for o in outcomes:
        if o.metrics is None:
            errors.append(_error_line(o))
            continue
        rows.append([_clip(f"{o.qrels.label}: {o.qrels.describe()}"), str(o.qrels.line),
                     *(f"{o.metrics[n]:.4f}" for n in names)])
    return "\n".join([_table(rows), *errors])


def format_comparison(comparison: Comparison) -> str:
    """Each metric for A and B over the queries both scored, and the difference B − A."""
    a, b = comparison.a, comparison.b
    head = (f"A = {_summary(a)}\nB = {_summary(b)}\n"
            f"compared on the {len(comparison.paired)} queries both scored")
    overall = comparison.overall
    if not overall:
        return head
    rows = [["metric", a.label, b.label, "B - A"]]
    for name, (va, vb, diff) in overall.items():
        rows.append([name, f"{va:.4f}", f"{vb:.4f}", f"{diff:+.4f}"])
    errors = [f"A {_error_line(o)}" for o in a.errors]
    errors += [f"B {_error_line(o)}" for o in b.errors]
    return "\n\n".join([head, _table(rows), *(["\n".join(errors)] if errors else [])])


def format_definitions(definitions: Mapping[str, str]) -> str:
    """One metric per line: its name and how it is computed."""
    width = max(len(name) for name in definitions)
    return "\n".join(f"{name.ljust(width)}  {text}" for name, text in definitions.items())


def format_ann(results: Sequence[AnnRecall]) -> str:
    """One row per vector space: index kind, size, queries and recall@k."""
    rows = [["space", "index", "vectors", "queries", "recall"]]
    for r in results:
        rows.append([r.space, r.index_kind, str(r.vectors), str(r.queries),
                     "-" if r.queries == 0 else f"{r.recall:.4f} @{r.k}"])
    return _table(rows)


def _clip(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
